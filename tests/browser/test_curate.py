"""Browser: select notes across pages, start "Curate selected notes", and watch the job page
follow the job to its end against the API emulator; the dashboard then shows the saving."""

import pytest

from curation.engine import jobs
from curation.models import Batch, Item, Job, Suggestion
from ingest.models import Note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(monkeypatch, emulator, settings):
    """The test is the worker: enqueueing records the job, the test steps it while the page
    polls (so the page is seen mid-way, not only after the job ended inside the request)."""
    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05
    settings.CURATION_BATCH_SIZE = 25
    emulator.configure(batch_seconds=1.0)  # batches stay "in progress" for a poll or two
    queued: list[int] = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job_id: queued.append(job_id) or "")
    return queued


def page_state(page) -> str:
    return page.inner_text("#job-state").strip()


@pytest.mark.extra_notes(30)
def test_select_across_pages_curate_and_watch_the_job(open_session, users, sample_vault, worker):
    curatable = Note.objects.filter(vault=sample_vault, state=Note.State.OK).count()
    total_rows = Note.objects.filter(vault=sample_vault).count()
    assert curatable == 63 and total_rows == 64

    me = open_session("admin")
    me.login("admin")
    page = me.go("/ingest/note/")
    assert page.locator("#result_list tbody tr").count() == 50  # first of two pages
    assert page.locator(".paginator a:text-is('2')").count() == 1
    page.check("#action-toggle")
    page.click(".actions .question a")  # "Select all 64 notes"
    page.wait_for_selector(".actions .all", state="visible")
    me.shot("all notes selected across pages")
    assert "All 64 selected" in page.inner_text(".actions .all")
    page.select_option("select[name=action]", "curate_selected_notes")
    page.click("button[name=index]")

    page.wait_for_selector("#curate-form")
    me.shot("curate form")
    assert "64 notes selected; 63 can be curated" in page.inner_text("#curate-form")
    assert page.inner_text("#estimate-cost").startswith("$")  # the estimate, before submitting
    page.click("#curate-form input[name=apply]")
    # The action only stored the selection; the worker (inline in tests) made the job.
    page.wait_for_selector("#op-job-link")
    me.shot("job created in the background")
    page.click("#op-job-link")
    page.wait_for_url("**/curation/jobs/*/")
    job = Job.objects.get()
    assert worker == [job.id]
    assert page_state(page) == "Queued"
    assert page.locator("form.job-cancel").count() == 1
    assert page.inner_text("#job-total") == "63"
    me.shot("job queued")

    # Run the job one step at a time; the page's own polling must follow it.
    seen = {page_state(page)}
    for _ in range(200):
        wait = jobs.job_step(job_id=job.id)
        state = Job.objects.get(id=job.id).get_state_display()
        page.wait_for_function(
            "s => document.getElementById('job-state').textContent.trim() === s", arg=state
        )
        if state not in seen:
            seen.add(state)
            me.shot(f"job {state}")
        if wait is None:
            break
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.mode == "batch"
    assert {"Queued", "Running", "Succeeded"} <= seen
    page.wait_for_function("() => document.getElementById('job-done').textContent === '63'")
    me.shot("job finished")
    assert page.get_attribute("#job", "data-final") == "1"
    # The page was opened while the job ran: its "Cancel job" button goes when the job ends.
    assert page.locator("form.job-cancel").count() == 0
    assert Item.objects.filter(job=job, state=Item.State.SUCCEEDED).count() == 63
    assert Batch.objects.filter(job=job).count() == 3  # 63 notes in batches of 25
    assert not Item.objects.filter(job=job, note__state=Note.State.SKIPPED).exists()
    assert Suggestion.objects.filter(job=job, state=Suggestion.State.PENDING).count() > 0

    # The dashboard now points at review and shows what batching saved.
    page = me.go("/")
    me.shot("dashboard after the job")
    assert "next" in page.inner_text("#step-review").lower()
    assert page.inner_text("#dash-saved .vc-num") != "$0"

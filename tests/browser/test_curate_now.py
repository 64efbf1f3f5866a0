"""Browser, 1366×768: paste a web address, "Curate now", and watch the suggestions appear on
the page that follows without a reload (the test is the worker, against the API emulator);
approve one there. From a note's page, a refusal shows its reason the same way."""

import pytest

from curation import operations
from curation.models import Job, Operation, Suggestion
from ingest.models import Note
from tests.ingest.conftest import ARTICLE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 1366, 768


@pytest.fixture
def worker(monkeypatch, emulator):
    """Queued operations wait for the test, which then works them as a worker would (the job
    it creates runs in django-q2's sync mode, here), while the page keeps polling."""
    queued: list[int] = []
    monkeypatch.setattr(
        operations, "operation_enqueue", lambda *, operation_id: queued.append(operation_id) or ""
    )

    def work() -> None:
        while queued:
            operations.operation_run(operation_id=queued.pop(0))

    work.queued = queued
    return work


def fits(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_paste_an_address_curate_now_and_see_the_suggestions_arrive(
    open_session, users, sample_vault, web_server, worker, settings
):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = True  # the page is served on 127.0.0.1
    url = web_server.page("/hybrid.html", ARTICLE.format(title="Hybrid search for RAG"))
    me = open_session("admin")
    me.page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    me.login("admin")
    page = me.go("/ingest/note/")
    page.click("#add-from-url")
    page.wait_for_selector("#url-ingest-form")
    page.fill("#id_url", url)
    page.select_option("#id_vault", label="Sample vault")
    page.fill("#id_folder", "Inbox/Web")
    page.check("#id_curate_now")
    me.shot("form with curate now")
    page.click("#url-ingest-form input[type=submit]")

    page.wait_for_selector("#curate-now")
    note = Note.objects.get(path="Inbox/Web/Hybrid search for RAG.md")
    assert "curating it now" in page.inner_text(".messagelist")
    assert page.inner_text("#cn-state") == "Queued for a worker"
    assert page.locator(".cn-suggestion").count() == 0
    assert fits(page)
    me.shot("waiting for the worker")
    assert len(worker.queued) == 1 and not Job.objects.exists()

    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads
    worker()  # the operation makes the one-note job; django-q2 (sync) runs it against the API
    job = Job.objects.get()
    assert job.mode == "sync" and job.state == Job.State.SUCCEEDED

    page.wait_for_selector(".cn-suggestion >> nth=2")  # tags, description, related
    page.wait_for_function("() => document.getElementById('curate-now').dataset.final === '1'")
    assert page.evaluate("() => window.__sameDocument === true")  # no reload
    me.shot("suggestions arrived")
    assert page.inner_text("#cn-state") == "Succeeded"
    assert page.is_hidden("#cn-error") and page.is_visible("#cn-review")
    description = Suggestion.objects.get(job=job, note=note, field="description").value
    assert description in page.inner_text(".cn-suggestion[data-field=description]")
    tags = Suggestion.objects.get(job=job, note=note, field="tags")
    chips = page.locator(".cn-suggestion[data-field=tags] .vc-chip").all_inner_texts()
    assert chips == tags.value
    assert page.get_attribute("#cn-review a", "href") == f"/curation/review/note/{note.pk}/"
    assert fits(page)

    # Ready to review: approve the tags right there.
    page.click(".cn-suggestion[data-field=tags] button.vc-approve")
    page.wait_for_selector(".messagelist .success")
    me.shot("tags approved")
    tags.refresh_from_db()
    assert tags.state == Suggestion.State.APPROVED
    assert "Approved" in page.inner_text(".cn-suggestion[data-field=tags]")
    assert page.locator(".cn-suggestion[data-field=tags] button").count() == 0


def test_curate_now_from_a_note_page_shows_why_it_was_refused(
    open_session, users, sample_vault, worker, settings
):
    settings.CURATION_MAX_JOB_COST = "0.000001"
    note = Note.objects.filter(vault=sample_vault, state=Note.State.OK).order_by("path").first()
    me = open_session("admin")
    me.page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    me.login("admin")
    page = me.go(f"/ingest/note/{note.pk}/change/")
    page.click("#curate-now-button")
    page.wait_for_selector("#curate-now[data-status-url]")
    assert page.is_hidden("#cn-error")
    worker()
    page.wait_for_selector("#cn-error:not([hidden])")
    me.shot("refused over the budget")
    assert "is over the maximum of $0.000001" in page.inner_text("#cn-error")
    assert page.inner_text("#cn-state") == "Refused"
    assert Operation.objects.get().state == Operation.State.FAILED and not Job.objects.exists()

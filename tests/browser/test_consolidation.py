"""Browser: a curator proposes tag consolidation for the sample vault from the Vault admin (a
small form with mode, maximum cost and the estimate), lands on the job's live page, which
lists the proposed merges once a worker ends the job; a moderator approves one from there."""

import pytest

from curation.engine import jobs
from curation.models import Job, TagConsolidation, TagRename

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_worker(monkeypatch):
    """The job is queued but not run: the test plays the worker, so the page is seen live."""
    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job_id: "")


def test_consolidation_form_job_page_and_review(
    open_session, users, sample_vault, emulator, settings, no_worker
):
    me = open_session("admin")
    me.login("admin")
    page = me.go("/ingest/vault/")
    page.check(f"input[name=_selected_action][value='{sample_vault.pk}']")
    page.select_option("select[name=action]", "consolidate_vault_tags")
    page.click("button[name=index]")
    page.wait_for_selector("#curate-form")
    assert "Sample vault has" in page.inner_text("#consolidate-tags")
    realtime = page.inner_text("#estimate-cost")
    assert realtime.startswith("$") and float(realtime[1:]) > 0
    assert "one by one" in page.inner_text("#estimate-mode")  # auto: one request, real time
    page.select_option("select[name=mode]", "batch")
    page.wait_for_function(
        "() => document.getElementById('estimate-mode').textContent.includes('Batches')"
    )
    assert float(page.inner_text("#estimate-cost")[1:]) < float(realtime[1:])
    me.shot("consolidation form with the estimate")
    page.select_option("select[name=mode]", "sync")
    page.click("#curate-form input[name=apply]")
    page.wait_for_selector("#job-merges")
    job = Job.objects.get()
    assert job.kind == Job.Kind.CONSOLIDATE and job.state == Job.State.PENDING
    assert page.url.endswith(f"/curation/jobs/{job.id}/")
    me.shot("job page while queued")

    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True  # the worker's turn
    page.wait_for_selector("#job-merge-list", timeout=15_000)  # the page polls, then reloads
    merges = page.inner_text("#job-merge-list")
    assert "AI" in merges and "ai" in merges
    me.shot("job page lists the proposed merges")

    page.click("#job-merges a")
    page.wait_for_selector("#result_list")
    merge = TagConsolidation.objects.get(job=job, old="AI")
    page.check(f"input[name=_selected_action][value='{merge.pk}']")
    page.select_option("select[name=action]", "approve_consolidations")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist .success")
    me.shot("merge approved")
    rename = TagRename.objects.get()
    assert (rename.old, rename.new, rename.decided_by.username) == ("AI", "ai", "admin")

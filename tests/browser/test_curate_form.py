"""Browser: the curate form shows the estimate before submitting, follows the chosen mode, and
warns about notes whose suggestions still await review (skip them or replace them)."""

import pytest
from django.db.models import Q

from curation.models import Item, Job, Operation
from ingest.models import Note
from tests.browser.test_pages_fit import assert_fits, fitted

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_worker(monkeypatch):
    """The job is created by the operation (sync in tests) but never run."""
    from curation.engine import jobs

    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job_id: "")


def test_estimate_and_recuration_warning(open_session, users, sample_vault, curated, no_worker):
    # The folder filter selects AI and its subfolders.
    in_ai = Q(folder="AI") | Q(folder__startswith="AI/")
    ai = list(Note.objects.filter(in_ai, vault=sample_vault, state=Note.State.OK))
    curated([n.id for n in ai])  # these now have pending suggestions
    me = fitted(open_session("admin"))
    me.login("admin")
    page = me.go("/ingest/note/?folder=AI")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "curate_selected_notes")
    page.click("button[name=index]")
    page.wait_for_selector("#curate-form")
    assert_fits(me, "curate form with estimate and warning")
    estimate = page.inner_text("#estimate-cost")
    assert estimate.startswith("$") and float(estimate[1:]) > 0
    assert "Message Batches" in page.inner_text("#estimate-mode")
    warning = page.inner_text("#curate-pending")
    assert f"{len(ai)} of the selected notes already have suggestions awaiting review" in warning

    page.select_option("select[name=mode]", "sync")
    page.wait_for_function(
        "() => document.getElementById('estimate-mode').textContent.includes('one by one')"
    )
    realtime = page.inner_text("#estimate-cost")
    assert float(realtime[1:]) > float(estimate[1:])  # real time costs twice the batch price
    me.shot("estimate for real time")

    page.check("#curate-pending input[value=skip]")
    page.click("#curate-form input[name=apply]")
    page.wait_for_selector("#op-state")
    me.shot("curate operation")
    op = Operation.objects.get(kind=Operation.Kind.CURATE)
    assert op.state == Operation.State.FAILED  # every selected note was left out
    assert "already has suggestions" in page.inner_text("#op-error")

    # Replace: a job over every selected note.
    page = me.go("/ingest/note/?folder=AI")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "curate_selected_notes")
    page.click("button[name=index]")
    page.wait_for_selector("#curate-form")
    page.check("#curate-pending input[value=replace]")
    page.click("#curate-form input[name=apply]")
    page.wait_for_selector("#op-job-link")
    me.shot("job created over every note")
    job = Job.objects.order_by("-id").first()
    assert Item.objects.filter(job=job).count() == len(ai)

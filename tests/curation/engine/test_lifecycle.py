"""Job lifecycle bugs of issue 14, each with the test that would have caught it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from curation.api import client
from curation.dashboard import dashboard_counts
from curation.engine import items, jobs
from curation.models import Batch, Item, Job

pytestmark = pytest.mark.django_db

FIELDS = ["tags", "description"]


def create(make_notes, n, **kwargs):
    notes = make_notes(n)
    kwargs.setdefault("fields", FIELDS)
    return jobs.job_create(notes=[note.id for note in notes], **kwargs)


def run(job):
    assert jobs.job_run(job_id=job.id) is True
    job.refresh_from_db()
    return job


def test_retry_failed_items_leaves_a_canceled_job_canceled(
    emulator, make_notes, fast_polls, django_capture_on_commit_callbacks
):
    job = create(make_notes, 3, mode="sync")
    Item.objects.filter(id=job.items.first().id).update(state=Item.State.FAILED, error="x")
    jobs.job_cancel(job_id=job.id)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.job_retry_failed(job_id=job.id) == 0
    job.refresh_from_db()
    assert job.state == Job.State.CANCELED and job.finished_at is not None
    assert job.items.filter(state=Item.State.FAILED).count() == 1


def test_retrying_an_old_batch_job_does_not_hedge_at_once(
    emulator, make_notes, fast_polls, settings, django_capture_on_commit_callbacks
):
    settings.CURATION_HEDGE_AFTER_SECONDS = 60
    settings.CURATION_MAX_ATTEMPTS = 1
    emulator.configure(fault_errored=0.5, fault_attempts=0)
    job = run(create(make_notes, 6, mode="batch"))
    failed = job.items.filter(state=Item.State.FAILED).count()
    assert job.state == Job.State.FAILED and failed
    Job.objects.filter(id=job.id).update(started_at=timezone.now() - timedelta(hours=2))
    emulator.configure(fault_errored=0)
    messages_before = emulator.stats()["messages"]
    with django_capture_on_commit_callbacks(execute=False):
        assert jobs.job_retry_failed(job_id=job.id) == failed
    jobs.job_step(job_id=job.id)  # the first pass after the retry
    job.refresh_from_db()
    assert job.mode == "batch"  # not hedged: the hedge counts from the retry
    assert emulator.stats()["messages"] == messages_before  # no real-time call at full price
    assert run(job).state == Job.State.SUCCEEDED


def test_batches_of_a_canceled_job_end(emulator, make_notes, fast_polls):
    emulator.configure(batch_seconds=30, cancel_seconds=0.05)
    job = create(make_notes, 4, mode="batch")
    jobs.job_step(job_id=job.id)  # submits the batch
    assert Batch.objects.get(job=job).state == Batch.State.IN_PROGRESS
    jobs.job_cancel(job_id=job.id)
    assert Batch.objects.get(job=job).state == Batch.State.CANCELING
    jobs.job_run(job_id=job.id)  # the worker carries on until the provider ended the batch
    batch = Batch.objects.get(job=job)
    assert batch.state == Batch.State.APPLIED, batch.state
    job.refresh_from_db()
    assert job.state == Job.State.CANCELED
    assert set(job.items.values_list("state", flat=True)) == {Item.State.CANCELED}


def test_a_job_whose_remaining_items_were_canceled_ends_canceled(emulator, make_notes, fast_polls):
    job = create(make_notes, 3, mode="sync")
    first, *rest = job.items.order_by("id")
    items.items_cancel(item_ids=[item.id for item in rest])
    job = run(job)
    assert job.items.get(id=first.id).state == Item.State.SUCCEEDED
    assert job.state == Job.State.CANCELED


def test_cancel_after_the_job_ended_says_so_and_changes_nothing(
    admin_client, emulator, make_notes, fast_polls
):
    job = run(create(make_notes, 2, mode="sync"))
    assert job.state == Job.State.SUCCEEDED
    page = admin_client.get(reverse("curation:job", args=[job.id]))
    assert 'value="Cancel job"' not in page.content.decode()
    answer = admin_client.post(reverse("curation:job-cancel", args=[job.id]), follow=True)
    said = [str(m) for m in answer.context["messages"]]
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert said == [f"Job {job.id} had already ended (Succeeded): nothing to cancel."]


def test_saved_by_batching_counts_retried_and_hedged_items(emulator, make_notes, fast_polls):
    job = create(make_notes, 1, mode="batch")
    item = job.items.get()
    batch = Batch.objects.create(job=job, state=Batch.State.IN_PROGRESS, provider_id="b1")
    usage = {"input_tokens": 100_000, "output_tokens": 0}
    # Attempt 1 in a batch: billed at the batch price, then errored (an invalid answer).
    Item.objects.filter(id=item.id).update(batch=batch, state=Item.State.SUBMITTED, attempts=1)
    items.apply_outcomes(job=job, batch_id=batch.id, pairs=[(
        items.ItemRef(item.id, item.note_id, 1),
        client.Outcome(state="errored", usage=usage, error="invalid answer"),
    )])
    batch_price = Item.objects.get(id=item.id).cost
    assert batch_price > 0
    # Attempt 2 in real time (a retry, or after a hedge): out of its batch.
    items.items_requeue(job=job)
    assert items.items_claim(job_id=job.id, item_ids=[item.id]) == 1
    items.apply_outcomes(job=job, batch_id=None, pairs=[(
        items.ItemRef(item.id, item.note_id, 2),
        client.Outcome(state="errored", usage=usage, error="invalid answer"),
    )])
    item = Item.objects.get(id=item.id)
    assert item.batch_id is None and item.cost == batch_price * 3  # real time: twice the price
    d = dashboard_counts()
    assert d.batch_cost == batch_price
    assert d.saved == batch_price  # real time would have cost twice what the batch did
    assert d.saved > Decimal("0")

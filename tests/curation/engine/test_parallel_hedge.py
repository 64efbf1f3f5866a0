"""Hedged fallback: a late batch job switched to parallel; one suggestion per item, always."""

import time

import pytest
from django.db import IntegrityError, transaction

from curation.api import client
from curation.engine import batch as batch_mode
from curation.engine import items, jobs, parallel
from curation.models import Batch, Item, Job, Suggestion

pytestmark = pytest.mark.django_db

FIELDS = ["tags", "description"]


@pytest.fixture
def fast(settings, fast_polls):
    settings.CURATION_CONCURRENCY = 3
    return settings


def suggestions_per_item(job):
    return [Suggestion.objects.filter(item=item).count() for item in Item.objects.filter(job=job)]


def test_manual_switch_ignores_the_canceled_batch_s_late_results(emulator, make_notes, fast):
    # The batch is still running when switched; once canceled it ends and returns results
    # for the requests it had processed: those arrive after parallel mode answered them.
    emulator.configure(batch_seconds=1.0, cancel_seconds=0.3)
    notes = make_notes(6)
    job = jobs.job_create(notes=[n.id for n in notes], fields=FIELDS, mode="batch")
    jobs.job_step(job_id=job.id)  # prepares and submits the batch
    batch = Batch.objects.get(job=job)
    assert batch.state == Batch.State.IN_PROGRESS
    assert set(Item.objects.filter(job=job).values_list("state", flat=True)) == {"submitted"}

    assert parallel.job_hedge(job_id=job.id) == 6
    job.refresh_from_db()
    batch.refresh_from_db()
    assert job.mode == "parallel" and batch.state == Batch.State.CANCELING
    assert parallel.job_hedge(job_id=job.id) is None  # only a batch job can be switched

    assert jobs.job_run(job_id=job.id) is True
    job.refresh_from_db()
    batch.refresh_from_db()
    stats = emulator.stats()
    assert job.state == Job.State.SUCCEEDED
    assert batch.state == Batch.State.APPLIED  # polled to its end, its results ignored
    assert stats["items_succeeded"] >= 1  # the canceled batch did return answers...
    assert max(stats["notes_ok"].values()) == 2  # ...for notes parallel mode answered too
    assert suggestions_per_item(job) == [2] * 6  # ...and none of them was applied
    for item in Item.objects.filter(job=job):
        assert item.state == Item.State.SUCCEEDED and item.batch_id is None
        assert item.attempts == 1  # the abandoned batch attempt was given back
        assert item.cost > 0

    # The same late results delivered again change nothing either.
    Batch.objects.filter(id=batch.id).update(state=Batch.State.ENDED)
    assert batch_mode.batch_apply_results(batch_id=batch.id) == 0
    assert suggestions_per_item(job) == [2] * 6


def test_automatic_switch_after_the_hedge_deadline(emulator, make_notes, fast):
    fast.CURATION_HEDGE_AFTER_SECONDS = 0.3
    emulator.configure(batch_seconds=60)  # the batch would take a minute
    notes = make_notes(5)
    job = jobs.job_create(notes=[n.id for n in notes], fields=FIELDS, mode="batch")
    started = time.monotonic()
    assert jobs.job_run(job_id=job.id, budget=30) is True
    assert time.monotonic() - started < 30
    job.refresh_from_db()
    stats = emulator.stats()
    assert job.mode == "parallel" and job.state == Job.State.SUCCEEDED
    assert stats["batches"] == 1 and stats["batches_canceled"] == 1
    assert stats["messages"] == 5  # every note once in real time
    assert suggestions_per_item(job) == [2] * 5
    assert Batch.objects.get(job=job).state == Batch.State.APPLIED


def test_no_automatic_switch_when_the_hedge_is_off(emulator, make_notes, fast):
    assert parallel.hedge_after_seconds() == 0  # the default: only by hand
    notes = make_notes(3)
    job = jobs.job_create(notes=[n.id for n in notes], fields=FIELDS, mode="batch")
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    job.refresh_from_db()
    assert job.mode == "batch" and job.state == Job.State.SUCCEEDED
    assert emulator.stats()["messages"] == 0


def test_switch_before_submission_closes_the_prepared_batch(emulator, make_notes, fast):
    notes = make_notes(4)
    job = jobs.job_create(notes=[n.id for n in notes], fields=FIELDS, mode="batch")
    Job.objects.filter(id=job.id).update(state=Job.State.RUNNING)
    batch_mode.batches_prepare(job=job)
    assert parallel.job_hedge(job_id=job.id) == 4
    assert Batch.objects.get(job=job).state == Batch.State.FAILED
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    assert emulator.stats()["batches"] == 0 and emulator.stats()["messages"] == 4
    assert suggestions_per_item(job) == [2] * 4


def test_one_suggestion_per_item_and_field_is_enforced_by_the_database(
    emulator, make_notes, fast
):
    notes = make_notes(2)
    job = jobs.job_create(notes=[n.id for n in notes], fields=FIELDS, mode="parallel")
    jobs.job_run(job_id=job.id, sleep=lambda s: None)
    s = Suggestion.objects.filter(job=job).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Suggestion.objects.create(
            item=s.item, note=s.note, job=job, field=s.field, value=["dup"], model=s.model
        )
    # An answer for an item that already succeeded is not applied a second time.
    item = s.item
    outcome = client.Outcome(state="succeeded", answer=None, usage={}, raw={})
    assert items.apply_outcome(item=item, outcome=outcome, job=job) is False
    assert suggestions_per_item(job) == [2, 2]

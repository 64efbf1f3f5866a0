"""A budget per job: refused before it starts when estimated over it, stopped when it runs out."""

from decimal import Decimal

import pytest

from curation.api import pricing
from curation.engine import items, jobs
from curation.models import Batch, Item, Job, Mode

pytestmark = pytest.mark.django_db


def test_the_default_budget_is_the_setting(settings, make_notes):
    make_notes(2)
    assert settings.CURATION_MAX_JOB_COST == Decimal("10")  # the declared default
    job = jobs.job_create(notes=[n.id for n in make_notes(2)], mode=Mode.SYNC)
    assert job.max_cost == Decimal("10") and 0 < job.cost_estimate < job.max_cost
    settings.CURATION_MAX_JOB_COST = Decimal("0")
    assert jobs.job_create(notes=[n.id for n in make_notes(1)]).max_cost is None  # 0: no limit
    assert jobs.job_create(notes=[n.id for n in make_notes(1)], max_cost="2.5").max_cost == \
        Decimal("2.5")


def test_a_job_estimated_over_its_budget_is_refused_before_anything_is_sent(
        emulator, make_notes):
    notes = make_notes(5)
    with pytest.raises(jobs.OverBudget) as info:
        jobs.job_create(notes=[n.id for n in notes], max_cost=Decimal("0.0001"))
    reason = str(info.value)
    assert "over the maximum of $0.0001" in reason and "\n" not in reason
    assert not Job.objects.exists() and not Item.objects.exists()
    stats = emulator.stats()
    assert stats["messages"] == 0 and stats["batches"] == 0 and stats["count_tokens"] > 0


def test_a_model_with_no_known_price_is_refused_before_anything_is_sent(
        emulator, make_notes, settings):
    settings.CURATION_MODEL = "claude-mystery-9"
    with pytest.raises(pricing.UnknownPrice, match="no price is known for model 'claude-mystery-9'"):
        jobs.job_create(notes=[n.id for n in make_notes(3)])
    assert not Job.objects.exists() and emulator.stats()["requests"] == 0
    settings.CURATION_PRICES = {"claude-mystery-9": {"input": 1, "output": 5}}
    assert jobs.job_create(notes=[n.id for n in make_notes(1)]).cost_estimate > 0


def budget_of(job: Job, items_worth: float) -> Decimal:
    """A budget worth that many items at the estimate's price per item."""
    per_item = job.cost_estimate / job.items.count()
    Job.objects.filter(id=job.id).update(max_cost=per_item * Decimal(str(items_worth)))
    return per_item


def sent_notes(emulator) -> int:
    return sum(emulator.stats()["notes"].values())


def assert_stopped_by_budget(job: Job, emulator, sent: int):
    job.refresh_from_db()
    assert job.is_final
    canceled = job.items.filter(state=Item.State.CANCELED)
    assert canceled.count() == job.items.count() - sent > 0
    assert set(canceled.values_list("error", flat=True)) == {"budget reached"}
    assert job.items.filter(state=Item.State.SUCCEEDED).count() == sent == sent_notes(emulator)
    assert job.cost <= job.max_cost + job.cost_estimate / job.items.count()  # one item's slack
    assert "budget reached" in job.error


def test_a_sync_job_reaching_its_budget_stops_sending(emulator, make_notes, fast_polls):
    job = jobs.job_create(notes=[n.id for n in make_notes(6)], mode=Mode.SYNC)
    budget_of(job, 2.5)
    assert jobs.job_run(job_id=job.id, budget=60)
    assert_stopped_by_budget(job, emulator, sent=2)


def test_a_batch_job_reaching_its_budget_submits_no_further_batch(
        emulator, make_notes, fast_polls, settings):
    settings.CURATION_BATCH_SIZE = 2
    job = jobs.job_create(notes=[n.id for n in make_notes(6)], mode=Mode.BATCH)
    budget_of(job, 3.5)
    assert jobs.job_run(job_id=job.id, budget=60)
    assert emulator.stats()["batches"] == 1 and emulator.stats()["batch_requests"] == 2
    assert_stopped_by_budget(job, emulator, sent=2)


def test_a_parallel_job_reaching_its_budget_stops_claiming(emulator, make_notes, fast_polls):
    job = jobs.job_create(notes=[n.id for n in make_notes(8)], mode=Mode.PARALLEL)
    budget_of(job, 3.5)
    assert jobs.job_run(job_id=job.id, budget=60)
    assert_stopped_by_budget(job, emulator, sent=3)


def test_a_job_within_its_budget_is_not_stopped(emulator, make_notes, fast_polls):
    job = jobs.job_create(notes=[n.id for n in make_notes(6)], mode=Mode.SYNC)
    assert job.max_cost == Decimal("10")
    assert jobs.job_run(job_id=job.id, budget=60)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.error == ""


def test_the_budget_is_looked_at_a_few_times_not_once_per_request(make_notes):
    job = jobs.job_create(notes=[n.id for n in make_notes(200)], mode=Mode.BATCH)
    per_item = budget_of(job, 200)
    looks = 0
    real = Item.objects.filter

    def counting(*args, **kwargs):
        nonlocal looks
        looks += 1
        return real(*args, **kwargs)

    Item.objects.filter = counting
    try:
        for _ in range(150):
            assert items.budget_allows(job_id=job.id, sending=1)
    finally:
        del Item.objects.filter
    assert per_item > 0 and looks <= 10
    assert not Batch.objects.exists()

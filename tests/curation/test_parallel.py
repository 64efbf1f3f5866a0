"""Parallel mode: bounded concurrency, retries on 429/529, cancel, crash and resume, per item."""

import threading

import pytest

from curation import jobs, parallel
from curation.models import Item, Job, Suggestion

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast(settings, fast_polls):
    settings.CURATION_CONCURRENCY = 3
    settings.CURATION_MAX_ATTEMPTS = 3
    return settings


def create(notes, **kwargs):
    kwargs.setdefault("fields", ["tags", "description"])
    kwargs.setdefault("mode", "parallel")
    return jobs.job_create(notes=[n.id for n in notes], **kwargs)


def run(job):
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    job.refresh_from_db()
    return job


def suggestions_per_item(job):
    return {
        item.id: Suggestion.objects.filter(item=item).count() for item in Item.objects.filter(job=job)
    }


def test_concurrency_is_bounded_and_every_item_succeeds(emulator, make_notes, fast):
    emulator.configure(latency=0.05)
    notes = make_notes(10)
    job = run(create(notes))
    stats = emulator.stats()
    assert job.mode == "parallel" and job.state == Job.State.SUCCEEDED
    assert stats["messages"] == 10 and stats["batches"] == 0
    assert 1 < stats["max_in_flight"] <= 3
    assert set(stats["notes"].values()) == {1}
    assert set(suggestions_per_item(job).values()) == {2}
    assert job.cost == sum(i.cost for i in Item.objects.filter(job=job)) > 0

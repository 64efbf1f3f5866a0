"""Parallel mode: bounded concurrency, retries on 429/529, cancel, crash and resume, per item."""


import pytest

from curation.engine import items, jobs, parallel
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
    items = Item.objects.filter(job=job)
    return {item.id: Suggestion.objects.filter(item=item).count() for item in items}


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


def test_429_with_retry_after_and_529_are_retried_to_success(emulator, make_notes, fast):
    emulator.configure(fault_429=0.3, fault_529=0.3)  # each faulty note fails its first call
    notes = make_notes(12)
    job = run(create(notes))
    stats = emulator.stats()
    assert stats["status_429"] > 0 and stats["status_529"] > 0
    assert job.state == Job.State.SUCCEEDED
    # The transient failures were retried inside one attempt: no attempt was used up.
    assert set(Item.objects.filter(job=job).values_list("attempts", flat=True)) == {1}
    assert stats["messages"] == 12 + stats["status_429"] + stats["status_529"]
    assert set(suggestions_per_item(job).values()) == {2}


def test_a_note_that_keeps_failing_uses_its_attempts_then_fails_with_the_reason(
    emulator, make_notes, fast
):
    fast.CURATION_PARALLEL_RETRIES = 1
    fast.CURATION_MAX_ATTEMPTS = 2
    emulator.configure(fault_500=0.5, fault_attempts=0)  # the faulty notes fail every call
    notes = make_notes(8)
    job = run(create(notes))
    failed = Item.objects.filter(job=job, state=Item.State.FAILED)
    assert failed.exists() and job.state == Job.State.FAILED
    for item in failed:
        assert item.attempts == 2
        assert "HTTP 500" in item.error and "gave up after 2 attempts" in item.error
        assert not Suggestion.objects.filter(item=item).exists()
    # 2 attempts x (1 call + 1 transient retry) per failing note, no more.
    for path, sent in emulator.stats()["notes"].items():
        assert sent in (1, 4), (path, sent)


def test_rate_limit_headers_pace_the_calls_before_the_limit(emulator, make_notes, fast):
    fast.CURATION_CONCURRENCY = 4
    emulator.configure(latency=0.02, rpm=5, rate_window=0.4)
    notes = make_notes(12)
    job = run(create(notes))
    stats = emulator.stats()
    assert job.state == Job.State.SUCCEEDED
    assert stats["rate_limited"] <= 1  # paced by the headers, not by 429s
    assert set(Item.objects.filter(job=job).values_list("attempts", flat=True)) == {1}


def claim_hook(monkeypatch, after_claim):
    """Call after_claim(run, item_id, n) right after the n-th item is claimed (n from 1)."""
    original = parallel.ParallelRun.claim
    count = {"n": 0}

    def claim(self, item_id):
        claimed = original(self, item_id)
        if claimed is not None:
            count["n"] += 1
            after_claim(self, item_id, count["n"])
        return claimed

    monkeypatch.setattr(parallel.ParallelRun, "claim", claim)


@pytest.mark.parametrize("watch", [True, False], ids=["call-abandoned", "late-answer-discarded"])
def test_cancel_one_item_while_its_call_runs(emulator, make_notes, fast, monkeypatch, watch):
    if not watch:
        monkeypatch.setattr(parallel, "CHECK_SECONDS", 60)  # the answer arrives: it is discarded
    emulator.configure(latency=0.3)
    notes = make_notes(6)
    job = create(notes)
    victim = []

    def cancel_second(run, item_id, n):
        if n == 2:
            victim.append(item_id)
            assert items.items_cancel(item_ids=[item_id]) == 1

    claim_hook(monkeypatch, cancel_second)
    job = run(job)
    item = Item.objects.get(id=victim[0])
    assert item.state == Item.State.CANCELED and item.error == "canceled"
    assert not Suggestion.objects.filter(item=item).exists()
    assert item.cost == 0 and item.result is None
    others = Item.objects.filter(job=job).exclude(id=item.id)
    assert set(others.values_list("state", flat=True)) == {Item.State.SUCCEEDED}
    assert job.state == Job.State.CANCELED  # nothing failed; what was left was canceled
    if not watch:
        assert emulator.stats()["notes_ok"][item.note.path] == 1  # the answer came, unused


def test_cancel_the_job_mid_run_stops_sending_and_discards_answers(
    emulator, make_notes, fast, monkeypatch
):
    emulator.configure(latency=0.1)
    notes = make_notes(20)
    job = create(notes)
    claim_hook(
        monkeypatch, lambda run, item_id, n: n == 5 and jobs.job_cancel(job_id=run.job.id)
    )
    job = run(job)
    assert job.state == Job.State.CANCELED
    stats = emulator.stats()
    assert stats["messages"] <= 5 + 3  # nothing claimed after the cancel
    succeeded = Item.objects.filter(job=job, state=Item.State.SUCCEEDED)
    canceled = Item.objects.filter(job=job, state=Item.State.CANCELED)
    assert succeeded.count() + canceled.count() == 20 and canceled.count() >= 15
    assert Suggestion.objects.filter(job=job).count() == 2 * succeeded.count()
    assert not Suggestion.objects.filter(item__in=canceled).exists()


def test_a_crash_mid_job_resumes_without_repeating_finished_items(
    emulator, make_notes, fast, monkeypatch
):
    emulator.configure(latency=0.05)
    notes = make_notes(15)
    job = create(notes)
    real_apply = items.apply_outcome
    calls = {"n": 0}

    def crashing_apply(**kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("worker died")
        return real_apply(**kwargs)

    monkeypatch.setattr(items, "apply_outcome", crashing_apply)
    with pytest.raises(RuntimeError, match="worker died"):
        jobs.job_run(job_id=job.id, sleep=lambda s: None)
    succeeded = Item.objects.filter(job=job, state=Item.State.SUCCEEDED)
    done_before = set(succeeded.values_list("note__path", flat=True))
    # Five saved before the crash; an answer already in hand while stopping may be saved too.
    assert 5 <= len(done_before) <= 7
    assert not Item.objects.filter(job=job, state=Item.State.SUBMITTED).exists()  # released

    monkeypatch.setattr(items, "apply_outcome", real_apply)
    job = run(job)
    assert job.state == Job.State.SUCCEEDED
    sent = emulator.stats()["notes"]
    for path in done_before:
        assert sent[path] == 1, path  # finished before the crash: never sent again
    # Only the calls in flight at the crash (at most the concurrency) were sent twice.
    assert sum(sent.values()) - 15 <= 3
    assert set(suggestions_per_item(job).values()) == {2}


def test_a_killed_worker_s_calls_are_retried_by_the_next_run_at_once(
    emulator, make_notes, fast
):
    notes = make_notes(4)
    job = create(notes)
    # As a SIGKILL leaves it: two items claimed (an attempt counted), never answered.
    Job.objects.filter(id=job.id).update(state=Job.State.RUNNING)
    lost = list(Item.objects.filter(job=job).order_by("id")[:2].values_list("id", flat=True))
    Item.objects.filter(id__in=lost).update(state=Item.State.SUBMITTED, attempts=1)
    job = run(job)
    assert job.state == Job.State.SUCCEEDED
    assert set(Item.objects.filter(id__in=lost).values_list("attempts", flat=True)) == {2}
    assert set(emulator.stats()["notes"].values()) == {1}


def test_without_an_api_key_every_item_fails_with_the_reason(make_notes, fast, monkeypatch):
    from curation.api import client

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    client.reset_clients()
    job = run(create(make_notes(3)))
    assert job.state == Job.State.FAILED
    for item in Item.objects.filter(job=job):
        assert item.state == Item.State.FAILED and "ANTHROPIC_API_KEY is not set" in item.error
        assert item.attempts == 0  # the job ends at once: no retry can mend a missing key
    assert "ANTHROPIC_API_KEY is not set" in job.error

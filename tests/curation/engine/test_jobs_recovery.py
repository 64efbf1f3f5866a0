"""Crashes, duplicate deliveries, cancel and stray results: nothing is sent or applied twice."""

import logging
import pydoc
import time

import pytest

from curation.api import client
from curation.engine import batch as batch_mode
from curation.engine import jobs, tasks
from curation.models import Batch, Item, Job, Suggestion

pytestmark = pytest.mark.django_db


def create(make_notes, n, **kwargs):
    notes = make_notes(n)
    kwargs.setdefault("fields", ["tags", "description"])
    return jobs.job_create(notes=[note.id for note in notes], **kwargs)


def finish(job):
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    job.refresh_from_db()
    return job


def test_custom_ids_are_safe_unique_and_name_their_row():
    ids = {
        jobs.custom_id_for(item_id=42, name="Building RAG Systems"):
            "item_00000042_Building_RAG_Systems",
        jobs.custom_id_for(item_id=7, name="🚀 Launch: plan/ü"): "item_00000007_Launch_plan",
        jobs.custom_id_for(item_id=8, name="🚀"): "item_00000008",
    }  # fmt: skip
    for got, want in ids.items():
        assert got == want
    long = jobs.custom_id_for(item_id=123456789, name="x" * 300)
    assert len(long) == 64 and long.startswith("item_123456789_")


def test_job_create_makes_no_query_per_note(make_notes, django_assert_max_num_queries, emulator):
    notes = make_notes(4500)
    # Inserts are chunked (SQLite takes ~80 rows per INSERT): far fewer queries than notes.
    with django_assert_max_num_queries(150):
        job = jobs.job_create(notes=[n.id for n in notes], fields=["tags"])
    assert job.items.count() == 4500
    assert job.items.filter(custom_id__isnull=True).count() == 0
    assert job.cost_estimate > 0


def test_killed_between_submit_and_save_does_not_submit_twice(
    emulator, make_notes, fast_polls, monkeypatch
):
    job = create(make_notes, 5)

    def die(**kwargs):
        raise SystemExit("worker killed")  # the provider has the batch; we never saved its id

    with monkeypatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(batch_mode, "batch_mark_submitted", die)
        jobs.job_step(job_id=job.id)
    batch = Batch.objects.get(job=job)
    assert batch.state == Batch.State.SUBMITTING and batch.provider_id is None
    assert emulator.stats()["batches"] == 1

    # A fresh step does not touch a batch that a live task may still be submitting...
    jobs.job_step(job_id=job.id)
    assert Batch.objects.get(id=batch.id).state == Batch.State.SUBMITTING
    # ...and reconciling once it is stale adopts the provider's batch instead of resending.
    assert batch_mode.batch_reconcile(batch_id=batch.id, stale_after=0) is True
    job = finish(job)
    assert job.state == Job.State.SUCCEEDED
    stats = emulator.stats()
    assert stats["batches"] == 1 and stats["batch_requests"] == 5
    assert set(Item.objects.filter(job=job).values_list("attempts", flat=True)) == {1}
    assert Suggestion.objects.filter(job=job).count() == 10


def test_killed_before_the_provider_got_it_resubmits_once(
    emulator, make_notes, fast_polls, monkeypatch
):
    job = create(make_notes, 5)

    def die(requests):
        raise SystemExit("worker killed before the request left")

    with monkeypatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(client, "submit_batch", die)
        jobs.job_step(job_id=job.id)
    assert emulator.stats()["batches"] == 0
    job = finish(job)  # the next run, holding the job's lease, reconciles at once
    assert job.state == Job.State.SUCCEEDED
    # Not found at the provider: the same batch is sent again; the lost call used no attempt.
    (only,) = Batch.objects.filter(job=job)
    assert only.state == Batch.State.APPLIED
    assert emulator.stats()["batches"] == 1
    assert set(Item.objects.filter(job=job).values_list("attempts", flat=True)) == {1}


def test_a_submit_error_sends_the_items_back(emulator, make_notes, fast_polls, monkeypatch):
    job = create(make_notes, 3)
    real = client.submit_batch
    calls = []

    def flaky(requests):
        calls.append(1)
        if len(calls) == 1:
            raise client.ApiError("HTTP 500 api_error: boom", status=500)
        return real(requests)

    monkeypatch.setattr(client, "submit_batch", flaky)
    job = finish(job)
    assert job.state == Job.State.SUCCEEDED and len(calls) == 2
    # A 500 may have made the batch: it was looked for, not found, and the same batch sent
    # again; the refused call used none of the items' attempts.
    (only,) = Batch.objects.filter(job=job)
    assert only.state == Batch.State.APPLIED and only.refusals == 0
    assert set(Item.objects.filter(job=job).values_list("attempts", flat=True)) == {1}


def test_duplicate_task_delivery_is_harmless(emulator, make_notes, fast_polls):
    emulator.configure(batch_seconds=0.2)
    job = create(make_notes, 8)
    # Two workers got the same task: their passes interleave.
    for _ in range(3):
        jobs.job_step(job_id=job.id)
        jobs.job_step(job_id=job.id)
    time.sleep(0.25)
    jobs.job_step(job_id=job.id)
    jobs.job_step(job_id=job.id)
    tasks.run_job(job.id)
    tasks.run_job(job.id)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert emulator.stats()["batches"] == 1
    assert Suggestion.objects.filter(job=job).count() == 16
    # Applying the same results again changes nothing.
    batch = Batch.objects.get(job=job)
    Batch.objects.filter(id=batch.id).update(state=Batch.State.ENDED)
    assert batch_mode.batch_apply_results(batch_id=batch.id) == 0
    assert Suggestion.objects.filter(job=job).count() == 16
    assert set(Item.objects.filter(job=job).values_list("state", "attempts")) == {("succeeded", 1)}


def test_results_for_unknown_ids_are_logged_and_ignored(
    emulator, make_notes, fast_polls, monkeypatch, caplog
):
    other = create(make_notes, 2)  # another job's item must not take this batch's result
    stray = other.items.first()
    job = create(make_notes, 3)
    real = client.iter_results

    def with_strays(batch_id, **kwargs):
        answers = list(real(batch_id, **kwargs))
        good = answers[0][1]
        return iter([("item_99999999_ghost", good), (stray.custom_id, good), *answers])

    monkeypatch.setattr(client, "iter_results", with_strays)
    with caplog.at_level(logging.WARNING, logger="curation.engine"):
        job = finish(job)
    assert job.state == Job.State.SUCCEEDED
    assert "unknown custom_id='item_99999999_ghost'" in caplog.text
    stray.refresh_from_db()
    assert stray.state == Item.State.PENDING and not stray.suggestions.exists()


def test_cancel_stops_the_provider_batch_and_discards_late_results(
    emulator, make_notes, fast_polls
):
    emulator.configure(batch_seconds=30, cancel_seconds=0)
    job = create(make_notes, 6)
    jobs.job_step(job_id=job.id)
    batch = Batch.objects.get(job=job)
    assert batch.state == Batch.State.IN_PROGRESS

    assert jobs.job_cancel(job_id=job.id) == 6
    job.refresh_from_db()
    assert job.state == Job.State.CANCELED and job.finished_at
    assert emulator.stats()["batches_canceled"] == 1
    assert Batch.objects.get(id=batch.id).state == Batch.State.CANCELING
    assert set(Item.objects.filter(job=job).values_list("state", flat=True)) == {"canceled"}
    # A late task only polls the canceled batch to its end (issue 14: none stays canceling).
    for _ in range(100):
        if jobs.job_step(job_id=job.id) is None:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the canceled job's batch never ended")
    assert set(Item.objects.filter(job=job).values_list("state", flat=True)) == {"canceled"}
    assert jobs.job_cancel(job_id=job.id) == 0

    # The provider's late answers (canceled ones here) never revive a canceled item.
    batch_mode.batch_poll(batch_id=batch.id)
    assert set(Item.objects.filter(job=job).values_list("state", flat=True)) == {"canceled"}
    assert not Suggestion.objects.filter(job=job).exists()


def test_cancel_a_sync_job_between_items(emulator, make_notes, fast_polls, monkeypatch):
    job = create(make_notes, 4, mode="sync")
    real = client.send_one
    sent = []

    def send_then_cancel(params, **kwargs):
        sent.append(1)
        outcome = real(params, **kwargs)
        if len(sent) == 2:
            jobs.job_cancel(job_id=job.id)
        return outcome

    monkeypatch.setattr(client, "send_one", send_then_cancel)
    job = finish(job)
    assert job.state == Job.State.CANCELED and len(sent) == 2
    states = list(Item.objects.filter(job=job).order_by("id").values_list("state", flat=True))
    assert states == ["succeeded", "canceled", "canceled", "canceled"]


def test_every_enqueue_resolves_and_runs(
    emulator, make_notes, fast_polls, django_capture_on_commit_callbacks
):
    assert pydoc.locate("curation.engine.tasks.run_job") is tasks.run_job
    job = create(make_notes, 3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        jobs.job_start(job_id=job.id)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED  # django-q2 ran the task inline (sync in tests)
    from django_q.models import Task

    tasks_run = list(Task.objects.filter(group=f"job-{job.id}"))
    assert tasks_run
    for task in tasks_run:
        assert task.func == "curation.engine.tasks.run_job" and task.success and task.args == (job.id,)


def test_run_job_task_hands_over_when_its_budget_is_spent(
    emulator, make_notes, fast_polls, settings, monkeypatch
):
    settings.CURATION_TASK_BUDGET = 0
    job = create(make_notes, 2)
    enqueued = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job_id: enqueued.append(job_id))
    assert tasks.run_job(job.id) == "continued" and enqueued == [job.id]
    assert tasks.run_job(999999) == "missing"


def test_polls_back_off_from_the_first_wait_up_to_the_longest(emulator, make_notes, settings):
    settings.CURATION_POLL_MIN_SECONDS = 2
    settings.CURATION_POLL_SECONDS = 5
    emulator.configure(batch_seconds=60)
    job = create(make_notes, 2)
    wait = jobs.job_step(job_id=job.id)  # prepares and submits
    batch = Batch.objects.get(job=job)
    assert batch.state == Batch.State.IN_PROGRESS and batch.poll_interval == 2
    assert 0 < wait <= 2
    intervals = []
    for _ in range(4):
        batch_mode.batch_poll(batch_id=batch.id)
        batch.refresh_from_db()
        intervals.append(batch.poll_interval)
    assert intervals == [3.0, 4.5, 5.0, 5.0]
    assert batch.request_counts["processing"] == 2
    assert 4 < jobs.job_step(job_id=job.id) <= 5  # not due yet: nothing polled, wait returned
    stats = emulator.stats()  # the estimate's count_tokens calls aside:
    assert stats["requests"] - stats["count_tokens"] == 5  # one submit + four polls


def test_results_stream_in_chunks(emulator, make_notes, fast_polls, monkeypatch):
    monkeypatch.setattr(batch_mode, "APPLY_CHUNK", 7)
    job = finish(create(make_notes, 30))
    assert job.state == Job.State.SUCCEEDED
    assert Suggestion.objects.filter(job=job).count() == 60

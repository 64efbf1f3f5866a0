"""Job leases and the sweep: one run works a job at a time, and a job whose worker died is
queued again once its lease lapsed (curation/engine/recovery.py), on the ORM with sync tasks."""

import ast
import pydoc
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from curation.engine import batch, jobs, recovery, tasks
from curation.models import Batch, Item, Job, Suggestion

pytestmark = pytest.mark.django_db


def make(state=Job.State.RUNNING, *, owner="", expires_in=None) -> int:
    expires = None if expires_in is None else timezone.now() + timedelta(seconds=expires_in)
    return Job.objects.create(
        model="m", fields=["tags"], state=state, lease_owner=owner, lease_expires_at=expires
    ).id


def lease_of(job_id):
    return Job.objects.values_list("lease_owner", "lease_expires_at").get(id=job_id)


@pytest.fixture
def queued(monkeypatch):
    """job_enqueue recorded instead of run (the sweep's own decisions, not the job's run)."""
    calls = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job_id: calls.append(job_id))
    return calls


# --- the lease ------------------------------------------------------------------------------


def test_a_free_job_is_claimed_by_one_run_only(settings):
    job_id = make(Job.State.PENDING)
    assert recovery.lease_claim(job_id=job_id, owner="a")
    assert not recovery.lease_claim(job_id=job_id, owner="b")
    assert recovery.lease_claim(job_id=job_id, owner="a")  # its own, again
    owner, expires = lease_of(job_id)
    left = (expires - timezone.now()).total_seconds()
    assert owner == "a"
    assert settings.CURATION_LEASE_SECONDS - 5 < left <= settings.CURATION_LEASE_SECONDS


def test_a_lapsed_lease_is_taken_over_and_its_old_owner_cannot_renew_it():
    job_id = make(owner="dead", expires_in=-1)
    assert recovery.lease_claim(job_id=job_id, owner="b")
    assert not recovery.lease_renew(job_id=job_id, owner="dead")
    assert recovery.lease_renew(job_id=job_id, owner="b")
    assert lease_of(job_id)[0] == "b"


def test_renewing_pushes_the_end_out_and_releasing_frees_it_for_anyone():
    job_id = make(owner="a", expires_in=1)
    assert recovery.lease_renew(job_id=job_id, owner="a")
    assert lease_of(job_id)[1] > timezone.now() + timedelta(seconds=5)
    recovery.lease_release(job_id=job_id, owner="b")  # not b's: nothing changes
    assert lease_of(job_id)[0] == "a"
    recovery.lease_release(job_id=job_id, owner="a")
    assert lease_of(job_id) == ("", None)
    assert recovery.lease_claim(job_id=job_id, owner="b")


def test_a_finished_job_is_never_claimed():
    for state in Job.FINAL_STATES:
        assert not recovery.lease_claim(job_id=make(state), owner="a")


def test_queuing_a_task_reserves_the_job_but_never_takes_a_live_lease(settings, monkeypatch):
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task", lambda *args, **kwargs: "task-id")
    free, live = make(Job.State.PENDING), make(owner="a", expires_in=30)
    jobs.job_enqueue(job_id=free)
    jobs.job_enqueue(job_id=live)
    owner, expires = lease_of(free)
    assert owner == "" and expires > timezone.now() + timedelta(
        seconds=settings.CURATION_QUEUED_SECONDS - 5
    )
    assert lease_of(live)[0] == "a"
    # Whichever copy of the task starts first takes the reserved job.
    assert recovery.lease_claim(job_id=free, owner="task")


# --- the sweep ----------------------------------------------------------------------------------


def test_the_sweep_queues_only_unfinished_jobs_without_a_live_lease(queued):
    never_leased = make(Job.State.PENDING)
    lapsed = make(owner="dead", expires_in=-1)
    reserved_lapsed = make(owner="", expires_in=-1)  # its task never started (lost)
    make(owner="alive", expires_in=30)
    make(Job.State.PENDING, owner="", expires_in=30)  # its task waits in the queue
    for state in Job.FINAL_STATES:
        make(state, owner="dead", expires_in=-1)
    assert tasks.jobs_sweep() == [never_leased, lapsed, reserved_lapsed] == queued


def test_a_task_for_a_job_another_run_holds_does_nothing(emulator, make_notes):
    job = jobs.job_create(notes=[n.id for n in make_notes(2)], fields=["tags"])
    counted = emulator.stats()["requests"]  # the estimate's count_tokens calls
    Job.objects.filter(id=job.id).update(
        lease_owner="other", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    # As the ORM broker hands out again the task of a worker it thinks died, while the job
    # already runs elsewhere: the copy leaves.
    assert tasks.run_job(job.id) == "leased"
    assert emulator.stats()["requests"] == counted
    assert Job.objects.get(id=job.id).state == Job.State.PENDING
    assert lease_of(job.id)[0] == "other"


def test_a_job_whose_worker_died_mid_submit_is_swept_adopted_and_finished(
    emulator, make_notes, fast_polls, monkeypatch
):
    job = jobs.job_create(notes=[n.id for n in make_notes(5)], fields=["tags", "description"])

    def die(**kwargs):
        raise SystemExit("kill -9")  # the provider has the batch; its id was never saved

    with monkeypatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(batch, "batch_mark_submitted", die)
        jobs.job_run(job_id=job.id)
    # kill -9 releases nothing: the dead run's lease stays until it lapses.
    Job.objects.filter(id=job.id).update(
        lease_owner="dead", lease_expires_at=timezone.now() + timedelta(seconds=20)
    )
    assert tasks.jobs_sweep() == []  # not yet: it could be a live worker in a long call
    assert Batch.objects.get(job=job).state == Batch.State.SUBMITTING

    Job.objects.filter(id=job.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.jobs_sweep() == [job.id]  # queued, and run at once (sync tasks)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.lease_owner == ""
    stats = emulator.stats()
    assert stats["batches"] == 1 and stats["batch_requests"] == 5  # adopted, never sent again
    assert set(Item.objects.filter(job=job).values_list("attempts", flat=True)) == {1}
    assert Suggestion.objects.filter(job=job).count() == 10


def test_a_real_time_call_a_dead_run_left_is_retried_at_once(emulator, make_notes, fast_polls):
    job = jobs.job_create(notes=[n.id for n in make_notes(3)], fields=["tags"], mode="sync")
    # As kill -9 leaves it: the lease lapsed, one item claimed a moment ago, never answered.
    Job.objects.filter(id=job.id).update(
        state=Job.State.RUNNING, lease_owner="dead",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip
    lost = Item.objects.filter(job=job).order_by("id").first()
    Item.objects.filter(id=lost.id).update(state=Item.State.SUBMITTED, attempts=1)
    assert tasks.run_job(job.id) == Job.State.SUCCEEDED
    lost.refresh_from_db()
    assert lost.state == Item.State.SUCCEEDED and lost.attempts == 2
    assert set(emulator.stats()["notes"].values()) == {1}


def test_the_run_releases_its_lease_when_it_ends_or_hands_over(
    emulator, make_notes, fast_polls, settings, monkeypatch
):
    job = jobs.job_create(notes=[n.id for n in make_notes(2)], fields=["tags"])
    settings.CURATION_TASK_BUDGET = 0
    handed = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job_id: handed.append(lease_of(job_id)))
    assert tasks.run_job(job.id) == "continued"
    assert handed == [("", None)]  # released before the next task was queued
    settings.CURATION_TASK_BUDGET = None
    assert tasks.run_job(job.id) == Job.State.SUCCEEDED
    assert lease_of(job.id) == ("", None)


def test_curate_wait_waits_for_the_holder_and_takes_over_once_its_lease_lapsed(
    emulator, make_notes, fast_polls
):
    job = jobs.job_create(notes=[n.id for n in make_notes(2)], fields=["tags"])
    counted = emulator.stats()["requests"]  # the estimate's count_tokens calls
    Job.objects.filter(id=job.id).update(
        lease_owner="worker", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert jobs.job_run(job_id=job.id, budget=0.3) is False  # waited its whole budget
    assert emulator.stats()["requests"] == counted
    Job.objects.filter(id=job.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    assert Job.objects.get(id=job.id).state == Job.State.SUCCEEDED


def test_a_run_whose_lease_was_taken_stops_after_its_pass(emulator, make_notes, fast_polls):
    emulator.configure(batch_seconds=30)
    job = jobs.job_create(notes=[n.id for n in make_notes(3)], fields=["tags"])

    def taken_meanwhile(seconds):  # its worker stalled longer than the lease; another took it
        Job.objects.filter(id=job.id).update(
            lease_owner="another", lease_expires_at=timezone.now() + timedelta(seconds=30)
        )

    assert jobs.job_run(job_id=job.id, sleep=taken_meanwhile) is None
    assert lease_of(job.id)[0] == "another"  # left to it, not released
    assert emulator.stats()["batches"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_the_lease_and_notices_when_another_run_took_it(settings):
    settings.CURATION_LEASE_SECONDS = 1.0  # a beat every 0.25 s
    job_id = make()
    lease = recovery.JobLease(job_id=job_id)
    assert lease.claim()
    lease.start()
    try:
        time.sleep(1.8)  # longer than the lease: only the heartbeat keeps it
        owner, expires = lease_of(job_id)
        assert owner == lease.owner and expires > timezone.now()
        assert not lease.lost.is_set()
        Job.objects.filter(id=job_id).update(lease_owner="another")
        assert lease.lost.wait(timeout=5)
    finally:
        lease.release()
    assert lease_of(job_id)[0] == "another"  # releasing never frees another's lease


# --- where the sweep runs -------------------------------------------------------------------------


def test_the_sweep_is_scheduled_and_due_again_after_each_run(queued):
    schedule = Schedule.objects.get(name=recovery.SWEEP_NAME)  # made by the migration
    assert pydoc.locate(schedule.func) is tasks.sweep_jobs
    assert schedule.repeats == -1
    assert ast.literal_eval(schedule.kwargs) == {"q_options": {"save": False}}  # not kept
    Schedule.objects.filter(id=schedule.id).update(next_run=timezone.now() + timedelta(hours=1))
    lapsed = make(owner="dead", expires_in=-1)
    assert tasks.sweep_jobs() == "1 job(s) queued again"
    assert queued == [lapsed]
    # django-q2 looks every 30 s but repeats a schedule at most once a minute: due at once
    # again, the sweep runs at every look.
    assert Schedule.objects.get(id=schedule.id).next_run <= timezone.now()


def test_each_worker_sweeps_as_it_starts_and_repairs_the_schedule(queued):
    Schedule.objects.filter(name=recovery.SWEEP_NAME).delete()
    lapsed = make(owner="dead", expires_in=-1)
    tasks.on_worker_spawn(sender="django_q", proc_name="Process-1")
    assert queued == [lapsed]
    assert Schedule.objects.filter(name=recovery.SWEEP_NAME, func=recovery.SWEEP_FUNC).count() == 1


def test_a_failing_sweep_never_stops_a_worker_from_starting(monkeypatch, caplog):
    def broken():
        raise RuntimeError("database is down")

    monkeypatch.setattr(tasks, "jobs_sweep", broken)
    tasks.on_worker_spawn(sender="django_q", proc_name="Process-1")  # does not raise
    assert "the sweep at worker start failed" in caplog.text


def test_the_worker_start_signal_is_connected():
    from django_q.signals import post_spawn

    assert any("curation-sweep-on-spawn" in str(key) for key, *_ in post_spawn.receivers)

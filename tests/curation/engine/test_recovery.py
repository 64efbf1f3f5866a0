"""A worker that starts queues unfinished jobs again (the task of a killed worker is gone)."""

import pytest
from django.core.cache import cache

from curation.engine import jobs, recovery
from curation.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """job_enqueue recorded, with the mark django-q2's pre_enqueue signal leaves."""
    calls = []

    def enqueue(*, job_id):
        calls.append(job_id)
        recovery.on_enqueue(sender="django_q", task={"func": recovery.RUN_JOB, "args": (job_id,)})

    monkeypatch.setattr(jobs, "job_enqueue", enqueue)
    yield calls
    for job_id in Job.objects.values_list("id", flat=True):
        cache.delete(recovery.QUEUED_KEY.format(job_id=job_id))
        cache.delete(recovery.RUNNING_KEY.format(job_id=job_id))


@pytest.fixture
def redis_broker(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": "redis://unused"}


def make(state):
    job_id = Job.objects.create(model="m", fields=["tags"], state=state).id
    # Ids repeat across tests; marks left in this process's cache by another test must go.
    cache.delete_many([recovery.QUEUED_KEY.format(job_id=job_id),
                       recovery.RUNNING_KEY.format(job_id=job_id)])
    return job_id


def test_resume_queues_only_unfinished_jobs(queued):
    pending, running = make(Job.State.PENDING), make(Job.State.RUNNING)
    for final in Job.FINAL_STATES:
        make(final)
    assert recovery.jobs_resume() == [pending, running]
    assert queued == [pending, running]


def test_a_queued_task_or_a_live_worker_means_no_second_task(queued):
    waiting, live, dead, elsewhere = (make(Job.State.RUNNING) for _ in range(4))
    recovery.on_enqueue(sender="django_q", task={"func": recovery.RUN_JOB, "args": (waiting,)})
    recovery.on_execute(sender="django_q", task={"func": recovery.RUN_JOB, "args": (live,)})
    cache.set(recovery.RUNNING_KEY.format(job_id=dead), f"{recovery.HOST} 999999999")
    cache.set(recovery.RUNNING_KEY.format(job_id=elsewhere), "another-host 1")
    assert recovery.jobs_resume() == [dead]


def test_worker_spawn_resumes_once_per_cluster_start(queued, redis_broker):
    job_id = make(Job.State.RUNNING)
    recovery.on_worker_spawn(sender="django_q", proc_name="Process-1")
    recovery.on_worker_spawn(sender="django_q", proc_name="Process-2")  # sees the queued mark
    assert queued == [job_id]


def test_orm_broker_needs_no_resume(queued, settings):
    settings.Q_CLUSTER = {k: v for k, v in settings.Q_CLUSTER.items() if k != "redis"}
    make(Job.State.RUNNING)
    recovery.on_worker_spawn(sender="django_q", proc_name="Process-1")
    assert queued == []


def test_signal_is_connected():
    from django_q.signals import post_spawn

    assert post_spawn.has_listeners()
    assert any("curation-resume-on-spawn" in str(key) for key, *_ in post_spawn.receivers)


def test_a_failure_never_stops_the_worker(monkeypatch, queued, caplog, redis_broker):
    def broken():
        raise RuntimeError("database is down")

    monkeypatch.setattr(recovery, "jobs_resume", broken)
    recovery.on_worker_spawn(sender="django_q", proc_name="Process-1")  # does not raise
    assert "resuming unfinished jobs at worker start failed" in caplog.text


@pytest.fixture
def later(monkeypatch):
    calls = []
    # In the monitor process it drops a dead connection; here it would close the test's own.
    monkeypatch.setattr(recovery, "close_old_connections", lambda: None)
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task", lambda *args, **kw: calls.append(args))
    yield calls


def failed_task(job_id, result="Traceback ...\npsycopg.errors.AdminShutdown: terminating"):
    return {"func": recovery.RUN_JOB, "args": (job_id,), "success": False, "result": result}


def test_a_failed_job_task_is_queued_again_with_a_growing_pause(later):
    job_id = make(Job.State.RUNNING)
    cache.delete(recovery.FAILURES_KEY.format(job_id=job_id))
    for _ in range(3):
        recovery.on_task_done(sender="django_q", task=failed_task(job_id))
    assert later == [("curation.engine.recovery.run_job_after", job_id, d) for d in (1.0, 2.0, 4.0)]
    # A success resets the count.
    recovery.on_task_done(sender="django_q", task={**failed_task(job_id), "success": True})
    recovery.on_task_done(sender="django_q", task=failed_task(job_id))
    assert later[-1][2] == 1.0


def test_after_the_limit_the_job_says_why(later):
    job_id = make(Job.State.RUNNING)
    cache.delete(recovery.FAILURES_KEY.format(job_id=job_id))
    for _ in range(recovery.RETRY_LIMIT + 1):
        recovery.on_task_done(sender="django_q", task=failed_task(job_id))
    assert len(later) == recovery.RETRY_LIMIT
    error = Job.objects.get(id=job_id).error
    assert "failed 8 times in a row" in error and "AdminShutdown" in error


def test_finished_jobs_and_other_tasks_are_left_alone(later):
    done = make(Job.State.SUCCEEDED)
    recovery.on_task_done(sender="django_q", task=failed_task(done))
    recovery.on_task_done(sender="django_q", task={"func": "x.y", "args": (1,), "success": False})
    assert later == []


def test_a_zombie_worker_counts_as_dead():
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not reaped yet: a zombie, as a killed worker is until someone waits for it.
    for _ in range(200):
        with open(f"/proc/{child.pid}/stat", "rb") as fh:
            if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                break
        import time

        time.sleep(0.01)
    assert recovery._pid_alive(child.pid) is False
    assert recovery._pid_alive(os.getpid()) is True
    child.wait()
    assert recovery._pid_alive(child.pid) is False

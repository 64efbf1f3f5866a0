"""A worker that starts queues unfinished jobs again (the task of a killed worker is gone)."""

import pytest
from django.core.cache import cache

from curation import jobs, recovery
from curation.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job_id: calls.append(job_id))
    cache.delete(recovery.SPAWN_MARK)
    yield calls
    cache.delete(recovery.SPAWN_MARK)


def make(state):
    return Job.objects.create(model="m", fields=["tags"], state=state).id


def test_resume_queues_only_unfinished_jobs(queued):
    pending, running = make(Job.State.PENDING), make(Job.State.RUNNING)
    for final in Job.FINAL_STATES:
        make(final)
    assert recovery.jobs_resume() == [pending, running]
    assert queued == [pending, running]


def test_worker_spawn_resumes_once_per_cluster_start(queued):
    job_id = make(Job.State.RUNNING)
    recovery.on_worker_spawn(sender="django_q", proc_name="Process-1")
    recovery.on_worker_spawn(sender="django_q", proc_name="Process-2")  # its sibling
    assert queued == [job_id]


def test_signal_is_connected():
    from django_q.signals import post_spawn

    assert post_spawn.has_listeners()
    assert any("curation-resume-on-spawn" in str(key) for key, *_ in post_spawn.receivers)


def test_a_failure_never_stops_the_worker(monkeypatch, queued, caplog):
    def broken():
        raise RuntimeError("database is down")

    monkeypatch.setattr(recovery, "jobs_resume", broken)
    recovery.on_worker_spawn(sender="django_q", proc_name="Process-1")  # does not raise
    assert "resuming unfinished jobs at worker start failed" in caplog.text

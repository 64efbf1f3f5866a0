"""Puts unfinished jobs back in the queue when their task is lost, so a fault loses nothing.

A job's task can vanish: kill -9 or an out-of-memory kill of the qcluster that ran it, or
a Redis broker (which hands a task out once and forgets it). Every worker process that
starts (a restarted qcluster, or the sentinel replacing a dead worker) therefore queues
each unfinished job once more. A task can also end in an exception (the database
connection dropped under it): the cluster's monitor then queues the job again after a
growing pause, and after RETRY_LIMIT failures in a row writes the reason on the job.

A job already in a live worker's hands is safe to queue twice: the job engine claims every
item and batch with a conditional UPDATE, so a second task only finds what nobody holds.
"""

import logging
import time

from django.core.cache import cache
from django.db import close_old_connections

log = logging.getLogger(__name__)

# Workers of one cluster start together: one of them resumes, the others see the mark.
# (With the local-memory cache each process has its own mark: a duplicate is harmless.)
SPAWN_MARK = "curation:resume-on-spawn"
SPAWN_MARK_SECONDS = 2


def jobs_resume() -> list[int]:
    """Queue every pending or running job again; returns their ids."""
    from curation import jobs
    from curation.models import Job

    ids = list(
        Job.objects.filter(state__in=[Job.State.PENDING, Job.State.RUNNING])
        .order_by("id")
        .values_list("id", flat=True)
    )
    for job_id in ids:
        jobs.job_enqueue(job_id=job_id)
        log.info("job=%s queued again after a worker start", job_id)
    return ids


def on_worker_spawn(sender, proc_name=None, **kwargs) -> None:
    """django-q2's post_spawn: runs in each new worker process before it takes a task."""
    try:
        if not cache.add(SPAWN_MARK, proc_name or "worker", timeout=SPAWN_MARK_SECONDS):
            return
        jobs_resume()
    except Exception:  # a worker must start even when the database is down at that moment
        log.exception("resuming unfinished jobs at worker start failed")


RUN_JOB = "curation.tasks.run_job"
RETRY_LIMIT = 8
FAILURES_KEY = "curation:run-job-failures:{job_id}"


def run_job_after(job_id: int, delay: float) -> str:
    """A job's task again, after a pause (django-q2 has no delayed enqueue of its own)."""
    from curation import tasks

    time.sleep(delay)
    return tasks.run_job(job_id)


def _reason(task: dict) -> str:
    lines = [line for line in str(task.get("result") or "").splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error")[:300]


def on_task_done(sender, task=None, **kwargs) -> None:
    """django-q2's post_execute (in the cluster's monitor): requeue a job whose task raised."""
    task = task or {}
    if task.get("func") not in (RUN_JOB, f"{__name__}.run_job_after") or not task.get("args"):
        return
    job_id = task["args"][0]
    key = FAILURES_KEY.format(job_id=job_id)
    try:
        if task.get("success"):
            cache.delete(key)
            return
        from curation.models import Job

        close_old_connections()  # the monitor's own connection may be the one that dropped
        cache.add(key, 0, timeout=3600)
        failures = cache.incr(key)
        reason = _reason(task)
        active = Job.objects.filter(id=job_id, state__in=[Job.State.PENDING, Job.State.RUNNING])
        if failures > RETRY_LIMIT:
            active.update(error=f"the worker task failed {RETRY_LIMIT} times in a row, last: "
                                f"{reason}; restart the workers to resume")
            log.error("job=%s task failed %s times, not requeued: %s", job_id, failures, reason)
            return
        if not active.exists():
            return
        delay = min(2.0 ** (failures - 1), 30.0)
        from django_q.tasks import async_task

        async_task(f"{__name__}.run_job_after", job_id, delay, group=f"job-{job_id}")
        log.warning("job=%s task failed (%s), queued again in %.0fs", job_id, reason, delay)
    except Exception:
        log.exception("job=%s could not be queued again after its task failed", job_id)

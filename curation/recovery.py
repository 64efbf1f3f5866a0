"""Puts unfinished jobs back in the queue when a worker starts, so a killed worker loses nothing.

A job's task can vanish: kill -9 or an out-of-memory kill of the qcluster that ran it, or
a Redis broker (which hands a task out once and forgets it). Every worker process that
starts (a restarted qcluster, or the sentinel replacing a dead worker) therefore queues
each unfinished job once more. A job already in a live worker's hands is safe to queue
twice: the job engine claims every item and batch with a conditional UPDATE, so a second
task only finds what nobody holds.
"""

import logging

from django.core.cache import cache

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

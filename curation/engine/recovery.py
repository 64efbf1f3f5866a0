"""Puts unfinished jobs back in the queue when their task is lost, so a fault loses nothing.

A job's task can vanish. With the Redis broker a task is handed out once and forgotten, so
kill -9 (or an out-of-memory kill) of the qcluster running it loses it; with the ORM broker
django-q2 hands an unacknowledged task out again after Q_CLUSTER["retry"] seconds, so
nothing is needed there. A task can also end in an exception (the database connection
dropped under it): the cluster's monitor then queues the job again after a growing pause,
and after RETRY_LIMIT failures in a row writes the reason on the job.

With Redis, each job's task leaves marks in the cache (the same Redis): "queued" while a
task waits in the queue, and "running on host H, pid P" while a worker runs it. A worker
that starts (a restarted qcluster, or the sentinel replacing a dead worker) queues each
unfinished job again unless a task is queued for it or runs in a live process. A job
queued twice by mistake is still safe: the job engine claims every item and batch with a
conditional UPDATE, so a second task only finds what nobody holds.
"""

import logging
import os
import socket
import time

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections

log = logging.getLogger(__name__)

RUN_JOB = "curation.engine.tasks.run_job"
QUEUED_KEY = "curation:job-queued:{job_id}"
RUNNING_KEY = "curation:job-running:{job_id}"
QUEUED_SECONDS = 7 * 24 * 3600  # a queued task waits in Redis until a worker takes it
HOST = socket.gethostname()


def _job_of(task: dict) -> int | None:
    func = task.get("func")
    if func in (RUN_JOB, f"{__name__}.run_job_after") and task.get("args"):
        return task["args"][0]
    return None


def _running_seconds() -> int:
    return int(settings.Q_CLUSTER.get("timeout", 600)) + 60


def on_enqueue(sender, task=None, **kwargs) -> None:
    """django-q2's pre_enqueue: mark the job as having a task in the queue."""
    job_id = _job_of(task or {})
    if job_id is not None:
        try:
            cache.set(QUEUED_KEY.format(job_id=job_id), 1, timeout=QUEUED_SECONDS)
        except Exception:  # the broker is the same Redis: enqueue fails and says so itself
            log.warning("job=%s could not mark its task queued", job_id)


def on_execute(sender, func=None, task=None, **kwargs) -> None:
    """django-q2's pre_execute (in the worker): the job's task now runs in this process."""
    job_id = _job_of(task or {})
    if job_id is not None:
        try:
            # Running first, then not queued: a worker checking in between sees one of them.
            cache.set(RUNNING_KEY.format(job_id=job_id), f"{HOST} {os.getpid()}",
                      timeout=_running_seconds())
            cache.delete(QUEUED_KEY.format(job_id=job_id))
        except Exception:
            log.warning("job=%s could not mark its task running", job_id)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker whose parent died too can linger as a zombie until someone reaps it.
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def job_has_live_task(job_id: int) -> bool:
    """A task for the job waits in the queue, or runs in a process that still exists."""
    if cache.get(QUEUED_KEY.format(job_id=job_id)):
        return True
    running = cache.get(RUNNING_KEY.format(job_id=job_id))
    if not running:
        return False
    host, _, pid = str(running).partition(" ")
    if host != HOST or not pid.isdigit():
        return True  # another machine's worker: trust the mark until it expires
    return _pid_alive(int(pid))


def jobs_resume(*, only_orphans: bool = True) -> list[int]:
    """Queue again each pending or running job no live task carries; returns their ids."""
    from curation.engine import jobs
    from curation.models import Job

    ids = list(
        Job.objects.filter(state__in=[Job.State.PENDING, Job.State.RUNNING])
        .order_by("id")
        .values_list("id", flat=True)
    )
    resumed = []
    for job_id in ids:
        if only_orphans and job_has_live_task(job_id):
            continue
        jobs.job_enqueue(job_id=job_id)
        resumed.append(job_id)
        log.info("job=%s had no live task: queued again", job_id)
    return resumed


def on_worker_spawn(sender, proc_name=None, **kwargs) -> None:
    """django-q2's post_spawn: runs in each new worker process before it takes a task."""
    if not settings.Q_CLUSTER.get("redis"):
        return  # the ORM broker hands a dead worker's task out again by itself
    try:
        jobs_resume()
    except Exception:  # a worker must start even when the database is down at that moment
        log.exception("resuming unfinished jobs at worker start failed")


RETRY_LIMIT = 8
FAILURES_KEY = "curation:run-job-failures:{job_id}"


def run_job_after(job_id: int, delay: float) -> str:
    """A job's task again, after a pause (django-q2 has no delayed enqueue of its own)."""
    from curation.engine import tasks

    time.sleep(delay)
    return tasks.run_job(job_id)


def _reason(task: dict) -> str:
    lines = [line for line in str(task.get("result") or "").splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error")[:300]


def on_task_done(sender, task=None, **kwargs) -> None:
    """django-q2's post_execute (in the cluster's monitor): requeue a job whose task raised."""
    task = task or {}
    job_id = _job_of(task)
    if job_id is None:
        return
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

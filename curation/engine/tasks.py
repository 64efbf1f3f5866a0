"""django-q2 tasks: thin doors that take ids, fetch by id and call the job services."""

import logging

from django.conf import settings

from curation.engine import jobs, recovery
from curation.models import Job

log = logging.getLogger(__name__)


def task_budget() -> float:
    """Seconds a task works before handing over to a fresh one: well below the task timeout."""
    timeout = float(settings.Q_CLUSTER.get("timeout", 600))
    configured = settings.CURATION_TASK_BUDGET
    return float(configured) if configured is not None else timeout / 2


def run_job(job_id: int) -> str:
    """Run, poll and finish a job under its lease; queue a fresh task when the budget is spent.

    A copy of the task for a job another run holds (a duplicate wake-up, or the ORM broker
    handing out again the task of a worker it took for dead) finds the lease taken and ends.
    """
    if not Job.objects.filter(id=job_id).exists():
        log.warning("job=%s not found; task dropped", job_id)
        return "missing"
    done = jobs.job_run(job_id=job_id, budget=task_budget(), wait_for_lease=False)
    if done is None:
        return "leased"
    if done:
        return Job.objects.get(id=job_id).state
    jobs.job_enqueue(job_id=job_id)  # the lease was released: the next task takes it
    return "continued"


def sweep_jobs() -> str:
    """The sweep's Schedule: queue again every unfinished job whose lease lapsed."""
    woken = jobs_sweep()
    recovery.sweep_due_again()
    return f"{len(woken)} job(s) queued again"


def jobs_sweep() -> list[int]:
    """Queue again each pending or running job whose lease lapsed; returns their ids."""
    ids = recovery.jobs_lapsed()
    for job_id in ids:
        jobs.job_enqueue(job_id=job_id)
        log.info("job=%s had no live lease: queued again", job_id)
    return ids


def on_worker_spawn(sender, proc_name=None, **kwargs) -> None:
    """django-q2's post_spawn, in each new worker process: sweep once before taking a task."""
    try:
        recovery.sweep_schedule_ensure()
        jobs_sweep()
    except Exception:  # a worker must start even when the database is down at that moment
        log.exception("the sweep at worker start failed")

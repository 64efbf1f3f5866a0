"""django-q2 tasks: thin doors that take ids, fetch by id and call the job services."""

import logging

from django.conf import settings

from curation.engine import jobs
from curation.models import Job

log = logging.getLogger(__name__)


def task_budget() -> float:
    """Seconds a task works before handing over to a fresh one: well below the task timeout."""
    timeout = float(settings.Q_CLUSTER.get("timeout", 600))
    configured = settings.CURATION_TASK_BUDGET
    return float(configured) if configured is not None else timeout / 2


def run_job(job_id: int) -> str:
    """Run, poll and finish a job; re-enqueue itself when its time budget is spent.

    Delivered twice (django-q2 is at-least-once), both copies only find work the other has
    not claimed, so nothing is sent or applied twice.
    """
    if not Job.objects.filter(id=job_id).exists():
        log.warning("job=%s not found; task dropped", job_id)
        return "missing"
    if jobs.job_run(job_id=job_id, budget=task_budget()):
        return Job.objects.get(id=job_id).state
    jobs.job_enqueue(job_id=job_id)
    return "continued"

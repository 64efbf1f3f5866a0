"""Job leases and the sweep that queues again every unfinished job whose lease lapsed.

The database is the source of truth; the task queue is only a wake-up call. A run of a job
(`jobs.job_run`: a worker's task, or `curate --wait`) works it only while it holds the job's
lease, taken with a conditional UPDATE that wins when no live lease is held by another:

    lease_owner          "host:pid:random" of the run holding it; "" when a task for the job
                         waits in the queue (anyone's task may take it) or nobody holds it
    lease_expires_at     when the lease lapses unless renewed; NULL: free

While a run works, a heartbeat thread renews its lease every quarter of
CURATION_LEASE_SECONDS; the run releases it when it stops. A run that finds a live lease held
by another does nothing, so two tasks for one job (a copy the ORM broker hands out again
Q_CLUSTER["retry"] seconds after its worker died, a duplicate wake-up) never both work it.

A worker killed with kill -9 stops renewing, so its lease lapses after CURATION_LEASE_SECONDS
at most. The sweep, a django-q2 Schedule (it runs wherever a qcluster runs, whatever the
broker) and also run by every worker process as it starts, queues again each pending or
running job whose lease lapsed. The run that takes the lease over first settles what the dead
run had in hand (`jobs.job_recover_orphans`). Queuing a task reserves the job for
CURATION_QUEUED_SECONDS (an unowned lease), so the sweep leaves a job alone while its task
waits in the queue, and queues it again only if no worker took that task in time (a task
lost with a Redis worker killed after taking it). A task that raises (a dropped database
connection) releases the lease on its way out, so the next sweep queues the job again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from curation.models import Batch, Job

log = logging.getLogger(__name__)

SWEEP_NAME = "curation: wake jobs whose lease lapsed"
SWEEP_FUNC = "curation.engine.tasks.sweep_jobs"
# A sweep runs every 30 s: its successes are not kept, or they would push the job tasks out
# of django-q2's saved results (Q_CLUSTER["save_limit"]); a failing sweep is still kept.
SWEEP_KWARGS = "{'q_options': {'save': False}}"
ACTIVE_JOB_STATES = (Job.State.PENDING, Job.State.RUNNING)
HOST = socket.gethostname()


def lease_seconds() -> float:
    return max(1.0, float(settings.CURATION_LEASE_SECONDS))


def queued_seconds() -> float:
    return max(1.0, float(settings.CURATION_QUEUED_SECONDS))


def _lapsed(now) -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)


def _workable() -> Q:
    """Jobs a run has work on: unfinished ones, and canceled ones whose provider batches have
    not ended yet (a run polls them to their end, so none stays `canceling`)."""
    open_batches = Batch.objects.filter(
        job_id=OuterRef("pk"),
        state__in=[Batch.State.IN_PROGRESS, Batch.State.CANCELING, Batch.State.ENDED],
    )
    return Q(state__in=ACTIVE_JOB_STATES) | Q(state=Job.State.CANCELED) & Exists(open_batches)


# --- the lease ------------------------------------------------------------------------------


def lease_claim(*, job_id: int, owner: str) -> bool:
    """Take an unfinished job's lease: free, lapsed, reserved for a queued task, or already ours."""
    now = timezone.now()
    return Job.objects.filter(
        _lapsed(now) | Q(lease_owner__in=["", owner]), _workable(), id=job_id
    ).update(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds())) == 1


def lease_renew(*, job_id: int, owner: str) -> bool:
    """Push the lease's end out again; False when it is no longer ours (another run took it)."""
    expires = timezone.now() + timedelta(seconds=lease_seconds())
    return Job.objects.filter(id=job_id, lease_owner=owner).update(lease_expires_at=expires) == 1


def lease_release(*, job_id: int, owner: str) -> None:
    Job.objects.filter(id=job_id, lease_owner=owner).update(lease_owner="", lease_expires_at=None)


def lease_reserve(*, job_id: int) -> bool:
    """A task for the job is being queued: hold the job for it, unless a live run holds it."""
    now = timezone.now()
    return Job.objects.filter(
        _lapsed(now) | Q(lease_owner=""), _workable(), id=job_id
    ).update(lease_owner="", lease_expires_at=now + timedelta(seconds=queued_seconds())) == 1


class Lease:
    """One run's hold on one row with `lease_owner` / `lease_expires_at` (a job, an operation):
    claim it, keep it renewed in the background, release it.

    The heartbeat is a thread with its own database connection, so a long call to the API
    (a batch upload, a slow answer) never lets the lease lapse while the process lives. A run
    inside a transaction (a test) has no heartbeat: no other connection could see the row;
    it renews between passes instead (`renew_inline`). Subclasses say how a claim is won.
    """

    model = None  # the leased model
    label = "row"

    def __init__(self, *, row_id: int):
        self.row_id = row_id
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self) -> bool:
        raise NotImplementedError

    def renew(self) -> bool:
        expires = timezone.now() + timedelta(seconds=lease_seconds())
        if self.model.objects.filter(id=self.row_id, lease_owner=self.owner).update(
            lease_expires_at=expires
        ):
            return True
        if not self.lost.is_set() and not self._stop.is_set():
            self.lost.set()
            log.warning("%s=%s lease lost by %s: another run holds it", self.label,
                        self.row_id, self.owner)  # fmt: skip
        return False

    def renew_inline(self) -> None:
        """Between two passes: renew here when no heartbeat thread does it."""
        if self._thread is None:
            self.renew()

    def start(self) -> None:
        if transaction.get_connection().in_atomic_block:
            return
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{self.label}-{self.row_id}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        interval = lease_seconds() / 4
        try:
            while not self._stop.wait(interval):
                try:
                    if not self.renew():
                        return
                except Exception as exc:  # the database is away: try again at the next beat
                    log.warning("%s=%s lease not renewed: %s", self.label, self.row_id, exc)
                finally:
                    connection.close()  # this thread's own; a dropped one is never reused
        finally:
            connection.close()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.model.objects.filter(id=self.row_id, lease_owner=self.owner).update(
                lease_owner="", lease_expires_at=None
            )
        except Exception as exc:  # it lapses by itself
            log.warning("%s=%s lease not released: %s", self.label, self.row_id, exc)


class JobLease(Lease):
    """A run's hold on a job (see the module docstring)."""

    model = Job
    label = "job"

    def __init__(self, *, job_id: int):
        super().__init__(row_id=job_id)
        self.job_id = job_id

    def claim(self) -> bool:
        return lease_claim(job_id=self.job_id, owner=self.owner)


# --- the sweep ----------------------------------------------------------------------------------


def jobs_lapsed() -> list[int]:
    """Ids of the pending or running jobs whose lease lapsed (no run works them)."""
    return list(
        Job.objects.filter(_lapsed(timezone.now()), _workable())
        .order_by("id")
        .values_list("id", flat=True)
    )


def sweep_schedule_ensure(*, name: str = SWEEP_NAME, func: str = SWEEP_FUNC) -> None:
    """The sweep's Schedule exists (the migration made it; this repairs a deleted one)."""
    from django_q.models import Schedule

    if not Schedule.objects.filter(name=name).update(func=func, kwargs=SWEEP_KWARGS):
        Schedule.objects.create(
            name=name, func=func, kwargs=SWEEP_KWARGS, schedule_type=Schedule.MINUTES,
            minutes=1, repeats=-1, next_run=timezone.now(),
        )  # fmt: skip


def sweep_due_again(*, name: str = SWEEP_NAME) -> None:
    """Make the sweep due at the scheduler's next look.

    django-q2's scheduler looks for due schedules about every 30 s but repeats one at most
    once a minute; due again at once, the sweep runs at every look.
    """
    from django_q.models import Schedule

    Schedule.objects.filter(name=name).update(next_run=timezone.now())

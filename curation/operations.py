"""Admin work carried by the workers: curate a big selection, preview, export, re-import, decide.

An admin action only stores what to do as an `Operation` row (the selection as JSON id ranges,
curation.engine.selection; the options) and answers at once; `run_operation` (a django-q2 task)
calls the same services the commands call (`job_create`, `vault_export`, `vault_import`,
`suggestions_decide`), writing progress as it goes, and stores a result summary the operation's
page shows. Cancelling is a conditional update the runner notices at its next progress write.

An operation is worked under a lease, as a job is (curation.engine.recovery): the run renews it
from a heartbeat thread; a worker killed with kill -9 stops renewing, and the sweep (its own
Schedule, and every worker as it starts) queues the operation again; the next run counts one
more in `runs` and does the work again (each kind is safe to repeat: a curate run that had
created its job goes on with that job). After MAX_RUNS runs lost that way it fails, saying so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from curation.api import pricing
from curation.engine import jobs, recovery, router
from curation.engine.estimate import job_estimate, job_estimates
from curation.engine.items import MICRO
from curation.engine.selection import (
    SelectionFormatError,
    chunks,
    id_ranges,
    ranges_count,
    selection_from_ids,
    selection_ids,
    selection_of,
)
from curation.models import Mode, Operation, Review, Suggestion
from curation.review.decisions import ReviewError, suggestions_decide
from curation.review.export import vault_export
from ingest.importer import VaultNotFound, notes_import, vault_import
from ingest.models import Note, Vault

log = logging.getLogger(__name__)

RUN_OPERATION = "curation.operations.run_operation"
SWEEP_NAME = "curation: wake operations whose lease lapsed"
SWEEP_FUNC = "curation.operations.sweep_operations"
MAX_RUNS = 3  # runs lost (worker killed) before the operation fails instead of starting again
PROGRESS_EVERY = 0.5  # seconds between two progress writes (each also checks for a cancel)
SHOWN_DIFFS = 200  # diffs kept for the preview page; `export_vault --dry-run` prints them all
SHOWN_PATHS = 1000  # paths kept per list (written, conflicts, errors); the counts are exact
ACTIVE = (Operation.State.PENDING, Operation.State.RUNNING)

# The selection helpers the doors and tests reach through this module.
__all__ = ["id_ranges", "ranges_count", "selection_from_ids", "selection_ids", "selection_of"]


class OperationCanceled(Exception):
    """Someone canceled the operation while it ran (or another run holds it now)."""


class OperationError(Exception):
    """The operation could not do its work; the message is shown on its page as is."""


# --- creating, cancelling -----------------------------------------------------------------


def operation_create(
    *, kind: str, user, params: dict, description: str = "", total: int = 0
) -> Operation:
    """Store the operation and hand it to the workers once the transaction commits."""
    operation = Operation.objects.create(
        kind=kind,
        created_by=user if getattr(user, "pk", None) else None,
        params=params,
        description=description[:500],
        total=total,
        # Reserved for the task being queued: the sweep leaves it alone meanwhile.
        lease_expires_at=timezone.now() + timedelta(seconds=recovery.queued_seconds()),
    )
    transaction.on_commit(lambda: operation_enqueue(operation_id=operation.id))
    log.info("operation=%s %s queued: %s", operation.id, kind, description)
    return operation


def operation_enqueue(*, operation_id: int) -> str:
    from django_q.tasks import async_task

    return async_task(RUN_OPERATION, operation_id, group=f"operation-{operation_id}")


def operation_cancel(*, operation_id: int) -> bool:
    """Cancel an operation not yet ended; the runner stops at its next progress write."""
    n = Operation.objects.filter(
        id=operation_id, state__in=[Operation.State.PENDING, Operation.State.RUNNING]
    ).update(state=Operation.State.CANCELED, finished_at=timezone.now())
    if n:
        log.info("operation=%s canceled", operation_id)
    return bool(n)


def operation_progress(*, operation_id: int) -> dict:
    """What the operation's page polls: state, counts, and the result once there is one."""
    op = Operation.objects.get(id=operation_id)
    return {
        "id": op.id,
        "state": op.state,
        "state_label": op.get_state_display(),
        "final": op.is_final,
        "done": op.done,
        "total": op.total,
        "error": op.error,
        "job_id": op.job_id,
    }


# --- running ------------------------------------------------------------------------------


class Progress:
    """progress(done, total): written at most every PROGRESS_EVERY seconds; raises
    OperationCanceled when the operation was canceled meanwhile (if `stop` allows)."""

    def __init__(self, operation_id: int, *, stop: bool = True, offset: int = 0, owner=None):
        self.operation_id = operation_id
        self.owner = owner
        self.stop = stop
        self.offset = offset
        self.done = 0
        self.total: int | None = None
        self.last = 0.0

    def __call__(self, done: int, total: int | None = None, *_) -> None:
        self.done, self.total = done, total if total is not None else self.total
        if time.monotonic() - self.last >= PROGRESS_EVERY:
            self.write()

    def write(self) -> None:
        """Record progress now; raise OperationCanceled if the operation was canceled."""
        self.last = time.monotonic()
        changes = {"done": self.offset + self.done, "heartbeat_at": timezone.now()}
        if self.total is not None:
            changes["total"] = max(self.offset + self.total, changes["done"])
        mine = {"lease_owner": self.owner} if self.owner else {}
        alive = Operation.objects.filter(
            id=self.operation_id, state=Operation.State.RUNNING, **mine
        ).update(**changes)
        if not alive and self.stop:
            raise OperationCanceled

    check = write


class OperationLease(recovery.Lease):
    """A run's hold on an operation: won by `claim`, renewed by the heartbeat thread."""

    model = Operation
    label = "operation"

    def claim(self) -> bool:
        """Take a queued operation, or a running one whose run was lost (its lease lapsed, or
        the sweep reserved it for a new task) if fewer than MAX_RUNS runs started; counts the
        run. A lease "" is a reservation for a queued task: any task of the operation may take it."""
        now = timezone.now()
        free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now) | Q(lease_owner="")
        return Operation.objects.filter(
            Q(state=Operation.State.PENDING) | Q(state=Operation.State.RUNNING, runs__lt=MAX_RUNS),
            free,
            id=self.row_id,
        ).update(
            state=Operation.State.RUNNING, started_at=now, heartbeat_at=now,
            lease_owner=self.owner, lease_expires_at=now + timedelta(seconds=recovery.lease_seconds()),
            runs=F("runs") + 1,
        ) == 1  # fmt: skip


def operation_run(*, operation_id: int) -> str:
    """Claim the operation (queued, or running with its worker lost) and do it."""
    lease = OperationLease(row_id=operation_id)
    claimed = lease.claim()
    if not claimed:
        operations_fail_lost(operation_ids=[operation_id])
    op = Operation.objects.filter(id=operation_id).first()
    if op is None:
        return "missing"
    if not claimed:
        return op.state
    if op.runs > 1:
        log.warning("operation=%s run %s of %s: the previous run lost its worker", op.id,
                    op.runs, MAX_RUNS)  # fmt: skip
    lease.start()
    try:  # finished while the lease is held: the sweep never sees it lapsed half-way
        result = RUNNERS[op.kind](op, Progress(op.id, owner=lease.owner))
    except OperationCanceled:
        log.info("operation=%s stopped: canceled, or another run holds it", op.id)
        return Operation.objects.get(id=op.id).state
    except (OperationError, SelectionFormatError, ReviewError, VaultNotFound,
            jobs.NoNotesError) as exc:  # fmt: skip
        return _finish(op, lease, state=Operation.State.FAILED, error=str(exc))
    except Exception as exc:  # reported on the page; the traceback goes to the log
        log.exception("operation=%s failed", op.id)
        error = f"{type(exc).__name__}: {exc}"
        return _finish(op, lease, state=Operation.State.FAILED, error=error)
    else:
        return _finish(op, lease, state=Operation.State.SUCCEEDED, result=result)
    finally:
        lease.release()


def _finish(op: Operation, lease: OperationLease, *, state: str, result: dict | None = None,
            error: str = "") -> str:
    """Store what was done (even when canceled meanwhile); move the state if still running.
    Only the run holding the lease writes (a run that lost it leaves the row to the other)."""
    mine = Operation.objects.filter(id=op.id, lease_owner=lease.owner)
    if result is not None:
        count = int(result.get("count", 0) or 0)
        mine.update(result=result, done=count, total=count)
    mine.filter(state=Operation.State.RUNNING).update(
        state=state, finished_at=timezone.now(), error=error[:5000]
    )
    state = Operation.objects.get(id=op.id).state
    log.info("operation=%s %s %s", op.id, op.kind, state)
    return state


# --- the sweep ------------------------------------------------------------------------------


def operations_fail_lost(*, operation_ids: Iterable[int] | None = None) -> list[int]:
    """Fail each running operation whose lease lapsed after MAX_RUNS runs: every run lost its
    worker (killed, out of memory), so a fourth would most likely be lost too."""
    now = timezone.now()
    lost = Operation.objects.filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
        state=Operation.State.RUNNING, runs__gte=MAX_RUNS,
    )  # fmt: skip
    if operation_ids is not None:
        lost = lost.filter(id__in=list(operation_ids))
    failed = []
    for op_id, runs in lost.values_list("id", "runs"):
        error = (
            f"Stopped after {runs} runs: the worker running it was lost each time (killed, or "
            "out of memory) before it could finish. Check the workers' logs, then run the "
            "action again."
        )
        if Operation.objects.filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
            id=op_id, state=Operation.State.RUNNING,
        ).update(state=Operation.State.FAILED, finished_at=now, error=error):  # fmt: skip
            log.error("operation=%s failed: %s", op_id, error)
            failed.append(op_id)
    return failed


def operations_sweep() -> list[int]:
    """Queue again each unfinished operation no run holds (its lease, or its queued task's
    reservation, lapsed); fail those whose runs were all lost. Returns the ids queued."""
    operations_fail_lost()
    now = timezone.now()
    lapsed = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    queued = []
    for op_id in Operation.objects.filter(lapsed, state__in=ACTIVE).values_list("id", flat=True):
        reserved = Operation.objects.filter(lapsed, id=op_id, state__in=ACTIVE).update(
            lease_owner="", lease_expires_at=now + timedelta(seconds=recovery.queued_seconds())
        )
        if reserved:
            operation_enqueue(operation_id=op_id)
            log.info("operation=%s had no live lease: queued again", op_id)
            queued.append(op_id)
    return queued


def sweep_operations() -> str:
    """The sweep's Schedule (a django-q2 task): a thin door to operations_sweep."""
    queued = operations_sweep()
    recovery.sweep_due_again(name=SWEEP_NAME)
    return f"{len(queued)} operation(s) queued again"


def on_worker_spawn(sender, proc_name=None, **kwargs) -> None:
    """django-q2's post_spawn, in each new worker process: sweep once before taking a task."""
    try:
        recovery.sweep_schedule_ensure(name=SWEEP_NAME, func=SWEEP_FUNC)
        operations_sweep()
    except Exception:  # a worker must start even when the database is down at that moment
        log.exception("the operations sweep at worker start failed")


def run_operation(operation_id: int) -> str:
    """django-q2 task: a thin door that takes the id and calls the service."""
    return operation_run(operation_id=operation_id)


# --- curate ---------------------------------------------------------------------------------


def curate_estimate(
    *, notes: QuerySet, mode: str = Mode.AUTO, urgent: bool = False, fields=None
) -> dict:
    """What the curate form shows before submitting: curatable notes, the mode the router
    would pick, and the cost estimate for batch and real time: the engine's own estimate
    (`job_estimate`, the one `job_create` checks the maximum cost against). With no known
    price for the model, both costs are None and "error" says why."""
    ok = Q(state=Note.State.OK)
    agg = notes.order_by().aggregate(selected=Count("pk"), n=Count("pk", filter=ok))
    n = agg["n"]
    result = {
        "selected": agg["selected"],
        "curatable": n,
        "mode": router.choose_mode(n, str(mode), urgent=urgent) if n else "",
        "batch": None,
        "realtime": None,
        "error": "",
    }
    if not n:
        result["batch"] = result["realtime"] = Decimal(0)
        return result
    ids = curatable_ids(notes=notes)
    try:
        both = job_estimates(
            note_ids=ids, fields=jobs.fields_clean(fields), model=settings.CURATION_MODEL
        )
        result["batch"] = both[True].cost.quantize(MICRO)
        result["realtime"] = both[False].cost.quantize(MICRO)
    except pricing.UnknownPrice as exc:
        result["batch"] = result["realtime"] = None
        result["error"] = str(exc)
    return result


def _job_cost(ids: list[int], *, fields, batch: bool) -> Decimal:
    fields = jobs.fields_clean(fields)
    model = settings.CURATION_MODEL
    cost = job_estimate(note_ids=ids, fields=fields, model=model, batch=batch).cost
    return cost.quantize(MICRO)


def curatable_ids(*, notes: QuerySet) -> list[int]:
    """The ids of the notes that can be curated, sorted: read once per request."""
    return list(notes.filter(state=Note.State.OK).order_by("pk").values_list("pk", flat=True))


def curate_check(
    *, note_ids: list[int], fields, mode: str, urgent: bool, max_cost: Decimal | str | None
) -> int:
    """Refuse a curate request before it is queued, as job_create would: raises
    pricing.UnknownPrice (no price for the model) or jobs.OverBudget (over `max_cost`).
    Returns how many of the notes can be curated (0: nothing to queue)."""
    limit = jobs.budget_for(max_cost)
    ids = note_ids
    if not ids:
        return 0
    chosen = router.choose_mode(len(ids), str(mode), urgent=urgent)
    pricing.price_for(settings.CURATION_MODEL)  # raises UnknownPrice
    if limit is not None:
        cost = _job_cost(ids, fields=fields, batch=chosen == Mode.BATCH)
        jobs.budget_check(
            cost=cost, limit=limit, n=len(ids), model=settings.CURATION_MODEL, mode=chosen
        )
    return len(ids)


def pending_notes_count(*, notes: QuerySet, fields: Iterable[str] | None = None) -> int:
    """How many of these notes already have suggestions awaiting review."""
    pending = Suggestion.objects.filter(
        state=Suggestion.State.PENDING, note_id__in=notes.order_by().values("pk")
    )
    if fields:
        pending = pending.filter(field__in=list(fields))
    return pending.values("note_id").distinct().count()


def _curate_result(job, *, left_out: int) -> dict:
    items = job.items.count()
    return {
        "count": items,
        "job_id": job.id,
        "items": items,
        "mode": job.get_mode_display(),
        "cost_estimate": str(job.cost_estimate),
        "left_out_pending": left_out,
    }


def _run_curate(op: Operation, progress: Progress) -> dict:
    params = op.params
    if op.job_id is not None:  # an earlier run created the job (and queued it) and was lost
        return _curate_result(op.job, left_out=int(op.result.get("left_out_pending", 0)))
    ids = selection_ids(params["notes"])
    fields = jobs.fields_clean(params.get("fields"))
    left_out = 0
    if params.get("pending") == "skip":
        waiting: set[int] = set()
        for chunk in chunks(ids):
            waiting.update(
                Suggestion.objects.filter(
                    state=Suggestion.State.PENDING, note_id__in=chunk, field__in=fields
                ).values_list("note_id", flat=True)
            )
        left_out = len(waiting)
        ids = [i for i in ids if i not in waiting]
        if not ids:
            raise OperationError(
                "Every selected note already has suggestions awaiting review; nothing to curate."
            )
    progress.check()
    try:
        # The job and the operation's link to it commit together: a run lost before the
        # commit left no job, one lost after finds it (above), never a second job.
        with transaction.atomic():
            job = jobs.job_create(
                notes=ids,
                fields=fields,
                mode=params.get("mode", Mode.AUTO),
                urgent=bool(params.get("urgent")),
                user=op.created_by,
                selection=params.get("selection", ""),
                max_cost=params.get("max_cost"),
                **params.get("job_options", {}),
            )
            Operation.objects.filter(id=op.id).update(
                job=job, result={"left_out_pending": left_out}
            )
            jobs.job_start(job_id=job.id)
    except jobs.NoNotesError:
        raise OperationError(
            "None of the selected notes can be curated (skipped or missing)."
        ) from None
    except ValueError as exc:  # no price for the model, or over the maximum cost
        raise OperationError(str(exc)) from None
    return _curate_result(job, left_out=left_out)


# --- export: preview, confirm, write ----------------------------------------------------------


def _vault_runs(params: dict):
    for run in params.get("runs", []):
        vault = Vault.objects.filter(id=run["vault"]).first()
        if vault is None:
            raise OperationError(f"Vault {run['vault']} no longer exists.")
        notes = run.get("notes")
        yield vault, (None if notes is None else selection_ids(notes))


def _ids_of(vault: Vault, paths: list[str]) -> list[int]:
    wanted = set(paths)
    return [
        nid
        for nid, path in Note.objects.filter(vault=vault).values_list("id", "path").iterator()
        if path in wanted
    ]


def _problems(pairs) -> list[list[str]]:
    return [[path, reason] for path, reason in pairs[:SHOWN_PATHS]]


def _run_export(op: Operation, progress: Progress, *, dry_run: bool) -> dict:
    vaults, done = [], 0
    for vault, note_ids in _vault_runs(op.params):
        if not dry_run:
            progress.check()  # a write is never stopped half-way: only between vaults
        step = Progress(op.id, stop=dry_run, offset=done, owner=progress.owner)
        summary = vault_export(vault=vault, note_ids=note_ids, dry_run=dry_run, progress=step)
        done += len(summary.written) + summary.unchanged + len(summary.conflicts) + len(
            summary.errors
        ) + len(summary.missing)  # fmt: skip
        entry = {
            "vault_id": vault.id,
            "vault": vault.name,
            "line": summary.line(),
            "written": len(summary.written),
            "unchanged": summary.unchanged,
            "conflicts": _problems(summary.conflicts),
            "conflict_count": len(summary.conflicts),
            "errors": _problems(summary.errors),
            "error_count": len(summary.errors),
            "paths": summary.written[:SHOWN_PATHS],
        }
        if dry_run:
            entry["diffs"] = [[path, diff] for path, diff in summary.diffs[:SHOWN_DIFFS]]
            # What "Export these N notes" will write: exactly the notes previewed.
            entry["notes"] = id_ranges(_ids_of(vault, summary.written))
        vaults.append(entry)
    written = sum(v["written"] for v in vaults)
    return {
        "count": done,
        "vaults": vaults,
        "written": written,
        "unchanged": sum(v["unchanged"] for v in vaults),
        "conflicts": sum(v["conflict_count"] for v in vaults),
        "errors": sum(v["error_count"] for v in vaults),
        "dry_run": dry_run,
    }


def export_confirm(*, preview: Operation, user) -> Operation:
    """"Export these N notes": an export of exactly the notes the preview would write."""
    if preview.kind != Operation.Kind.PREVIEW or preview.state != Operation.State.SUCCEEDED:
        raise OperationError("Only a finished preview can be confirmed.")
    runs = [
        {"vault": v["vault_id"], "notes": {"ranges": v["notes"]}}
        for v in preview.result.get("vaults", [])
        if v.get("notes")
    ]
    if not runs:
        raise OperationError("The preview found nothing to write.")
    n = sum(ranges_count(r["notes"]["ranges"]) for r in runs)
    return operation_create(
        kind=Operation.Kind.EXPORT,
        user=user,
        params={"runs": runs, "preview": preview.id},
        description=f"export {n} note{'s' if n != 1 else ''} previewed in operation {preview.id}",
        total=n,
    )


# --- re-import --------------------------------------------------------------------------------


def reimport_conflicts(*, export: Operation, user) -> Operation:
    """Re-import the notes an export (or its preview) found changed on disk, only those files."""
    runs = [
        {"vault": v["vault_id"], "paths": [path for path, _ in v["conflicts"]]}
        for v in export.result.get("vaults", [])
        if v.get("conflicts")
    ]
    if not runs:
        raise OperationError("No conflicts to re-import.")
    n = sum(len(r["paths"]) for r in runs)
    return operation_create(
        kind=Operation.Kind.IMPORT,
        user=user,
        params={"runs": runs},
        description=f"re-import {n} conflicting note{'s' if n != 1 else ''} of operation {export.id}",
        total=n,
    )


def _run_import(op: Operation, progress: Progress) -> dict:
    vaults, done = [], 0
    for run in op.params.get("runs", []):
        vault = Vault.objects.filter(id=run["vault"]).first()
        if vault is None:
            raise OperationError(f"Vault {run['vault']} no longer exists.")
        step = Progress(op.id, offset=done, owner=progress.owner)
        if run.get("paths") is None:
            vault, summary = vault_import(root=vault.root, name=vault.name, progress=step)
        else:
            summary = notes_import(vault=vault, paths=run["paths"], progress=step)
        done += summary.imported + summary.updated + summary.unchanged + len(summary.skipped)
        vaults.append(
            {
                "vault_id": vault.id,
                "vault": vault.name,
                "line": summary.line(),
                "imported": summary.imported,
                "updated": summary.updated,
                "unchanged": summary.unchanged,
                "missing": summary.missing,
                "skipped": _problems(summary.skipped),
                "skipped_count": len(summary.skipped),
            }
        )
    return {"count": done, "vaults": vaults}


# --- bulk decisions ---------------------------------------------------------------------------


def _run_decide(op: Operation, progress: Progress) -> dict:
    ids = selection_ids(op.params["suggestions"])
    decision = op.params["decision"]
    totals = {"decided": 0, "superseded": 0, "locked": 0}
    done = 0
    for chunk in chunks(ids):
        progress.done, progress.total = done, len(ids)
        progress.check()  # a cancel stops between two chunks, each decided whole
        result = suggestions_decide(
            queryset=Suggestion.objects.filter(pk__in=chunk),
            user=op.created_by,
            decision=decision,
            comment=op.params.get("comment", ""),
        )
        totals["decided"] += result.decided
        totals["superseded"] += result.superseded
        totals["locked"] += result.locked
        done += len(chunk)
        progress(done, len(ids))
    verb = Review.Decision(decision).label.lower()
    return {"count": len(ids), "decision": verb, **totals}


RUNNERS = {
    Operation.Kind.CURATE: _run_curate,
    Operation.Kind.PREVIEW: lambda op, progress: _run_export(op, progress, dry_run=True),
    Operation.Kind.EXPORT: lambda op, progress: _run_export(op, progress, dry_run=False),
    Operation.Kind.IMPORT: _run_import,
    Operation.Kind.DECIDE: _run_decide,
}

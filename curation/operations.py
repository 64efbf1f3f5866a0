"""Admin work carried by the workers: curate a big selection, preview, export, re-import, decide.

An admin action only stores what to do as an `Operation` row (the selection as its pickled query,
the options) and answers at once; `run_operation` (a django-q2 task) calls the same services
the commands call (`job_create`, `vault_export`, `vault_import`, `suggestions_decide`), writing
progress as it goes, and stores a result summary the operation's page shows. Cancelling is a
conditional update the runner notices at its next progress write.
"""

from __future__ import annotations

import base64
import logging
import pickle
import time
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from curation.api import pricing
from curation.engine import jobs, router
from curation.engine.estimate import job_estimate, job_estimates
from curation.engine.items import MICRO
from curation.models import Mode, Operation, Review, Suggestion
from curation.review.decisions import ReviewError, suggestions_decide
from curation.review.export import vault_export
from ingest.importer import VaultNotFound, notes_import, vault_import
from ingest.models import Note, Vault

log = logging.getLogger(__name__)

RUN_OPERATION = "curation.operations.run_operation"
CHUNK = 2000  # ids per query when the worker expands a selection
PROGRESS_EVERY = 0.5  # seconds between two progress writes (each also checks for a cancel)
SHOWN_DIFFS = 200  # diffs kept for the preview page; `export_vault --dry-run` prints them all
SHOWN_PATHS = 1000  # paths kept per list (written, conflicts, errors); the counts are exact


class OperationCanceled(Exception):
    """Someone canceled the operation while it ran."""


class OperationError(Exception):
    """The operation could not do its work; the message is shown on its page as is."""


# --- selections -----------------------------------------------------------------------------


def id_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as [first, last] runs: 100,000 consecutive notes are one pair."""
    ranges: list[list[int]] = []
    for i in sorted(set(ids)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def ranges_count(ranges) -> int:
    return sum(last - first + 1 for first, last in ranges or [])


def ids_from_ranges(ranges) -> list[int]:
    return [i for first, last in ranges or [] for i in range(first, last + 1)]


def selection_of(queryset: QuerySet) -> dict:
    """A selection stored without reading it: the queryset's own query, pickled.

    Django documents pickling `QuerySet.query` to rebuild the same queryset later; the worker
    reads the ids. "Select all" over 100,000 notes is stored in the time of one small INSERT.
    """
    query = pickle.dumps(queryset.order_by().query)
    return {"query": base64.b64encode(query).decode("ascii")}


def selection_ids(selection, model) -> list[int]:
    """The ids a stored selection names (a pickled query, or [first, last] ranges)."""
    if isinstance(selection, dict) and "query" in selection:
        queryset = model.objects.all()
        queryset.query = pickle.loads(base64.b64decode(selection["query"]))
        return list(queryset.order_by("pk").values_list("pk", flat=True).distinct())
    return ids_from_ranges(selection)


def chunks(ids: list[int], size: int = CHUNK):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


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

    def __init__(self, operation_id: int, *, stop: bool = True, offset: int = 0):
        self.operation_id = operation_id
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
        alive = Operation.objects.filter(
            id=self.operation_id, state=Operation.State.RUNNING
        ).update(**changes)
        if not alive and self.stop:
            raise OperationCanceled

    check = write


def _stale_after() -> float:
    """A running operation silent this long lost its worker (django-q2 stops a task at its
    timeout and delivers it again after `retry`, which is longer)."""
    return float(settings.Q_CLUSTER.get("timeout", 600))


def operation_run(*, operation_id: int) -> str:
    """Claim the operation (queued, or running with a worker gone silent) and do it."""
    now = timezone.now()
    stale = now - timedelta(seconds=_stale_after())
    claimed = (
        Operation.objects.filter(id=operation_id)
        .filter(
            Q(state=Operation.State.PENDING)
            | Q(state=Operation.State.RUNNING, heartbeat_at__lt=stale)
        )
        .update(state=Operation.State.RUNNING, started_at=now, heartbeat_at=now)
    )
    op = Operation.objects.filter(id=operation_id).first()
    if op is None:
        return "missing"
    if not claimed:
        return op.state
    try:
        result = RUNNERS[op.kind](op, Progress(op.id))
    except OperationCanceled:
        log.info("operation=%s stopped: canceled", op.id)
        return Operation.State.CANCELED
    except (OperationError, ReviewError, VaultNotFound, jobs.NoNotesError) as exc:
        _finish(op, state=Operation.State.FAILED, error=str(exc))
        return Operation.State.FAILED
    except Exception as exc:  # reported on the page; the traceback goes to the log
        log.exception("operation=%s failed", op.id)
        _finish(op, state=Operation.State.FAILED, error=f"{type(exc).__name__}: {exc}")
        return Operation.State.FAILED
    _finish(op, state=Operation.State.SUCCEEDED, result=result)
    return Operation.State.SUCCEEDED


def _finish(op: Operation, *, state: str, result: dict | None = None, error: str = "") -> None:
    """Store what was done (even when canceled meanwhile); move the state if still running."""
    if result is not None:
        count = int(result.get("count", 0) or 0)
        Operation.objects.filter(id=op.id).update(result=result, done=count, total=count)
    Operation.objects.filter(id=op.id, state=Operation.State.RUNNING).update(
        state=state, finished_at=timezone.now(), error=error[:5000]
    )
    log.info("operation=%s %s %s", op.id, op.kind, state)


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
    ids = list(notes.filter(ok).order_by().values_list("pk", flat=True))
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


def curate_check(
    *, notes: QuerySet, fields, mode: str, urgent: bool, max_cost: Decimal | str | None
) -> int:
    """Refuse a curate request before it is queued, as job_create would: raises
    pricing.UnknownPrice (no price for the model) or jobs.OverBudget (over `max_cost`).
    Returns how many of the notes can be curated (0: nothing to queue)."""
    limit = jobs.budget_for(max_cost)
    ids = list(notes.filter(state=Note.State.OK).order_by().values_list("pk", flat=True))
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


def _run_curate(op: Operation, progress: Progress) -> dict:
    params = op.params
    ids = selection_ids(params["notes"], Note)
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
    except jobs.NoNotesError:
        raise OperationError(
            "None of the selected notes can be curated (skipped or missing)."
        ) from None
    except ValueError as exc:  # no price for the model, or over the maximum cost
        raise OperationError(str(exc)) from None
    Operation.objects.filter(id=op.id).update(job=job)
    jobs.job_start(job_id=job.id)
    items = job.items.count()
    return {
        "count": items,
        "job_id": job.id,
        "items": items,
        "mode": job.get_mode_display(),
        "cost_estimate": str(job.cost_estimate),
        "left_out_pending": left_out,
    }


# --- export: preview, confirm, write ----------------------------------------------------------


def _vault_runs(params: dict):
    for run in params.get("runs", []):
        vault = Vault.objects.filter(id=run["vault"]).first()
        if vault is None:
            raise OperationError(f"Vault {run['vault']} no longer exists.")
        notes = run.get("notes")
        yield vault, (None if notes is None else selection_ids(notes, Note))


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
        step = Progress(op.id, stop=dry_run, offset=done)
        summary = vault_export(vault=vault, note_ids=note_ids, dry_run=dry_run, progress=step)
        done += len(summary.written) + summary.unchanged + len(summary.conflicts) + len(
            summary.errors
        )
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
        {"vault": v["vault_id"], "notes": v["notes"]}
        for v in preview.result.get("vaults", [])
        if v.get("notes")
    ]
    if not runs:
        raise OperationError("The preview found nothing to write.")
    n = sum(ranges_count(r["notes"]) for r in runs)
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
        step = Progress(op.id, offset=done)
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
    ids = selection_ids(op.params["suggestions"], Suggestion)
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

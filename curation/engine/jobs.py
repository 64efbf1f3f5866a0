"""Job services: create a job, hand it to the workers, run it to its end, cancel, retry.

Every door (the admin action, `curate`, `jobs`, the django-q2 task) calls these functions.

    job_create(...)      Job + one Item per curatable note, in bulk; mode chosen by the router;
                         cost estimated before anything is sent (engine.estimate); refused
                         when the model has no price or the estimate passes the budget.
    consolidation_create(...)  the same for a vault's tag consolidation: one Item per part of
                         the tag list (engine.consolidation), no note.
    job_start(job_id=)   enqueue `curation.engine.tasks.run_job` once the transaction commits.
    job_run(job_id=)     under the job's lease (recovery.JobLease), loop `job_step` until the
                         job is final (or a time budget ends).
    job_step(job_id=)    one pass of the job's runner (RUNNERS[job.mode]), then finalization.

The runners live one per module (`sync`, `batch`, `parallel`) and never import this one;
item transitions are in `items`, request building in `requests`.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from curation import sql
from curation.api import pricing
from curation.engine import consolidation, recovery, router
from curation.engine.batch import ACTIVE_BATCH_STATES, batch_poll, batch_reconcile, batches_cancel
from curation.engine.estimate import consolidation_estimates, job_estimate
from curation.engine.items import (
    ACTIVE_ITEM_STATES,
    MICRO,
    item_counts,
    items_cancel,
    items_release_orphans,
    job_cost,
    poll_bounds,
)
from curation.engine.parallel import batch_run_hedged, parallel_run
from curation.engine.sync import sync_run
from curation.models import ALL_FIELDS, Batch, Install, Item, Job, Mode
from curation.review.decisions import ReviewForbidden
from curation.review.stale import note_versions_keep
from curation.roles import can_curate
from ingest.models import Note
from ingest.notes import link_name

log = logging.getLogger(__name__)

CREATE_CHUNK = 2000  # notes per bulk insert when creating a job
RUN_JOB = "curation.engine.tasks.run_job"


class NoNotesError(ValueError):
    """The selection holds no note that can be curated."""


class OverBudget(ValueError):
    """The job's estimate passes its maximum cost; str(exc) is the one-line reason."""


def budget_for(max_cost: Decimal | str | None) -> Decimal | None:
    """A job's budget: `max_cost` if given, else CURATION_MAX_JOB_COST; 0 means none."""
    value = settings.CURATION_MAX_JOB_COST if max_cost is None or max_cost == "" else max_cost
    try:
        limit = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"the maximum cost {value!r} is not a number of US dollars") from None
    if not limit.is_finite() or limit < 0:
        raise ValueError(f"the maximum cost {value!r} is not a number of US dollars")
    return limit if limit > 0 else None


def budget_check(
    *, cost: Decimal, limit: Decimal, n: int, model: str, mode: str, what: str = ""
) -> None:
    """Raise OverBudget when a job of `n` notes (or `what`) estimated at `cost` passes `limit`."""
    if cost > limit:
        what = what or f"{n} note{'s' if n != 1 else ''}"
        advice = "raise the maximum cost" + ("" if "tag" in what else " or select fewer notes")
        raise OverBudget(
            f"estimated cost ${cost} for {what} ({model}, {mode}) "
            f"is over the maximum of ${limit.normalize():f}: {advice}"
        )



# --- creating a job ------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def install_key() -> str:
    """This deployment's random key (made once, kept in the database): the custom_id prefix
    that tells our batch requests from those of another deployment sharing the workspace."""
    found = Install.objects.order_by("id").values_list("key", flat=True).first()
    if found:
        return found
    alphabet = string.ascii_lowercase + string.digits
    key = "vc" + "".join(secrets.choice(alphabet) for _ in range(8))
    try:
        with transaction.atomic():
            Install.objects.create(key=key)
    except IntegrityError:
        pass
    return Install.objects.order_by("id").values_list("key", flat=True).first()


def custom_id_for(*, item_id: int, name: str, install: str = "item") -> str:
    """`vc3k9x2m7q_00000042_Building_RAG_Systems`: this install's key (install_key), the
    Item's id (unique in this install) and a readable name.

    Always matches ^[a-zA-Z0-9_-]{1,64}$; the name part only helps a person reading logs,
    results are matched by the whole id looked up in the database.
    """
    prefix = f"{install}_{item_id:08d}"
    room = 64 - len(prefix) - 1
    slug = _UNSAFE.sub("_", name).strip("_")[: max(room, 0)].strip("_")
    return f"{prefix}_{slug}" if slug else prefix



def fields_clean(fields: Iterable[str] | None) -> list[str]:
    """The requested fields in canonical order; all of them when none given."""
    if not fields:
        return list(ALL_FIELDS)
    wanted = {f.strip() for f in fields if f and f.strip()}
    unknown = sorted(wanted - set(ALL_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown field(s): {', '.join(unknown)} (choose from {', '.join(ALL_FIELDS)})"
        )
    return [f for f in ALL_FIELDS if f in wanted]


def _note_ids(notes: QuerySet | Iterable[int]) -> list[int]:
    """Ids of the curatable notes in a queryset or an id list (skipped/missing ones dropped)."""
    if isinstance(notes, QuerySet):
        qs = notes
        if notes.query.is_sliced:  # a sliced queryset cannot be filtered further
            qs = notes.model.objects.filter(pk__in=notes.values("pk"))
        return list(
            qs.filter(state=Note.State.OK).order_by("id").values_list("id", flat=True).distinct()
        )
    wanted = sorted({int(n) for n in notes})
    ids: list[int] = []
    for start in range(0, len(wanted), CREATE_CHUNK):
        chunk = wanted[start : start + CREATE_CHUNK]
        ids.extend(
            Note.objects.filter(id__in=chunk, state=Note.State.OK)
            .order_by("id")
            .values_list("id", flat=True)
        )
    return ids


def job_create(
    *,
    notes: QuerySet | Iterable[int],
    fields: Iterable[str] | None = None,
    mode: str = Mode.AUTO,
    urgent: bool = False,
    user=None,
    selection: str = "",
    max_cost: Decimal | str | None = None,
) -> Job:
    """Create a job with one Item per curatable note (skipped and missing notes never queued).

    Works on any selection size: ids are read once, items are inserted CREATE_CHUNK at a
    time, and no query is made per note. Before anything is written the cost is estimated on
    the requests as they will be sent (engine.estimate). Raises NoNotesError when nothing can
    be curated, pricing.UnknownPrice when the model has no known price, OverBudget when the
    estimate passes `max_cost` (None: CURATION_MAX_JOB_COST; 0: no limit): all ValueErrors
    with a one-line reason.
    """
    fields = fields_clean(fields)
    limit = budget_for(max_cost)
    ids = _note_ids(notes)
    if not ids:
        raise NoNotesError("no curatable notes matched the selection")
    chosen = router.choose_mode(len(ids), str(mode), urgent=urgent)
    model = settings.CURATION_MODEL
    estimate = job_estimate(note_ids=ids, fields=fields, model=model, batch=chosen == Mode.BATCH)
    cost_estimate = estimate.cost.quantize(MICRO)
    if limit is not None:
        budget_check(cost=cost_estimate, limit=limit, n=len(ids), model=model, mode=chosen)
    install = install_key()
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(
            created_by=user if getattr(user, "pk", None) else None,
            selection=selection[:500],
            fields=fields,
            requested_mode=mode,
            mode=chosen,
            urgent=urgent,
            model=model,
            cost_estimate=cost_estimate,
            max_cost=limit,
        )
        vaults: set[int] = set()
        for start in range(0, len(ids), CREATE_CHUNK):
            rows = list(
                Note.objects.filter(id__in=ids[start : start + CREATE_CHUNK])
                .order_by("id")
                .values_list("id", "path", "vault_id", "size", "content_hash")
            )
            items = Item.objects.bulk_create(
                [
                    Item(job=job, note_id=nid, note_hash=h, created_at=now, updated_at=now)
                    for nid, _, _, _, h in rows
                ]
            )
            note_versions_keep(note_ids=[r[0] for r in rows])
            if any(item.pk is None for item in items):  # a backend that cannot return ids
                by_note = dict(
                    Item.objects.filter(job=job, note_id__in=[r[0] for r in rows]).values_list(
                        "note_id", "id"
                    )
                )
                for item in items:
                    item.pk = item.id = by_note[item.note_id]
            names = {nid: path for nid, path, *_ in rows}
            sql.items_set_custom_ids(
                [
                    (custom_id_for(item_id=item.pk, name=link_name(names[item.note_id]),
                                   install=install), item.pk)
                    for item in items
                ]
            )
            vaults.update(r[2] for r in rows)
        job.vault_id = next(iter(vaults)) if len(vaults) == 1 else None
        job.save(update_fields=["vault"])
    log.info(
        "job=%s created items=%s mode=%s requested=%s fields=%s estimate=%s (%s tokens in, %s "
        "out per note; %s requests counted by %s) max_cost=%s",
        job.id, len(ids), chosen, mode, ",".join(fields), job.cost_estimate,
        estimate.input_tokens, estimate.output_tokens, estimate.sampled, estimate.counted_by,
        limit,
    )
    return job


def consolidation_preview(*, vault_id: int) -> dict:
    """What the consolidation form shows and consolidation_create checks: the vault's tag list
    (`tags`), its parts, and the estimate for batch and real time ({batch: cost}, empty with
    `error` when the model has no price). Raises NothingToConsolidate below two tags."""
    tags = consolidation.vault_tag_list(vault_id=vault_id)
    if len(tags) < 2:
        raise consolidation.NothingToConsolidate(
            "This vault has fewer than two tags: nothing to consolidate."
        )
    parts = consolidation.tag_parts(tags)
    model = settings.CURATION_MODEL
    preview = {"tags": tags, "parts": parts, "model": model, "costs": {}, "error": ""}
    try:
        costs = consolidation_estimates(parts=parts, model=model)
    except pricing.UnknownPrice as exc:
        preview["error"] = str(exc)
    else:
        preview["costs"] = {batch: cost.quantize(MICRO) for batch, cost in costs.items()}
    return preview


def consolidation_create(
    *,
    vault_id: int,
    mode: str = Mode.AUTO,
    max_cost: Decimal | str | None = None,
    user=None,
) -> Job:
    """A tag consolidation job over the vault's whole tag list: one Item per part (at most
    CURATION_CONSOLIDATION_TAGS tags), each carrying its part; queue it with job_start.

    The router picks the mode from the number of parts, as for notes; the estimate is counted
    on the requests as they will be sent, and the budget refuses the job before anything is
    written, as job_create does. Raises ReviewForbidden (not a curator),
    NothingToConsolidate, pricing.UnknownPrice or OverBudget (ValueErrors with a reason).
    """
    if user is not None and not can_curate(user):
        raise ReviewForbidden("Only curators start consolidation jobs.")
    limit = budget_for(max_cost)
    preview = consolidation_preview(vault_id=vault_id)
    if preview["error"]:
        raise pricing.UnknownPrice(preview["error"])
    tags, parts, model = preview["tags"], preview["parts"], preview["model"]
    chosen = router.choose_mode(len(parts), str(mode))
    cost_estimate = preview["costs"][chosen == Mode.BATCH]
    requests = f"{len(parts)} request{'s' if len(parts) != 1 else ''}"
    if limit is not None:
        budget_check(cost=cost_estimate, limit=limit, n=len(parts), model=model, mode=chosen,
                     what=f"{len(tags):,} tags in {requests}")  # fmt: skip
    install = install_key()
    with transaction.atomic():
        job = Job.objects.create(
            kind=Job.Kind.CONSOLIDATE,
            created_by=user if getattr(user, "pk", None) else None,
            vault_id=vault_id,
            selection=f"tag consolidation: {len(tags):,} tags in {requests}",
            fields=["tags"],
            requested_mode=mode,
            mode=chosen,
            model=model,
            cost_estimate=cost_estimate,
            max_cost=limit,
        )
        for number, part in enumerate(parts, 1):
            item = Item.objects.create(job=job, tag_list=[list(entry) for entry in part])
            item.custom_id = custom_id_for(
                item_id=item.pk, name=f"tags_{number}_of_{len(parts)}", install=install
            )
            item.save(update_fields=["custom_id"])
    log.info("job=%s consolidation vault=%s tags=%s parts=%s mode=%s requested=%s estimate=%s "
             "max_cost=%s", job.id, vault_id, len(tags), len(parts), chosen, mode,
             job.cost_estimate, limit)  # fmt: skip
    return job


def job_enqueue(*, job_id: int) -> str:
    """Hand the job to the workers now (use job_start inside a transaction).

    The job is reserved for the queued task first (unless a live run holds it), so the sweep
    does not queue it again while the task waits for a worker.
    """
    from django_q.tasks import async_task

    recovery.lease_reserve(job_id=job_id)
    return async_task(RUN_JOB, job_id, group=f"job-{job_id}")


def job_start(*, job_id: int) -> None:
    """Queue the job for the workers once the current transaction commits."""
    transaction.on_commit(lambda: job_enqueue(job_id=job_id))


# --- running a job ---------------------------------------------------------------------------


def job_run(
    *,
    job_id: int,
    budget: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Job], None] | None = None,
    wait_for_lease: bool = True,
) -> bool | None:
    """Carry a job forward under its lease until it is final (True) or `budget` seconds are
    spent (False).

    None: another run holds the job's lease (`wait_for_lease` off: a worker's task leaves it
    to that run), or took it over from this one. With `wait_for_lease` (`curate --wait`), it
    waits for the holder to end the job or to let its lease lapse.
    """
    deadline = None if budget is None else time.monotonic() + budget
    lease = recovery.JobLease(job_id=job_id)
    while not lease.claim():
        job = Job.objects.get(id=job_id)
        if job.is_final:
            return True
        if not wait_for_lease:
            log.info("job=%s is leased to another run: left to it", job_id)
            return None
        if progress is not None:
            progress(job)
        wait = poll_bounds()[0]
        if deadline is not None and time.monotonic() + wait >= deadline:
            return False
        sleep(wait)
    try:
        lease.start()
        while not lease.lost.is_set():
            job_recover_orphans(job_id=job_id)
            wait = job_step(job_id=job_id, deadline=deadline)
            if progress is not None:
                progress(Job.objects.get(id=job_id))
            if wait is None:
                return True
            if deadline is not None and time.monotonic() + wait >= deadline:
                return False
            if wait > 0:
                sleep(wait)
            lease.renew_inline()
        return None  # another run took the job over
    finally:
        lease.release()


def job_recover_orphans(*, job_id: int) -> None:
    """Settle what a run that stopped without finishing (kill -9, an error) had in hand.

    Only the holder of the job's lease calls this, between its passes, so nothing it finds
    can still be in a live run's hands: a real-time call never answered goes back for another
    attempt at once, and a batch whose submission was never confirmed is adopted from the
    provider, or failed with its items sent back when the provider never got it.
    """
    job = Job.objects.get(id=job_id)
    if items_release_orphans(job=job):
        log.warning("job=%s real-time calls left by a stopped run sent back", job_id)
    for batch_id in Batch.objects.filter(
        job_id=job_id, state=Batch.State.SUBMITTING, provider_id=None
    ).values_list("id", flat=True):
        batch_reconcile(batch_id=batch_id, reason="the worker stopped before the provider answered")


def job_step(*, job_id: int, deadline: float | None = None) -> float | None:
    """One pass over the job; returns seconds until the next pass is useful, None when final."""
    job = Job.objects.get(id=job_id)
    if job.state == Job.State.CANCELED:
        return canceled_batches_sweep(job=job)
    if job.is_final:
        return None
    if job.state == Job.State.PENDING:
        if Job.objects.filter(id=job_id, state=Job.State.PENDING).update(
            state=Job.State.RUNNING, started_at=timezone.now()
        ):
            log.info("job=%s running mode=%s", job_id, job.mode)
        job.refresh_from_db()
        if job.is_final:
            return None
    runner = RUNNERS[job.mode or Mode.SYNC]
    wait = runner(job=job, deadline=deadline)
    if wait is None:
        if job_finalize(job_id=job_id):
            return None
        return poll_bounds()[0]
    return wait


def job_finalize(*, job_id: int) -> bool:
    """End the job when no item or batch is active; its state follows from the item states."""
    counts = item_counts(job_ids=[job_id]).get(job_id, {})
    if any(counts.get(s, 0) for s in ACTIVE_ITEM_STATES):
        return False
    if Batch.objects.filter(job_id=job_id, state__in=ACTIVE_BATCH_STATES).exists():
        return False
    if counts.get(Item.State.FAILED, 0):
        state = Job.State.FAILED
    elif counts.get(Item.State.CANCELED, 0):
        state = Job.State.CANCELED  # what was left was canceled: nothing failed
    else:
        state = Job.State.SUCCEEDED
    cost = job_cost(job_id=job_id)
    n = Job.objects.filter(id=job_id, state=Job.State.RUNNING).update(
        state=state, cost=cost, finished_at=timezone.now()
    )
    if n:
        log.info(
            "job=%s finished state=%s %s cost=%s",
            job_id, state, " ".join(f"{k}={v}" for k, v in sorted(counts.items())), cost,
        )
    return Job.objects.get(id=job_id).is_final



PROGRESS_ITEMS = 50  # items listed on the live job page


def job_progress(*, job_id: int) -> dict:
    """What the live job page shows: state, per-state counts, cost so far, the batches."""
    job = Job.objects.get(id=job_id)
    counts = item_counts(job_ids=[job_id]).get(job_id, {})
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in Item.FINAL_STATES)
    batches = [
        {
            "id": b.id,
            "provider_id": b.provider_id or "",
            "state": b.state,
            "request_count": b.request_count,
            "request_counts": b.request_counts or {},
        }
        for b in job.batches.order_by("-id")[:50]
    ]
    # Per-item progress, the latest changes first (items end one by one in parallel mode).
    labels = dict(Item.State.choices)
    recent = [
        {
            "id": row["id"], "state": row["state"],
            "note": row["note__path"] or f"tag list ({len(row['tag_list'] or []):,} tags)",
            "state_label": labels.get(row["state"], row["state"]), "attempts": row["attempts"],
            "error": row["error"][:200], "cost": str(row["cost"]),
            "updated_at": row["updated_at"].isoformat() if row["updated_at"] else "",
        }  # fmt: skip
        for row in job.items.order_by("-updated_at", "-id").values(
            "id", "note__path", "state", "attempts", "error", "cost", "updated_at",
            *(["tag_list"] if job.is_consolidation else []),
        )[:PROGRESS_ITEMS]
    ]
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "state_label": job.get_state_display(),
        "mode": job.mode,
        "final": job.is_final,
        "total": total,
        "done": done,
        "counts": {state: counts.get(state, 0) for state in Item.State.values},
        "cost": str(job.cost if job.is_final else job_cost(job_id=job_id)),
        "cost_estimate": str(job.cost_estimate),
        "error": job.error,  # why it ended at once, with the API's request-id
        "request_id": job.request_id,
        "batches": batches,
        "items": recent,
    }


def job_cancel(*, job_id: int) -> int:
    """Cancel a job: its running provider batches, and every item not yet ended.

    Returns how many items were canceled. Results that arrive later for canceled items
    are discarded (their conditional update finds them no longer SUBMITTED).
    """
    now = timezone.now()
    with transaction.atomic():
        if not Job.objects.filter(
            id=job_id, state__in=[Job.State.PENDING, Job.State.RUNNING]
        ).update(state=Job.State.CANCELED, finished_at=now):
            return 0
        n = items_cancel(job_id=job_id)
        Batch.objects.filter(job_id=job_id, state=Batch.State.PREPARING).update(
            state=Batch.State.FAILED, error="job canceled before submission", ended_at=now
        )
    batches_cancel(job_id=job_id)
    Job.objects.filter(id=job_id).update(cost=job_cost(job_id=job_id))
    log.info("job=%s canceled items=%s", job_id, n)
    if Batch.objects.filter(job_id=job_id, state__in=ACTIVE_BATCH_STATES).exists():
        job_start(job_id=job_id)  # a worker polls its canceled batches to their end
    return n


def canceled_batches_sweep(*, job: Job) -> float | None:
    """A canceled job's provider batches: ask again to cancel those still running, poll the
    canceling ones to their end and close them (results land on no item: all are canceled).
    Returns seconds until the next poll, None when none is left."""
    batches_cancel(job_id=job.id)
    now = timezone.now()
    left = Batch.objects.filter(
        job=job, state__in=[Batch.State.IN_PROGRESS, Batch.State.CANCELING, Batch.State.ENDED]
    )
    for batch in left.only("id", "state", "next_poll_at"):
        if batch.state == Batch.State.ENDED or not batch.next_poll_at or batch.next_poll_at <= now:
            batch_poll(batch_id=batch.id)
    due = [b.next_poll_at for b in left.only("next_poll_at")]
    if not due:
        return None
    soonest = min((d for d in due if d is not None), default=timezone.now())
    return max(0.0, (soonest - timezone.now()).total_seconds())



def job_retry_failed(*, job_id: int) -> int:
    """Give every failed item of a job fresh attempts and queue the job again.

    Returns how many items were reset (0: nothing to do, the job is left as it was).
    """
    now = timezone.now()
    with transaction.atomic():
        if Job.objects.filter(id=job_id, state=Job.State.CANCELED).exists():
            return 0  # a canceled job stays canceled
        n = Item.objects.filter(job_id=job_id, state=Item.State.FAILED).update(
            state=Item.State.PENDING, attempts=0, batch=None, finished_at=None, updated_at=now
        )
        if n:
            # retried_at: the hedge of a batch job counts from the retry, not the first start.
            Job.objects.filter(id=job_id).update(
                state=Job.State.RUNNING, finished_at=None, retried_at=now, error="",
                request_id="",
            )
            job_start(job_id=job_id)
    if n:
        log.info("job=%s retrying failed items=%s", job_id, n)
    return n



# Each mode's runner: `runner(job=, deadline=) -> seconds until next pass, or None when it has
# nothing left to do`. A batch job's runner is batch_run until its hedge is due (parallel).
RUNNERS: dict[str, Callable[..., float | None]] = {
    Mode.SYNC: sync_run,
    Mode.PARALLEL: parallel_run,
    Mode.BATCH: batch_run_hedged,
}

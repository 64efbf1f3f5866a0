"""Item state transitions: the one place an item is claimed, answered, retried or canceled.

Every change is a conditional UPDATE (`WHERE state=<what the caller saw>`), so a task delivered
twice, an answer applied twice or an answer for an item canceled meanwhile changes nothing the
second time. The runners (sync, batch, parallel) and the job services all call these.

    items_claim(...)        PENDING -> SUBMITTED, one attempt counted (a real-time call or a batch),
                            unless sending them could carry the job past its budget: then every
                            unsent item -> CANCELED "budget reached" (items_stop_for_budget)
    apply_outcomes(...)     SUBMITTED -> SUCCEEDED (+ Suggestion rows, or TagConsolidation rows
                            for a consolidation job) | ERRORED | EXPIRED | FAILED
    items_requeue(job=)     ERRORED/EXPIRED -> PENDING, out of their old batch
    items_cancel(...)       any active state -> CANCELED
    items_fail_uncuratable  PENDING -> FAILED when the note was skipped or went missing
    items_release_orphans   SUBMITTED real-time calls a run that stopped left -> another attempt
    unsent_wait(job=)       what the real-time side still holds ("is anything left?")
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from curation import sql
from curation.api import client, pricing, prompt
from curation.engine.consolidation import consolidations_store
from curation.models import Batch, Item, Job, Suggestion
from curation.review.decisions import suggestions_supersede
from curation.review.vocabulary import proposed_tags_record, suggestions_vet
from ingest.models import Note

log = logging.getLogger(__name__)

MICRO = Decimal("0.000001")

ACTIVE_ITEM_STATES = (
    Item.State.PENDING,
    Item.State.SUBMITTED,
    Item.State.ERRORED,
    Item.State.EXPIRED,
)
RETRY_STATES = (Item.State.ERRORED, Item.State.EXPIRED)


# --- settings read at call time (tests change them) -------------------------------------


def max_attempts() -> int:
    return max(1, int(settings.CURATION_MAX_ATTEMPTS))


def poll_bounds() -> tuple[float, float]:
    """(first wait, longest wait) between two polls of a running batch."""
    longest = float(settings.CURATION_POLL_SECONDS)
    return min(float(settings.CURATION_POLL_MIN_SECONDS), longest), longest


# --- claiming and releasing -------------------------------------------------------------------


def items_claim(
    *,
    job_id: int,
    item_ids: Iterable[int] | None = None,
    batch_id: int | None = None,
    only_running_job: bool = False,
) -> int:
    """PENDING -> SUBMITTED with one attempt counted, for the items waiting in `batch_id`
    (None: not in a batch, a real-time call) and, when given, only those in `item_ids`.

    `only_running_job` claims nothing once the job is no longer running (a canceled job).
    Returns how many items this call claimed: another worker's claim wins the race.
    """
    qs = Item.objects.filter(job_id=job_id, state=Item.State.PENDING, batch_id=batch_id)
    if item_ids is not None:
        item_ids = list(item_ids)
        qs = qs.filter(id__in=item_ids)
    if only_running_job:
        qs = qs.filter(job__state=Job.State.RUNNING)
    sending = len(item_ids) if item_ids is not None else qs.count()
    if sending and not budget_allows(job_id=job_id, sending=sending):
        items_stop_for_budget(job_id=job_id)
        return 0
    return qs.update(
        state=Item.State.SUBMITTED, attempts=F("attempts") + 1, updated_at=timezone.now()
    )


# --- the budget ---------------------------------------------------------------------------------

BUDGET_REASON = "budget reached"
# (job id, its budget and estimate) -> claims this process may still make before it looks at
# the job's spending again
_allowance: dict[tuple, int] = {}


def budget_allows(*, job_id: int, sending: int) -> bool:
    """Whether `sending` more requests fit the job's budget (Job.max_cost; None: no limit).

    Spent (the items' billed cost) + requests in flight and these, each at the estimate's
    price per item, must stay within the budget. Reading the spending is one aggregate query;
    after a check, half of the requests still fitting are allowed without one, so a job makes
    a few checks, not one per request, and a new look comes before the budget could run out.
    """
    row = Job.objects.filter(id=job_id).values_list("max_cost", "cost_estimate", "created_at")
    row = row.first()
    if row is None or row[0] is None:
        return True
    max_cost, estimate, _ = row
    key = (job_id, *row)
    left = _allowance.get(key, 0)
    if left >= sending:
        _allowance[key] = left - sending
        return True
    seen = Item.objects.filter(job_id=job_id).aggregate(
        spent=Sum("cost"), items=Count("id"),
        flying=Count("id", filter=Q(state=Item.State.SUBMITTED)),
    )  # fmt: skip
    per_item = estimate / max(1, seen["items"])
    room = max_cost - (seen["spent"] or Decimal(0)) - seen["flying"] * per_item
    if room <= 0:
        fits = 0
    else:
        fits = int(room / per_item) if per_item > 0 else sending
    if fits < sending:
        _allowance.pop(key, None)
        return False
    if len(_allowance) > 1000:
        _allowance.clear()
    _allowance[key] = (fits - sending) // 2
    return True


def items_stop_for_budget(*, job_id: int) -> int:
    """The budget is reached: every item not sent yet ends CANCELED "budget reached".

    Items in flight finish as usual; batches prepared but not submitted end FAILED.
    """
    now = timezone.now()
    with transaction.atomic():
        n = Item.objects.filter(
            job_id=job_id, state__in=(Item.State.PENDING, *RETRY_STATES)
        ).update(state=Item.State.CANCELED, error=BUDGET_REASON, finished_at=now, updated_at=now)
        Batch.objects.filter(job_id=job_id, state=Batch.State.PREPARING).update(
            state=Batch.State.FAILED, error=BUDGET_REASON, ended_at=now
        )
        if n:
            job = Job.objects.filter(id=job_id).values("max_cost").first() or {}
            Job.objects.filter(id=job_id, error="").update(
                error=f"{BUDGET_REASON}: stopped before the maximum cost of "
                f"${(job.get('max_cost') or Decimal(0)).normalize():f}; {n} unsent notes canceled"
            )
    if n:
        log.warning("job=%s %s: items=%s not sent, canceled", job_id, BUDGET_REASON, n)
    return n


def items_requeue(*, job: Job) -> int:
    """Errored and expired items (attempts left) go back to pending, out of their old batch."""
    n = Item.objects.filter(job=job, state__in=RETRY_STATES).update(
        state=Item.State.PENDING, batch=None, updated_at=timezone.now()
    )
    if n:
        log.info("job=%s items=%s queued for another attempt", job.id, n)
    return n


def items_cancel(
    *, item_ids: Iterable[int] | None = None, job_id: int | None = None, reason: str = "canceled"
) -> int:
    """Cancel items that have not ended (those in `item_ids`, or every one of `job_id`).

    A running job stops working on them: a parallel call in flight is abandoned, and any
    answer still arriving (real-time or from a batch) is discarded by its conditional update.
    Returns how many items were canceled.
    """
    if item_ids is None and job_id is None:
        raise ValueError("items_cancel needs item_ids or job_id")
    qs = Item.objects.filter(state__in=ACTIVE_ITEM_STATES)
    if item_ids is not None:
        qs = qs.filter(id__in=list(item_ids))
    if job_id is not None:
        qs = qs.filter(job_id=job_id)
    now = timezone.now()
    n = qs.update(state=Item.State.CANCELED, error=reason, finished_at=now, updated_at=now)
    if n:
        log.info("job=%s items=%s canceled", job_id or "-", n)
    return n


def items_fail_uncuratable(*, job: Job) -> int:
    """Items whose note was skipped or went missing since the job was created end as failed
    (an item without a note, a consolidation's, has no note to lose)."""
    now = timezone.now()
    n = (
        Item.objects.filter(job=job, state=Item.State.PENDING, batch=None, note__isnull=False)
        .exclude(note__state=Note.State.OK)
        .update(
            state=Item.State.FAILED,
            error="the note is no longer importable (skipped or missing on disk)",
            finished_at=now,
            updated_at=now,
        )
    )
    if n:
        log.warning("job=%s items=%s failed: note skipped or missing", job.id, n)
    return n


def items_release_orphans(*, job: Job) -> int:
    """Real-time calls no run has in hand any more (its worker died, or it stopped on an
    error) go back for another attempt. Only the holder of the job's lease calls this: while
    it holds the lease, every SUBMITTED item outside a batch is another run's leftover."""
    orphans = Item.objects.filter(job=job, state=Item.State.SUBMITTED, batch=None).only(
        "id", "note_id", "attempts"
    )
    outcome = error_outcome("errored", "the worker stopped during the call")
    return apply_outcomes(job=job, batch_id=None, pairs=[(item, outcome) for item in orphans])


def unsent_wait(*, job: Job) -> float | None:
    """Is anything left outside batches? 0 when items wait to be sent now, the first poll
    delay when a real-time call is in another worker's hands, None when nothing is left."""
    items = Item.objects.filter(job=job)
    if items.filter(state__in=RETRY_STATES).exists() or items.filter(
        state=Item.State.PENDING, batch=None
    ).exists():
        return 0.0
    if items.filter(state=Item.State.SUBMITTED, batch=None).exists():
        return poll_bounds()[0]
    return None


# --- counting -----------------------------------------------------------------------------------


def job_cost(*, job_id: int) -> Decimal:
    total = Item.objects.filter(job_id=job_id).aggregate(s=Sum("cost"))["s"] or Decimal("0")
    return Decimal(total).quantize(MICRO)


def item_counts(*, job_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{job_id: {item state: count}} for many jobs in one aggregate query."""
    result: dict[int, dict[str, int]] = {}
    rows = (
        Item.objects.filter(job_id__in=list(job_ids))
        .values_list("job_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for job_id, state, n in rows:
        result.setdefault(job_id, {})[state] = n
    return result


# --- applying outcomes -----------------------------------------------------------------------


def error_outcome(state: str, error: str) -> client.Outcome:
    return client.Outcome(state=state, answer=None, usage=None, error=error, raw=None)


def _suggestion_values(job: Job, answer) -> list[tuple[str, object]]:
    values = []
    for field in job.fields:
        value = getattr(answer, field, None) if answer is not None else None
        if value is not None:
            values.append((field, value))
    return values


def _outcome_changes(*, job: Job, attempts: int, outcome, batch: bool) -> tuple[str, str, Decimal]:
    """(new item state, error reason, cost) for an outcome: the state machine's one decision."""
    cost = Decimal("0")
    if outcome.usage:
        try:
            cost = pricing.cost(outcome.usage, model=job.model, batch=batch).quantize(MICRO)
        except pricing.UnknownPrice as exc:  # its price was removed after the job was created
            log.error("job=%s cost not recorded: %s", job.id, exc)
    if outcome.state == "succeeded":
        return Item.State.SUCCEEDED, "", cost
    reason = (outcome.error or outcome.state or "no result").strip()
    if outcome.state == "canceled" and job.state == Job.State.CANCELED:
        return Item.State.CANCELED, reason, cost
    if outcome.state == "errored" and reason.startswith("invalid_request_error:"):
        # The API rejected this request itself (reported per request in a batch): sending
        # the same request again cannot mend it.
        return Item.State.FAILED, f"{reason} (rejected by the API: not retried)", cost
    if attempts >= max_attempts():
        return Item.State.FAILED, f"{reason} (gave up after {attempts} attempts)", cost
    if outcome.state == "expired":
        return Item.State.EXPIRED, reason, cost
    return Item.State.ERRORED, reason, cost


class ItemRef(NamedTuple):
    """What applying an outcome needs to know about an item (cheaper than a model instance)."""

    id: int
    note_id: int | None  # None: a consolidation item
    attempts: int


def apply_outcomes(
    *,
    job: Job,
    batch_id: int | None,
    pairs: list[tuple[Item, object]],
    locked: dict[int, Claimed] | None = None,
) -> int:
    """The one place API outcomes become item states and Suggestion rows.

    Each `item` needs id, note_id and attempts (as counted at submission). Only items still
    SUBMITTED in `batch_id` (None: a real-time call) change: they are claimed first (row locks
    on PostgreSQL; SQLite's write lock is taken at BEGIN), so applying the same outcome twice,
    or one for a canceled or moved item, does nothing. Succeeded: one Suggestion per requested
    field (unique per item and field), or for a consolidation job the merges it proposes
    (consolidations_store). Errored/expired: back for another attempt while attempts remain,
    else failed with the reason. Returns how many items changed.

    `locked`: item id -> Claimed for the items the caller has already locked in the current
    transaction (items_lock_submitted, or its own select_for_update with `claimed_columns`)
    and found SUBMITTED in `batch_id`; they are not read again.
    """
    if not pairs:
        return 0
    now = timezone.now()
    prompt_version = prompt.PROMPT_VERSION
    # No savepoint of its own inside a caller's transaction: an error here is that whole
    # transaction's error, and a savepoint costs two more round trips per chunk.
    with transaction.atomic(savepoint=False):
        if locked is None:
            locked = items_lock_submitted(item_ids=[item.id for item, _ in pairs], batch_id=batch_id)
        claimed = set(locked)
        rows, suggestions, merges = [], [], []
        for item, outcome in pairs:
            if item.id not in claimed:
                log.info("job=%s item=%s %s outcome discarded (item no longer waiting for it)",
                         job.id, item.id, outcome.state)  # fmt: skip
                continue
            claimed.discard(item.id)  # a second outcome for the same item in this call: ignored
            state, error, cost = _outcome_changes(
                job=job, attempts=item.attempts, outcome=outcome, batch=batch_id is not None
            )
            rows.append(
                {
                    "state": state,
                    "error": error[:5000],
                    "result": outcome.raw,
                    "usage": outcome.usage or None,
                    "cost": cost,
                    "batch_cost": cost if batch_id is not None else Decimal("0"),
                    "finished_at": now if state in Item.FINAL_STATES else None,
                    "updated_at": now,
                    "id": item.id,
                }
            )
            if state == Item.State.SUCCEEDED and job.is_consolidation:
                merges.extend(outcome.answer or [])
            elif state == Item.State.SUCCEEDED:
                fields = _suggestion_values(job, outcome.answer)
                share = (cost / len(fields)).quantize(MICRO) if fields else Decimal("0")
                suggestions.extend(
                    {
                        "item_id": item.id, "note_id": item.note_id, "job_id": job.id,
                        "field": field, "value": value, "model": job.model,
                        "prompt_version": prompt_version, "cost": share,
                        "note_hash": locked[item.id].note_hash,
                    }  # fmt: skip
                    for field, value in fields
                )
            else:
                log.info("job=%s item=%s %s attempt=%s: %s",
                         job.id, item.id, state, item.attempts, error[:300])  # fmt: skip
        sql.items_record_outcomes(rows)
        if job.is_consolidation:
            consolidations_store(job=job, merges=merges)
            return len(rows)
        # The vault's tag policy: tags outside the vocabulary are dropped or become proposed.
        suggestions, proposed = suggestions_vet(suggestions=suggestions)
        sql.suggestions_insert(suggestions)
        proposed_tags_record(proposed=proposed)
        # Superseded now, when the newer value is stored, so every count (dashboard, queue,
        # job page) is true at once; nothing sweeps later. A note that had no suggestion
        # before these has nothing to supersede (a note's first curation: most of them).
        noted = {s["note_id"] for s in suggestions if locked[s["item_id"]].noted}
        if noted:
            suggestions_supersede(note_ids=sorted(noted))
    return len(rows)


class Claimed(NamedTuple):
    """What apply_outcomes needs of an item it found still waiting, read with its lock."""

    note_hash: str
    noted: bool  # the note had suggestions already (from earlier jobs): supersede them


def claimed_columns(queryset: QuerySet) -> QuerySet:
    """`queryset` of items with the columns Claimed is made of (note_hash, noted)."""
    return queryset.annotate(
        noted=Exists(Suggestion.objects.filter(note_id=OuterRef("note_id")))
    )


def items_lock_submitted(*, item_ids: list[int], batch_id: int | None) -> dict[int, Claimed]:
    """Lock the items (in the caller's transaction) and return id -> Claimed of those still
    SUBMITTED in `batch_id` (None: outside any batch)."""
    # Locked by primary key alone, the state and batch checked here on the locked (latest)
    # rows: with a `state` filter in the query PostgreSQL, whose statistics still say
    # "hardly any item is SUBMITTED" while a job is in flight, reads every SUBMITTED item
    # by the state index instead (EXPLAIN ANALYZE on the database bench/batch_bench.py
    # leaves, 100,000 items in flight: 50 ms a chunk, against 0.1 ms by key).
    rows = claimed_columns(Item.objects.select_for_update().filter(id__in=item_ids))
    return {
        item_id: Claimed(note_hash, noted)
        for item_id, note_hash, noted, state, item_batch in rows.order_by("id").values_list(
            "id", "note_hash", "noted", "state", "batch_id"
        )
        if state == Item.State.SUBMITTED and item_batch == batch_id
    }


def apply_outcome(*, item: Item, outcome, job: Job, batch_id: int | None = None) -> bool:
    """apply_outcomes for one item: True when the item changed."""
    return apply_outcomes(job=job, batch_id=batch_id, pairs=[(item, outcome)]) == 1

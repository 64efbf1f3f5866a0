"""Batch mode: the Message Batches API at half price: prepare, submit, poll, apply, retry.

Per batch: PREPARING (row saved, items assigned) -> SUBMITTING (claimed by a conditional
UPDATE, items SUBMITTED, attempt counted) -> provider call -> IN_PROGRESS (provider id saved)
-> polled with backoff -> ENDED -> results applied by custom_id -> APPLIED. A SUBMITTING batch
without a provider id that a run which stopped left behind is reconciled by the next holder of
the job's lease (jobs.job_recover_orphans): an unknown provider batch created since the attempt
with the same request count is adopted (and its results checked to be ours before any is
applied), otherwise the batch goes back to PREPARING to be sent again.

Refusals (curation.engine.refusals): a create refused (429/529/4xx) goes back to PREPARING and
waits out its retry-after or backoff (every create of the job waits with it); a create with no
answer (timeout, dropped connection, 5xx) waits, then is looked for before being sent again;
refused polls and result downloads are tried again later. None of these uses an item's attempt.
A refusal no retry mends (key, permission, model, request) ends the job at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from itertools import islice

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from curation.api import client, prompt
from curation.engine import refusals, router
from curation.engine.items import (
    Claimed,
    ItemRef,
    apply_outcomes,
    claimed_columns,
    error_outcome,
    items_claim,
    items_fail_uncuratable,
    items_requeue,
    poll_bounds,
    unsent_wait,
)
from curation.engine.requests import RequestBuilder, item_pages
from curation.engine.sync import item_send
from curation.models import Batch, Item, Job

log = logging.getLogger(__name__)

APPLY_CHUNK = 500  # results applied per transaction
# A create that got no answer may still be at work on the server: look for its batch only this
# long after, so a late one is adopted rather than sent (and paid) twice.
UNANSWERED_WAIT = 5.0

ACTIVE_BATCH_STATES = (
    Batch.State.PREPARING,
    Batch.State.SUBMITTING,
    Batch.State.IN_PROGRESS,
    Batch.State.ENDED,
)


def batches_cancel(*, job_id: int, batch_ids: Iterable[int] | None = None) -> int:
    """Ask the provider to cancel the job's running batches (or those in `batch_ids`).

    Each goes IN_PROGRESS -> CANCELING once the provider took the request; polling then brings
    it to its end. A refused request is logged and the batch stays as it was. Returns how many
    cancel requests the provider took.
    """
    batches = Batch.objects.filter(
        job_id=job_id, state=Batch.State.IN_PROGRESS, provider_id__isnull=False
    )
    if batch_ids is not None:
        batches = batches.filter(id__in=list(batch_ids))
    n = 0
    for batch in batches.only("id", "job_id", "provider_id"):
        try:
            client.cancel_batch(batch.provider_id)
        except client.ApiError as exc:
            log.warning("job=%s batch=%s cancel failed: %s", batch.job_id, batch.id, exc)
            continue
        n += Batch.objects.filter(id=batch.id, state=Batch.State.IN_PROGRESS).update(
            state=Batch.State.CANCELING
        )
        log.info("job=%s batch=%s provider=%s cancel requested",
                 batch.job_id, batch.id, batch.provider_id)  # fmt: skip
    return n


def batches_prepare(
    *,
    job: Job,
    builder: RequestBuilder | None = None,
    submit: bool = False,
    deadline: float | None = None,
) -> list[int]:
    """Group the job's pending, unassigned items into PREPARING batches (saved before any call).

    Streams items page by page, builds and sizes each request, and closes a batch at the
    request or byte limit. Each batch takes its items with a conditional UPDATE, so two
    preparers never put one item in two batches. With `submit`, each batch is submitted as
    soon as it is saved, reusing the requests just built (until `deadline`; later batches
    stay PREPARING for the next pass). Returns the new batch ids.
    """
    builder = builder or RequestBuilder(job)
    base = Item.objects.filter(job=job, state=Item.State.PENDING, batch=None)
    ids: list[int] = []
    byte_sizes: list[int] = []
    built: dict[int, tuple[str, dict]] = {}  # the open batch's requests, by position

    def sizes() -> Iterator[int]:
        for page in item_pages(base):
            for item in page:
                params = builder.params(item, item.note)
                size = prompt.request_size(params)
                if submit:
                    built[len(ids)] = (item.custom_id, params)
                ids.append(item.id)
                byte_sizes.append(size)
                yield size

    max_bytes = int(settings.CURATION_BATCH_MAX_BYTES)
    created = []
    for start, stop in router.plan_batches(
        sizes(), max_requests=settings.CURATION_BATCH_SIZE, max_bytes=max_bytes
    ):
        requests = [built.pop(i) for i in range(start, stop)] if submit else None
        with transaction.atomic():
            batch = Batch.objects.create(
                job=job, request_count=stop - start, request_bytes=sum(byte_sizes[start:stop])
            )
            n = base.filter(id__gte=ids[start], id__lte=ids[stop - 1]).update(
                batch=batch, updated_at=timezone.now()
            )
            if n == 0:
                batch.delete()  # another preparer took these items
                continue
            if n != stop - start:
                Batch.objects.filter(id=batch.id).update(request_count=n)
                requests = None  # not the set we built: rebuild from the rows at submit
        created.append(batch.id)
        log.info("job=%s batch=%s prepared requests=%s", job.id, batch.id, n)
        if submit and (deadline is None or time.monotonic() < deadline):
            batch_submit(batch_id=batch.id, builder=builder, requests=requests)
    return created


def _batch_requests(*, batch: Batch, builder: RequestBuilder) -> Iterator[tuple[str, dict]]:
    for page in item_pages(Item.objects.filter(batch=batch, state=Item.State.SUBMITTED)):
        for item in page:
            yield item.custom_id, builder.params(item, item.note)


def batch_submit(
    *,
    batch_id: int,
    builder: RequestBuilder | None = None,
    requests: list[tuple[str, dict]] | None = None,
) -> bool:
    """Claim a PREPARING batch, send it to the provider, record the provider's id.

    Returns True when this call submitted it. A crash after the provider accepted it but
    before its id was saved leaves it SUBMITTING; `batch_reconcile` sorts that out.
    """
    now = timezone.now()
    batch = Batch.objects.select_related("job").get(id=batch_id)
    job = batch.job
    if job.is_final or creates_blocked_until(job=job) is not None:
        return False  # ended, or a refused create of this job is being waited out
    with transaction.atomic():
        if not Batch.objects.filter(
            Q(retry_at__isnull=True) | Q(retry_at__lte=now),
            id=batch_id, state=Batch.State.PREPARING, provider_id=None,
        ).update(state=Batch.State.SUBMITTING, submitted_at=now, retry_at=None):
            return False
        n = items_claim(job_id=job.id, batch_id=batch_id)
        Batch.objects.filter(id=batch_id).update(request_count=n)
    if n == 0:
        Batch.objects.filter(id=batch_id, state=Batch.State.SUBMITTING).update(
            state=Batch.State.APPLIED, ended_at=now, error="no items left to submit"
        )
        return False
    builder = builder or RequestBuilder(job)
    if requests is None or len(requests) != n:
        requests = _batch_requests(batch=batch, builder=builder)
    # What each request offers, kept for checking its answer's `related`. Outside the claim's
    # transaction: a fresh worker builds the vault's index here, which must not hold the write
    # lock. A crash before this update leaves it None, and the results are checked the old way.
    offered = builder.offered(batch)
    if offered is not None:
        Batch.objects.filter(id=batch_id).update(offered=offered)
    try:
        status = client.submit_batch(requests)
    except client.ApiError as exc:
        log.warning("job=%s batch=%s submit failed: %s", job.id, batch_id, exc)
        if refusals.is_fatal(exc):
            refusals.job_fail(job_id=job.id, exc=exc)
            return False
        wait = refusals.wait_for(exc, retry=batch.refusals)
        if refusals.surely_not_created(exc):
            batch_release(batch_id=batch_id, wait=wait, reason=f"create refused: {exc}")
        else:  # maybe made: look for it at the provider after the wait, before sending again
            wait = max(wait, UNANSWERED_WAIT)
            Batch.objects.filter(id=batch_id, state=Batch.State.SUBMITTING).update(
                retry_at=timezone.now() + timedelta(seconds=wait),
                refusals=F("refusals") + 1,
                error=f"create unanswered: {exc}"[:5000],
            )
        return False
    batch_mark_submitted(batch_id=batch_id, provider_id=status.id)
    return True


def creates_blocked_until(*, job: Job):
    """When a refused create of this job may be tried again (None: creates may go now).

    One refusal holds back every create of the job: the limit it hit is the account's.
    """
    return (
        Batch.objects.filter(
            job=job, state__in=[Batch.State.PREPARING, Batch.State.SUBMITTING],
            retry_at__gt=timezone.now(),
        )
        .order_by("-retry_at")
        .values_list("retry_at", flat=True)
        .first()
    )


def batch_release(*, batch_id: int, wait: float, reason: str, counted: bool = True) -> bool:
    """A create that made no batch: SUBMITTING -> PREPARING, tried again after `wait` seconds.

    Its items go back to PENDING in the same batch with their attempt given back: a refusal
    of the call is not the item's result. Returns False when the batch was not SUBMITTING.
    """
    now = timezone.now()
    with transaction.atomic():
        if not Batch.objects.filter(
            id=batch_id, state=Batch.State.SUBMITTING, provider_id=None
        ).update(
            state=Batch.State.PREPARING,
            submitted_at=None,
            retry_at=now + timedelta(seconds=wait),
            refusals=F("refusals") + (1 if counted else 0),
            error=reason[:5000],
        ):
            return False
        n = Item.objects.filter(batch_id=batch_id, state=Item.State.SUBMITTED).update(
            state=Item.State.PENDING, attempts=F("attempts") - 1, updated_at=now
        )
    log.info("job batch=%s items=%s: %s; again in %.1fs (no attempt used)",
             batch_id, n, reason, wait)  # fmt: skip
    return True


def batch_mark_submitted(*, batch_id: int, provider_id: str) -> bool:
    """Record the provider's id: SUBMITTING -> IN_PROGRESS (the step a crash may skip)."""
    first, _ = poll_bounds()
    now = timezone.now()
    try:
        with transaction.atomic():
            n = Batch.objects.filter(
                id=batch_id, state=Batch.State.SUBMITTING, provider_id=None
            ).update(
                provider_id=provider_id,
                state=Batch.State.IN_PROGRESS,
                poll_interval=first,
                next_poll_at=now + timedelta(seconds=first),
                error="",
                retry_at=None,
                refusals=0,
            )
    except IntegrityError:
        n = 0
    batch = Batch.objects.select_related("job").get(id=batch_id)
    if n != 1:
        if batch.provider_id != provider_id:
            # Reconciled or failed meanwhile: nobody will read this provider batch.
            log.warning(
                "job=%s batch=%s provider=%s not recorded (state=%s); canceling it",
                batch.job_id, batch_id, provider_id, batch.state,
            )
            try:
                client.cancel_batch(provider_id)
            except client.ApiError as exc:
                log.warning("job=%s batch=%s cancel failed: %s", batch.job_id, batch_id, exc)
        return False
    log.info("job=%s batch=%s provider=%s submitted requests=%s",
             batch.job_id, batch_id, provider_id, batch.request_count)  # fmt: skip
    if batch.job.state == Job.State.CANCELED:
        batches_cancel(job_id=batch.job_id, batch_ids=[batch_id])
    return True


def _request_total(status) -> int:
    counts = getattr(status, "request_counts", None) or {}
    return sum(int(v or 0) for v in counts.values())


def batch_reconcile(*, batch_id: int, stale_after: float = 0, reason: str = "") -> bool:
    """Settle a SUBMITTING batch whose provider id was never saved (the worker died or errored).

    Called by the submitting run itself when the create failed or got no answer, or by the run
    that holds the job's lease after another stopped; `stale_after` leaves alone an attempt
    younger than that.

    Adopts an unknown provider batch created since the attempt with the same request count
    (marked `adopted`: before any of its results is applied, every result's custom_id must be
    one of this batch's items, else the adoption is undone: batch_apply_results); otherwise the
    batch goes back to PREPARING to be sent again, its items' attempts given back. Returns
    True when a provider batch was adopted.
    """
    batch = Batch.objects.select_related("job").get(id=batch_id)
    if batch.state != Batch.State.SUBMITTING or batch.provider_id:
        return False
    now = timezone.now()
    if batch.submitted_at and batch.submitted_at > now - timedelta(seconds=stale_after):
        return False  # a live task may still be submitting it
    since = (batch.submitted_at or batch.created_at) - timedelta(seconds=60)  # clock skew
    try:
        listed = list(client.list_batches(since=since))
    except client.ApiError as exc:
        log.warning("job=%s batch=%s cannot list provider batches: %s", batch.job_id, batch_id, exc)
        if refusals.is_fatal(exc):
            refusals.job_fail(job_id=batch.job_id, exc=exc)
        else:  # look again after a wait
            Batch.objects.filter(id=batch_id, state=Batch.State.SUBMITTING).update(
                retry_at=now + timedelta(seconds=refusals.wait_for(exc, retry=batch.refusals)),
                refusals=F("refusals") + 1,
            )
        return False
    known = set(
        Batch.objects.filter(provider_id__in=[s.id for s in listed]).values_list(
            "provider_id", flat=True
        )
    )
    first, _ = poll_bounds()
    for status in listed:
        if status.id in known or _request_total(status) != batch.request_count:
            continue
        try:
            with transaction.atomic():
                n = Batch.objects.filter(
                    id=batch_id, state=Batch.State.SUBMITTING, provider_id=None
                ).update(
                    provider_id=status.id,
                    state=Batch.State.IN_PROGRESS,
                    poll_interval=first,
                    next_poll_at=now,
                    error="",
                    retry_at=None,
                    adopted=True,  # its results are checked as ours before any is applied
                )
        except IntegrityError:  # another batch adopted it at the same moment
            continue
        if n == 1:
            log.warning("job=%s batch=%s adopted provider=%s after an unconfirmed submit",
                        batch.job_id, batch_id, status.id)  # fmt: skip
            return True
        return False
    reason = reason or "submission was never confirmed"
    # Never made: send it again (the lost call was not the items' result: no attempt used).
    if batch_release(batch_id=batch_id, wait=0, reason=f"not found at the provider: {reason}",
                     counted=False):
        log.warning("job=%s batch=%s not found at the provider: to be sent again (%s)",
                    batch.job_id, batch_id, reason)  # fmt: skip
    return False


def batch_poll(*, batch_id: int, builder: RequestBuilder | None = None) -> str:
    """Poll one submitted batch; when it has ended, apply its results. Returns its state."""
    batch = Batch.objects.select_related("job").get(id=batch_id)
    if batch.state in (Batch.State.IN_PROGRESS, Batch.State.CANCELING):
        first, longest = poll_bounds()
        now = timezone.now()
        try:
            status = client.get_batch(batch.provider_id)
        except client.ApiError as exc:
            log.warning("job=%s batch=%s poll failed: %s", batch.job_id, batch_id, exc)
            if refusals.is_fatal(exc):
                refusals.job_fail(job_id=batch.job_id, exc=exc)
                return Batch.objects.get(id=batch_id).state
            interval = min(max(batch.poll_interval, first) * 2, longest)
            asked = refusals.retry_after(exc.headers or {})
            wait = max(interval, asked) if asked is not None else interval
            Batch.objects.filter(id=batch_id).update(
                poll_interval=interval, next_poll_at=now + timedelta(seconds=wait)
            )
            return batch.state
        counts = dict(getattr(status, "request_counts", None) or {})
        if status.processing_status != "ended":
            interval = min(max(batch.poll_interval, first) * 1.5, longest)
            Batch.objects.filter(id=batch_id, state=batch.state).update(
                request_counts=counts,
                poll_interval=interval,
                next_poll_at=now + timedelta(seconds=interval),
            )
            log.debug("job=%s batch=%s polled %s next in %.1fs",
                      batch.job_id, batch_id, counts, interval)  # fmt: skip
            return batch.state
        Batch.objects.filter(id=batch_id, state=batch.state).update(
            state=Batch.State.ENDED, request_counts=counts, ended_at=now
        )
        log.info("job=%s batch=%s ended %s", batch.job_id, batch_id, counts)
        batch.refresh_from_db()
    if batch.state == Batch.State.ENDED:
        try:
            batch_apply_results(batch_id=batch_id, builder=builder)
        except client.ApiError as exc:
            results_refused(batch=batch, exc=exc)
        batch.refresh_from_db()
    return batch.state


def results_refused(*, batch: Batch, exc: client.ApiError) -> None:
    """Reading an ended batch's results failed: wait and read again, or give up on them.

    Results applied before the failure stay (applying one twice changes nothing).
    """
    log.warning("job=%s batch=%s results failed: %s", batch.job_id, batch.id, exc)
    if exc.status == 404:  # past the retention period: the items must be sent again
        batch_results_gone(batch_id=batch.id, reason=f"results no longer available: {exc}")
    elif refusals.is_fatal(exc):
        refusals.job_fail(job_id=batch.job_id, exc=exc)
    else:
        wait = refusals.wait_for(exc, retry=batch.refusals)
        Batch.objects.filter(id=batch.id, state=Batch.State.ENDED).update(
            next_poll_at=timezone.now() + timedelta(seconds=wait),
            refusals=F("refusals") + 1,
            error=f"results refused: {exc}"[:5000],
        )


def batch_results_gone(*, batch_id: int, reason: str) -> int:
    """An ended batch whose results cannot be had: APPLIED, its waiting items sent again
    with their attempt given back (losing the results was not the items' doing)."""
    now = timezone.now()
    with transaction.atomic():
        if not Batch.objects.filter(
            id=batch_id, state__in=[Batch.State.ENDED, Batch.State.IN_PROGRESS]
        ).update(state=Batch.State.APPLIED, error=reason[:5000], ended_at=now):
            return 0
        n = Item.objects.filter(batch_id=batch_id, state=Item.State.SUBMITTED).update(
            state=Item.State.PENDING, batch=None, attempts=F("attempts") - 1, updated_at=now
        )
    log.warning("job batch=%s: %s; items=%s sent again", batch_id, reason, n)
    return n


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def batch_apply_results(*, batch_id: int, builder: RequestBuilder | None = None) -> int:
    """Stream an ended batch's results onto its items, a chunk per transaction (the last one
    with the batch's end).

    Each result is matched by custom_id -> Item row (never by position); a result whose id
    is unknown, or belongs to an item no longer waiting in this batch, is logged and ignored.
    Items that got no result are sent back for another attempt. Returns results applied.
    """
    batch = Batch.objects.select_related("job").get(id=batch_id)
    job = batch.job
    fields = list(job.fields)
    applied = 0
    if batch.adopted and not adopted_batch_is_ours(batch=batch):
        return 0
    fatal = None  # an errored result no retry mends (the key, the model): ends the job
    builder = builder or RequestBuilder(job)
    results = client.iter_results(
        batch.provider_id,
        fields_for=lambda custom_id: fields,
        candidates_for=builder.candidates_lookup(batch),
        tags_for=builder.tags_lookup(batch),
    )

    def apply_chunk(chunk) -> int:
        nonlocal fatal
        # The chunk's items found by custom_id (its unique index) and locked in the same
        # statement, so apply_outcomes does not read them again (one query less per chunk).
        with transaction.atomic(savepoint=False):
            rows = (
                claimed_columns(
                    Item.objects.select_for_update().filter(
                        custom_id__in=[custom_id for custom_id, _ in chunk]
                    )
                )
                .order_by("id")
                .values_list(
                    "custom_id", "id", "note_id", "job_id", "batch_id", "attempts", "state",
                    "note_hash", "noted",
                )
            )  # fmt: skip
            items = {row[0]: row[1:] for row in rows}
            pairs, locked = [], {}
            for custom_id, outcome in chunk:
                found = items.get(custom_id)
                if found is None or found[2] != job.id:
                    log.warning("job=%s batch=%s result for unknown custom_id=%r ignored",
                                job.id, batch_id, custom_id)  # fmt: skip
                    continue
                item_id, note_id, _, item_batch, attempts, state, note_hash, noted = found
                if item_batch != batch.id or state != Item.State.SUBMITTED:
                    log.info("job=%s batch=%s item=%s late result ignored (state=%s)",
                             job.id, batch_id, item_id, state)  # fmt: skip
                else:
                    pairs.append((ItemRef(item_id, note_id, attempts), outcome))
                    locked[item_id] = Claimed(note_hash, noted)
                    if fatal is None and outcome.state == "errored":
                        fatal = refusals.fatal_result(outcome.error)
            return apply_outcomes(job=job, batch_id=batch.id, pairs=pairs, locked=locked)

    # Each chunk is read from the stream before the one before it is applied, so the last
    # chunk and the batch's end (APPLIED, items without a result sent back) are one
    # transaction: one commit less per batch, and no transaction waits on the network.
    chunks = _chunks(results, APPLY_CHUNK)
    chunk = next(chunks, None)
    if chunk is None:  # no result at all
        with transaction.atomic():
            _batch_end(job=job, batch_id=batch_id)
    while chunk is not None:
        following = next(chunks, None)
        if following is not None:
            applied += apply_chunk(chunk)
        else:
            with transaction.atomic():
                applied += apply_chunk(chunk)
                # Every item the batch was sent with has its result: none is left to send back.
                _batch_end(job=job, batch_id=batch_id, complete=applied == batch.request_count)
        chunk = following
    log.info("job=%s batch=%s results applied=%s", job.id, batch_id, applied)
    if fatal is not None:
        refusals.job_fail(job_id=job.id, exc=fatal)
    return applied


def _batch_end(*, job: Job, batch_id: int, complete: bool = False) -> None:
    """An ENDED batch whose results are applied: APPLIED, and its items that got no result go
    back for another attempt (`complete`: the caller applied a result to every item the batch
    was sent with, so none is looked for). Call it in a transaction; a second call changes
    nothing."""
    if (
        Batch.objects.filter(id=batch_id, state=Batch.State.ENDED).update(
            state=Batch.State.APPLIED
        )
        and not complete
    ):
        lost = error_outcome("errored", "the batch returned no result for it")
        # The batch's items by the batch index, their state checked here: with a `state`
        # filter PostgreSQL may read every SUBMITTED item of every batch (items_lock_submitted).
        rows = Item.objects.filter(batch_id=batch_id).values_list(
            "id", "note_id", "attempts", "state"
        )
        apply_outcomes(
            job=job,
            batch_id=batch_id,
            pairs=[
                (ItemRef(item_id, note_id, attempts), lost)
                for item_id, note_id, attempts, state in rows
                if state == Item.State.SUBMITTED
            ],
        )


def adopted_batch_is_ours(*, batch: Batch) -> bool:
    """Every result of an adopted provider batch must be for one of this batch's items.

    Another deployment sharing the workspace may have made a batch with as many requests at
    the same time; its custom_ids carry another install prefix (jobs.custom_id_for), so one
    foreign id is proof. Then nothing is applied: the batch is FAILED and its items are sent
    again, their attempt given back. Reads the results once more only for adopted batches.
    """
    mine = set(Item.objects.filter(batch=batch).values_list("custom_id", flat=True))
    seen = foreign = 0
    for custom_id, _ in client.iter_results(
        batch.provider_id, fields_for=lambda custom_id: None, candidates_for=lambda c: None
    ):
        seen += 1
        foreign += custom_id not in mine
    if not foreign and seen <= len(mine):
        Batch.objects.filter(id=batch.id).update(adopted=False)  # checked: ours
        return True
    now = timezone.now()
    reason = (f"adopted provider batch {batch.provider_id} was not ours "
              f"({foreign} of {seen} results for other custom_ids): sent again")
    with transaction.atomic():
        Batch.objects.filter(id=batch.id, state=Batch.State.ENDED).update(
            state=Batch.State.FAILED, error=reason, ended_at=now
        )
        n = Item.objects.filter(batch=batch, state=Item.State.SUBMITTED).update(
            state=Item.State.PENDING, batch=None, attempts=F("attempts") - 1, updated_at=now
        )
    log.error("job=%s batch=%s %s (items=%s)", batch.job_id, batch.id, reason, n)
    return False


def batch_run(*, job: Job, deadline: float | None = None) -> float | None:
    """Batch mode: one pass of prepare, submit, poll, apply, retry."""
    if job.state == Job.State.CANCELED:
        return None
    # Creates that got no answer (timeout, dropped connection): look for them once their wait
    # is over, then adopt or send again.
    for batch_id in Batch.objects.filter(
        job=job, state=Batch.State.SUBMITTING, provider_id=None, retry_at__lte=timezone.now()
    ).values_list("id", flat=True):
        batch_reconcile(batch_id=batch_id, stale_after=0)
    if Job.objects.filter(id=job.id, state=Job.State.FAILED).exists():
        return None

    items_requeue(job=job)
    items_fail_uncuratable(job=job)
    builder = None
    pending = Item.objects.filter(job=job, state=Item.State.PENDING, batch=None)
    if pending.exists():
        builder = RequestBuilder(job)
        retry_one = pending.count() == 1 and job.batches.exists()
        if retry_one:
            # A single retry goes out as one real-time call rather than a batch of one.
            item = pending.select_related("note").first()
            if item is not None:
                item_send(item=item, job=job, builder=builder)
        else:
            batches_prepare(job=job, builder=builder, submit=True, deadline=deadline)

    for batch_id in Batch.objects.filter(job=job, state=Batch.State.PREPARING).values_list(
        "id", flat=True
    ):
        if deadline is not None and time.monotonic() >= deadline:
            return 0.0
        builder = builder or RequestBuilder(job)
        batch_submit(batch_id=batch_id, builder=builder)

    now = timezone.now()
    for batch in Batch.objects.filter(
        job=job, state__in=[Batch.State.IN_PROGRESS, Batch.State.CANCELING, Batch.State.ENDED]
    ).only("id", "state", "next_poll_at"):
        if deadline is not None and time.monotonic() >= deadline:
            return 0.0
        if batch.next_poll_at and batch.next_poll_at > now and (
            batch.state != Batch.State.ENDED or batch.refusals
        ):
            continue  # not due yet (an ENDED batch waits only after its results were refused)
        builder = builder or RequestBuilder(job)
        batch_poll(batch_id=batch.id, builder=builder)

    unsent = unsent_wait(job=job)
    if unsent == 0.0:
        return 0.0
    waiting = Batch.objects.filter(job=job, state__in=ACTIVE_BATCH_STATES)
    if not waiting.exists():
        return unsent  # a real-time retry may be in another worker's hands
    first, _ = poll_bounds()
    due = []
    blocked = creates_blocked_until(job=job)
    for b in waiting.only("state", "next_poll_at", "retry_at", "refusals"):
        if b.state in (Batch.State.IN_PROGRESS, Batch.State.CANCELING):
            due.append(b.next_poll_at)
        elif b.retry_at is not None:
            due.append(b.retry_at)  # a refused or unanswered create, waiting
        elif b.state == Batch.State.ENDED and b.refusals and b.next_poll_at:
            due.append(b.next_poll_at)  # results refused, waiting
        elif b.state == Batch.State.PREPARING and blocked is not None:
            due.append(blocked)  # held back by another batch's refused create
        else:
            return first  # a batch is being prepared or submitted elsewhere
    if Job.objects.filter(id=job.id).exclude(state=Job.State.RUNNING).exists():
        return None  # ended meanwhile (a fatal refusal)
    soonest = min((d for d in due if d is not None), default=timezone.now())
    return max(0.0, (soonest - timezone.now()).total_seconds())

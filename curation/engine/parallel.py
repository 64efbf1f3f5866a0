"""Parallel mode: concurrent real-time calls, bounded, rate-limit aware, saved item by item.

    parallel_run(job=, deadline=)   the runner of `parallel` jobs (jobs.RUNNERS)
    job_hedge(job_id=)              switch a running batch job to parallel for what is unfinished
    batch_run_hedged(job=, ...)     the runner of `batch` jobs: batch_run, hedged when it is late

The network runs on an asyncio loop: one AsyncAnthropic client (the SDK's own retries off)
and CURATION_CONCURRENCY workers, each with at most one call in flight, paced by a
RateLimiter that reads the answers' rate-limit headers. Every database access is a short
synchronous function run through `sync_to_async`, which `async_to_sync` executes back on the
calling thread, so Django's one-connection-per-thread rule holds and a test's transaction
sees it all. Saving one item and claiming a worker's next one share one such trip.

An item is claimed (PENDING -> SUBMITTED, one attempt counted) just before its call and its
outcome is applied through `items.apply_outcome` the moment it comes back, so a crash loses at
most the calls in flight and a restart picks up only unfinished items. Every transition is a
conditional UPDATE: the answer for an item canceled meanwhile, or moved by a hedge, changes
nothing, and the unique (item, field) constraint keeps one suggestion per field.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from curation.api import client
from curation.engine import items, refusals
from curation.engine.batch import batch_poll, batch_run, batches_cancel
from curation.engine.refusals import MAX_WAIT, backoff, retry_after  # noqa: F401 - re-exported
from curation.engine.requests import RequestBuilder
from curation.models import Batch, Item, Job, Mode

log = logging.getLogger(__name__)

PAGE_PER_SLOT = 4  # items read per query: this many per concurrency slot
CHECK_SECONDS = 0.2  # how often a run looks for canceled items and a canceled job
COST_SECONDS = 1.0  # how often the job's cost so far is written to the job row
TOKEN_KINDS = ("tokens", "input-tokens", "output-tokens")


def concurrency() -> int:
    return max(1, int(settings.CURATION_CONCURRENCY))


def transient_retries() -> int:
    return max(0, int(settings.CURATION_PARALLEL_RETRIES))


def hedge_after_seconds() -> float:
    """A batch job still running this long after it started goes parallel (0: only by hand)."""
    return max(0.0, float(settings.CURATION_HEDGE_AFTER_SECONDS or 0))


# --- rate limits --------------------------------------------------------------------------------


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


class RateLimiter:
    """Paces calls by the `anthropic-ratelimit-*` headers of the answers, before the limit.

    Room is what the latest answer said remains minus the calls still in flight (some of
    which that answer may already have counted: the estimate errs on the safe side). With no
    room left it waits for an answer in flight, or, with nothing in flight, until the reported
    reset; then it sends one probe call to learn the new room. The first calls go out before
    any answer (the concurrency bounds them; the API's smallest limits are well above it). A
    server that sends no limits is not paced. A 429 blocks every call until its retry-after.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.clock = clock
        self.wall = wall
        self.in_flight = 0
        self.limited: bool | None = False  # None: probing, one call until the next answer
        self.left: dict[str, int] = {}  # "requests" / token kind -> remaining, as last answered
        self.reset: dict[str, float] = {}  # same keys -> clock time of the reported reset
        self.per_call: dict[str, float] = {}  # token kind -> tokens one call uses (average)
        self.blocked_until = 0.0
        self._wake: asyncio.Event | None = None
        self._held: set[int] = set()  # tokens of calls counted in flight
        self._seq = 0

    # decisions (plain, testable without a loop)

    def room(self) -> int:
        """Calls that may start now according to the limits last seen."""
        rooms = []
        if "requests" in self.left:
            rooms.append(self.left["requests"] - self.in_flight)
        for kind in TOKEN_KINDS:
            per_call = self.per_call.get(kind, 0)
            if kind in self.left and per_call > 0:
                rooms.append(int(self.left[kind] // per_call) - self.in_flight)
        return min(rooms) if rooms else 1_000_000

    def delay(self) -> float | None:
        """0: a call may start now; > 0: wait that long first; None: wait for an answer."""
        now = self.clock()
        if now < self.blocked_until:
            return self.blocked_until - now
        if self.limited is None:
            return 0.0 if self.in_flight == 0 else None
        if not self.limited or self.room() > 0:
            return 0.0
        if self.in_flight:
            return None  # its answer will say how much is left
        exhausted = [k for k in self.left if self._short(k)]
        reset = max((self.reset.get(k, now) for k in exhausted), default=now)
        if reset > now:
            return min(reset - now, MAX_WAIT)
        self.limited = None  # past the reset with nothing in flight: probe with one call
        self.left.clear()
        return 0.0

    def _short(self, kind: str) -> bool:
        if kind == "requests":
            return self.left[kind] - self.in_flight <= 0
        per_call = self.per_call.get(kind, 0)
        return per_call > 0 and self.left[kind] // per_call - self.in_flight <= 0

    def observe(self, headers: dict, *, usage: dict | None = None) -> None:
        """Learn from one answer's headers (and its token usage)."""
        if usage:
            used = {
                "input-tokens": int(usage.get("input_tokens") or 0)
                + int(usage.get("cache_creation_input_tokens") or 0),
                "output-tokens": int(usage.get("output_tokens") or 0),
            }
            used["tokens"] = used["input-tokens"] + used["output-tokens"]
            for kind, n in used.items():
                old = self.per_call.get(kind)
                self.per_call[kind] = n if old is None else 0.8 * old + 0.2 * n
        seen = False
        now, wall = self.clock(), self.wall()
        for kind in ("requests", *TOKEN_KINDS):
            remaining = headers.get(f"anthropic-ratelimit-{kind}-remaining")
            if remaining is None:
                continue
            try:
                remaining = int(float(remaining))
            except ValueError:
                continue
            seen = True
            epoch = _epoch(headers.get(f"anthropic-ratelimit-{kind}-reset", ""))
            reset = now + max(0.0, epoch - wall) if epoch is not None else now
            # Answers can arrive out of order: an answer for the same or an earlier reset than
            # the one known is not newer news, so it may only lower the count.
            known = self.reset.get(kind)
            if kind in self.left and known is not None and reset < known + 0.001:
                remaining = min(remaining, self.left[kind])
                reset = max(reset, known)
            self.left[kind] = remaining
            self.reset[kind] = reset
        if seen:
            self.limited = True
        elif self.limited is None:
            self.limited = False

    def block(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, self.clock() + min(seconds, MAX_WAIT))

    # the loop side

    def try_acquire(self) -> int | None:
        """Count a call in flight if it may start now: its token, else None."""
        if self.delay() != 0:
            return None
        self.in_flight += 1
        self._seq += 1
        self._held.add(self._seq)
        return self._seq

    async def acquire(self) -> int:
        """Wait until a call may start, count it in flight, and return its token."""
        while True:
            token = self.try_acquire()
            if token is not None:
                return token
            wait = self.delay()
            if self._wake is None:
                self._wake = asyncio.Event()
            wake = self._wake
            try:
                await asyncio.wait_for(wake.wait(), timeout=MAX_WAIT if wait is None else wait)
            except TimeoutError:
                pass

    def release(
        self, headers: dict | None = None, *, usage: dict | None = None, token: int | None = None
    ) -> None:
        """A call ended (answered, failed, or never sent when headers is None).

        With its token, releasing twice counts once (a canceled call may never have started).
        """
        if token is not None:
            if token not in self._held:
                return
            self._held.discard(token)
        self.in_flight = max(0, self.in_flight - 1)
        if headers is not None:
            self.observe(headers, usage=usage)
        if self._wake is not None:
            self._wake.set()
            self._wake = None


# --- one run of a job ----------------------------------------------------------------------


db = sync_to_async  # thread_sensitive: runs on the thread that called async_to_sync


class ParallelRun:
    """One pass over a parallel job's unfinished items (see the module docstring)."""

    def __init__(self, *, job: Job, deadline: float | None):
        self.job = job
        self.deadline = deadline
        self.limit = concurrency()
        self.limiter = RateLimiter()
        self.queue: list[int] = []  # item ids read, not yet taken by a worker
        self.calls_in_flight: dict[int, asyncio.Task] = {}  # item id -> its call
        self.refill = asyncio.Lock()
        self.item_saved = asyncio.Event()
        self.claimed: set[int] = set()  # claimed by this run and not yet applied
        self.stopped = ""  # why the run stops early: "canceled", "deadline" or "crash"
        self.failure: BaseException | None = None
        self.setup_error: client.ApiError | None = None
        self.fatal: client.ApiError | None = None  # a refusal no retry mends (refusals.py)
        self.builder: RequestBuilder | None = None
        self.page: dict[int, Item] = {}  # items read by next_items, with their notes
        self.calls = 0

    # database side (synchronous, each run through `db`)

    def setup(self) -> None:
        self.builder = RequestBuilder(self.job)

    def next_items(self, limit: int, in_flight: list[int]) -> list[int]:
        """Ids of items to send (unfinished, or errored with attempts left), read with notes."""
        items.items_requeue(job=self.job)
        page = list(
            Item.objects.filter(job_id=self.job.id, state=Item.State.PENDING, batch=None)
            .exclude(id__in=in_flight)
            .select_related("note")
            .order_by("id")[:limit]
        )
        self.page.update((item.id, item) for item in page)
        return [item.id for item in page]

    def claim(self, item_id: int) -> tuple[Item, dict, dict] | None:
        """PENDING -> SUBMITTED (an attempt counted) while the job still runs; then the request."""
        if self.stopped:
            return None  # stopping (a crash elsewhere, the deadline): claim nothing more
        n = items.items_claim(job_id=self.job.id, item_ids=[item_id], only_running_job=True)
        item = self.page.pop(item_id, None)
        if n != 1:
            return None  # canceled, or another worker took it
        self.claimed.add(item_id)
        if item is None:
            item = Item.objects.select_related("note").get(id=item_id)
        else:
            item.attempts += 1
        params, reading = self.builder.request(item)
        return item, params, reading

    def finish(self, item: Item, outcome: client.Outcome) -> bool:
        """Save an outcome: item state and suggestions in one transaction (apply_outcome)."""
        applied = items.apply_outcome(item=item, outcome=outcome, job=self.job, batch_id=None)
        self.claimed.discard(item.id)
        return applied

    def finish_and_claim(
        self, item: Item, outcome: client.Outcome, item_id: int
    ) -> tuple[Item, dict, dict] | None:
        """Save one item's outcome and claim the next one in the same trip."""
        self.finish(item, outcome)
        return self.claim(item_id)

    def check(self, in_flight: list[int]) -> tuple[bool, set[int]]:
        """(job canceled?, ids of the items in flight that were canceled)."""
        canceled = Job.objects.filter(id=self.job.id, state=Job.State.CANCELED).exists()
        gone = set(
            Item.objects.filter(id__in=in_flight, state=Item.State.CANCELED).values_list(
                "id", flat=True
            )
        ) if in_flight else set()  # fmt: skip
        return canceled, gone

    def save_cost(self) -> None:
        Job.objects.filter(id=self.job.id, state=Job.State.RUNNING).update(
            cost=items.job_cost(job_id=self.job.id)
        )

    def release_claimed(self, reason: str) -> None:
        """Items whose call was cut short go back for another attempt (or fail, out of tries)."""
        for item in Item.objects.filter(
            id__in=list(self.claimed), state=Item.State.SUBMITTED, batch=None
        ).only("id", "note_id", "attempts"):
            items.apply_outcome(
                item=item, outcome=items.error_outcome("errored", reason), job=self.job
            )
        self.claimed.clear()

    # network side

    async def main(self) -> None:
        await db(self.setup)()
        try:
            api = client.async_client(max_retries=0)
        except client.ApiError as exc:  # no key configured: the job ends with the reason
            api, self.setup_error = None, exc
            self.fatal, self.stopped = exc, "fatal"
        watcher = asyncio.create_task(self.watch())
        workers = [asyncio.create_task(self.worker(api)) for _ in range(self.limit)]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None and self.failure is None:
                    self.failure = task.exception()
                    self.stopped = "crash"
                    log.error("job=%s parallel run stopped: %s", self.job.id,
                              type(self.failure).__name__)  # fmt: skip
        finally:
            watcher.cancel()
            for task in workers:
                task.cancel()
            await asyncio.gather(watcher, *workers, return_exceptions=True)
            if api is not None:
                await api.close()
            if self.claimed:
                why = self.stopped or "error"
                await db(self.release_claimed)(f"the run stopped during the call ({why})")
        if self.failure is not None:
            raise self.failure

    def take_now(self) -> int | None:
        """The next item id already read, unless the run is stopping."""
        if not self.stopped and self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped = "deadline"  # the calls in flight end and are saved; no new ones
        if self.stopped or not self.queue:
            return None
        return self.queue.pop(0)

    async def take(self) -> int | None:
        """The next item id to send, reading a page when needed; None when nothing is left."""
        while True:
            item_id = self.take_now()
            if item_id is not None or self.stopped:
                return item_id
            async with self.refill:
                if self.queue:
                    continue
                ids = await db(self.next_items)(
                    self.limit * PAGE_PER_SLOT, list(self.calls_in_flight)
                )
                if ids:
                    self.queue.extend(ids)
                    continue
                if not self.calls_in_flight:
                    return None  # nothing pending and nothing that could come back errored
                await self.item_saved.wait()  # an item in flight may come back to be retried
                self.item_saved.clear()

    def saved(self) -> None:
        self.item_saved.set()

    async def worker(self, api) -> None:
        """One concurrency slot: claim, call, save, again. Saving one item and claiming the
        next are one trip to the database when the next can start at once."""
        done: tuple[Item, client.Outcome] | None = None
        while True:
            if done is not None:
                item_id = self.take_now()
                token = self.limiter.try_acquire() if item_id is not None else None
                if token is not None:
                    try:
                        claimed = await db(self.finish_and_claim)(*done, item_id)
                    except BaseException:
                        self.limiter.release(token=token)
                        raise
                    done = None
                    self.saved()
                else:
                    if item_id is not None:
                        self.queue.insert(0, item_id)
                    await db(self.finish)(*done)
                    done = None
                    self.saved()
                    continue
            else:
                item_id = await self.take()
                if item_id is None:
                    return
                token = await self.limiter.acquire()
                try:
                    claimed = await db(self.claim)(item_id)
                except BaseException:
                    self.limiter.release(token=token)
                    raise
            if claimed is None:
                self.limiter.release(token=token)
                continue
            item, params, reading = claimed
            call = asyncio.create_task(self.call(api, params, reading, token=token))
            self.calls_in_flight[item.id] = call
            try:
                outcome = await call
            except asyncio.CancelledError:
                self.limiter.release(token=token)  # if the call never started
                if asyncio.current_task().cancelling():
                    raise  # the run itself stops
                log.info("job=%s item=%s canceled while in flight", self.job.id, item.id)
                self.saved()
                continue  # the item was canceled: its call is abandoned, nothing to save
            finally:
                self.calls_in_flight.pop(item.id, None)
            done = (item, outcome)

    async def watch(self) -> None:
        """Notice a canceled job or canceled items promptly; keep the cost so far current."""
        last_cost = time.monotonic()
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            canceled, gone = await db(self.check)(list(self.calls_in_flight))
            if canceled:
                self.stopped = "canceled"
                for call in list(self.calls_in_flight.values()):
                    call.cancel()
                self.saved()
                return
            for item_id in gone:
                call = self.calls_in_flight.get(item_id)
                if call is not None:
                    call.cancel()
            if time.monotonic() - last_cost >= COST_SECONDS:
                last_cost = time.monotonic()
                await db(self.save_cost)()

    async def call(
        self, api, params: dict, reading: dict, *, token: int | None
    ) -> client.Outcome:
        """One attempt: the API call, retried on 429/529/5xx/timeouts (a bounded number).

        `reading`: how the answer is read (RequestBuilder.request).
        """
        if self.setup_error is not None:
            self.limiter.release(token=token)
            return items.error_outcome("errored", str(self.setup_error))
        retries = transient_retries()
        for retry in range(retries + 1):
            if token is None:
                token = await self.limiter.acquire()
            self.calls += 1
            try:
                outcome, headers = await client.send_one_async_with_headers(
                    api, params, **reading
                )
            except client.ApiError as exc:
                self.limiter.release(exc.headers, token=token)
                token = None
                if refusals.is_fatal(exc):  # the key, the model, the request: stop everything
                    self.fatal = self.fatal or exc
                    self.stopped = "fatal"
                    return items.error_outcome("errored", exc.detail)
                if not exc.retryable or retry == retries:
                    suffix = f" (after {retry + 1} calls)" if retry else ""
                    return items.error_outcome("errored", f"{exc.detail}{suffix}")
                wait = retry_after(exc.headers)
                if exc.status == 429:
                    wait = wait if wait is not None else backoff(retry)
                    self.limiter.block(wait)  # every call waits, not just this one
                elif wait is None:
                    wait = backoff(retry)
                log.info("job=%s %s; retry in %.2fs", self.job.id, exc, wait)
                await asyncio.sleep(wait)
                continue
            except BaseException:
                self.limiter.release(token=token)
                raise
            self.limiter.release(headers, usage=outcome.usage, token=token)
            return outcome
        raise AssertionError("unreachable")  # the loop always returns


# --- services --------------------------------------------------------------------------------


def _sweep_batches(*, job: Job) -> float | None:
    """Batches left from before a hedge: cancel those still running, poll the rest to their end.

    Their results only land on items still waiting in them (none, after a hedge), so late
    answers are ignored. The job ends only after they have (a canceled batch ends quickly).
    Returns seconds until the next poll is due, None when none is left.
    """
    now = timezone.now()
    batches_cancel(job_id=job.id)
    due = []
    for batch in Batch.objects.filter(
        job=job, state__in=[Batch.State.CANCELING, Batch.State.ENDED]
    ).only("id", "state", "next_poll_at"):
        if batch.state == Batch.State.ENDED or not batch.next_poll_at or batch.next_poll_at <= now:
            try:
                batch_poll(batch_id=batch.id)
            except client.ApiError as exc:
                log.warning("job=%s batch=%s poll after hedge failed: %s", job.id, batch.id, exc)
    now = timezone.now()
    for batch in Batch.objects.filter(
        job=job, state__in=[Batch.State.IN_PROGRESS, Batch.State.CANCELING, Batch.State.ENDED]
    ).only("next_poll_at"):
        due.append((batch.next_poll_at - now).total_seconds() if batch.next_poll_at else 0.0)
    return max(0.0, min(due)) if due else None


def parallel_run(*, job: Job, deadline: float | None = None) -> float | None:
    """Parallel mode: concurrent real-time calls, each item saved the moment it finishes.

    Returns seconds until another pass is useful, or None when nothing is left to do.
    """
    if job.state == Job.State.CANCELED:
        return None
    items.items_fail_uncuratable(job=job)
    wait_batches = _sweep_batches(job=job)
    run = ParallelRun(job=job, deadline=deadline)
    async_to_sync(run.main)()
    log.info("job=%s parallel pass: calls=%s stopped=%s", job.id, run.calls, run.stopped or "done")
    if run.fatal is not None:
        refusals.job_fail(job_id=job.id, exc=run.fatal)
        return None
    canceled = Job.objects.filter(id=job.id, state=Job.State.CANCELED).exists()
    if run.stopped == "canceled" or canceled:
        return None
    unsent = items.unsent_wait(job=job)
    if unsent is not None:
        return unsent  # items to send, or another worker is mid-call
    if wait_batches is not None:
        return _sweep_batches(job=job)
    return None


def job_hedge(*, job_id: int, reason: str = "switched to parallel") -> int | None:
    """Switch a running batch job to parallel mode for every item that has not ended.

    Its batches not yet sent are closed, the items waiting in submitted batches are taken
    out of them (their batch attempt given back) and the provider batches are canceled; a
    late batch result for an item taken out is then ignored by its conditional update. The
    job's runner continues in parallel mode at its next pass. Returns how many items are
    left to do, or None when the job is not a batch job still running (nothing changed).
    """
    now = timezone.now()
    with transaction.atomic():
        if not Job.objects.filter(
            id=job_id, mode=Mode.BATCH, state__in=[Job.State.PENDING, Job.State.RUNNING]
        ).update(mode=Mode.PARALLEL):
            return None
        unsent = list(
            Batch.objects.filter(job_id=job_id, state=Batch.State.PREPARING).values_list(
                "id", flat=True
            )
        )
        Batch.objects.filter(id__in=unsent, state=Batch.State.PREPARING).update(
            state=Batch.State.FAILED, error=f"{reason} before submission", ended_at=now
        )
        moved = Item.objects.filter(
            job_id=job_id, state=Item.State.PENDING, batch_id__in=unsent
        ).update(batch=None, updated_at=now)
        moved += Item.objects.filter(
            job_id=job_id, state=Item.State.SUBMITTED, batch__isnull=False
        ).update(
            state=Item.State.PENDING, batch=None, attempts=F("attempts") - 1, updated_at=now
        )
    batches_cancel(job_id=job_id)
    left = Item.objects.filter(job_id=job_id, state__in=items.ACTIVE_ITEM_STATES).count()
    log.info("job=%s %s: items=%s taken out of batches, %s left to do", job_id, reason, moved, left)
    return left


def batch_run_hedged(*, job: Job, deadline: float | None = None) -> float | None:
    """Batch mode, switched to parallel when CURATION_HEDGE_AFTER_SECONDS have passed."""
    after = hedge_after_seconds()
    if after <= 0 or job.started_at is None:
        return batch_run(job=job, deadline=deadline)
    # From the latest start: a retried job gets its batch the same time as a new one.
    started = max(job.started_at, job.retried_at or job.started_at)
    hedge_at = started + timedelta(seconds=after)
    if timezone.now() >= hedge_at:
        job_hedge(job_id=job.id, reason=f"batch not ended after {after:g}s, switched to parallel")
        return 0.0
    wait = batch_run(job=job, deadline=deadline)
    if wait is None:
        return None
    return min(wait, max(0.0, (hedge_at - timezone.now()).total_seconds()))

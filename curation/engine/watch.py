"""Watched vaults: import on a schedule, queue new and changed notes once a day, within a limit.

    watch_configure(vault=, ...)   the settings of a vault's Watch; its django-q2 Schedule follows
    watch_schedule_sync(watch=)    the Schedule exists while the watch is enabled, else not
    watch_run(watch_id=, now=)     one pass: import the vault, then, when the curate time has
                                   come (or `force_curate`), one batch job of the notes to curate
    watch_task(watch_id)           the Schedule's task (a door: fetch by id, call watch_run)

A pass holds the watch's lease (`running_since`, claimed by a conditional UPDATE), so two
passes never overlap: the second one ends at once and says so. Notes are never queued twice:
a note already in an unfinished job, or with suggestions awaiting review, is left out, and the
job is made (items committed) before the lease is let go.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from curation.api import pricing
from curation.engine import jobs
from curation.engine.estimate import job_estimate
from curation.engine.items import MICRO
from curation.models import ALL_FIELDS, Item, Job, Mode, Suggestion, Watch
from ingest.importer import VaultNotFound, vault_import
from ingest.models import Note, Vault

log = logging.getLogger(__name__)

WATCH_FUNC = "curation.engine.watch.watch_task"
# A task cannot outlive the worker's timeout; a lease older than that and a margin belongs to a
# run that died (kill -9, a lost worker), so the next pass may take it.
LEASE_MARGIN = datetime.timedelta(seconds=60)
SHRINK_TRIES = 4  # job_create refused over the period's money: try again with fewer notes
NOT_CURATED = "-"  # no content hash is ever this: "no suggestion or item recorded"


def lease_length() -> datetime.timedelta:
    return datetime.timedelta(seconds=float(settings.Q_CLUSTER.get("timeout", 600))) + LEASE_MARGIN


def schedule_name(vault_id: int) -> str:
    return f"curation: watch vault {vault_id}"


def dollars(amount: Decimal) -> str:
    """$5.00, $0.12, $0.0031: cents, or four places below a cent (outcome lines are plain text)."""
    places = 2 if abs(amount) >= Decimal("0.01") or amount == 0 else 4
    return f"${amount:,.{places}f}"


# --- time: the curate moment and the limit's period ----------------------------------------


def period_bounds(*, now: datetime.datetime, period: str) -> tuple[datetime.datetime, datetime.datetime]:
    """The period holding `now`, in local time (TIME_ZONE): [first day 00:00, next first day).

    A month runs from its 1st, a week from its Monday.
    """
    local = timezone.localtime(now)
    day = local.date()
    if period == Watch.Period.WEEK:
        start = day - datetime.timedelta(days=day.weekday())
        end = start + datetime.timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + datetime.timedelta(days=32)).replace(day=1)
    tz = local.tzinfo
    return (datetime.datetime.combine(start, datetime.time(0), tzinfo=tz),
            datetime.datetime.combine(end, datetime.time(0), tzinfo=tz))  # fmt: skip


def curate_moment(*, watch: Watch, now: datetime.datetime) -> datetime.datetime:
    """The latest curate time at or before `now` (today's, or yesterday's if not yet reached)."""
    local = timezone.localtime(now)
    moment = datetime.datetime.combine(local.date(), watch.curate_at, tzinfo=local.tzinfo)
    if moment > local:
        moment = datetime.datetime.combine(
            local.date() - datetime.timedelta(days=1), watch.curate_at, tzinfo=local.tzinfo
        )
    return moment


def curate_due(*, watch: Watch, now: datetime.datetime) -> bool:
    """The curate time has come since the last curation pass (and since the watch was enabled:
    enabling it at noon waits for tonight's curate time, it does not curate at once)."""
    since = max((t for t in (watch.last_curate_at, watch.enabled_at) if t), default=None)
    return since is None or since < curate_moment(watch=watch, now=now)


def next_curate(*, watch: Watch, now: datetime.datetime) -> datetime.datetime:
    moment = curate_moment(watch=watch, now=now)
    return datetime.datetime.combine(
        moment.date() + datetime.timedelta(days=1), watch.curate_at, tzinfo=moment.tzinfo
    )


# --- what to curate and what is left to spend ----------------------------------------------


def notes_to_curate(*, vault_id: int) -> list[int]:
    """Ids of the vault's notes that are new or changed since their last curation, oldest first.

    New or changed: the note's content hash is neither the one on its latest suggestion (our
    exports carry that hash forward) nor the one of its latest succeeded item (an answer with
    nothing to suggest). Left out: notes with suggestions awaiting review (they wait for their
    reviewer) and notes already in an unfinished job (never queued twice).
    """
    latest_suggestion = Suggestion.objects.filter(note_id=OuterRef("pk")).order_by("-id")
    latest_item = Item.objects.filter(note_id=OuterRef("pk"), state=Item.State.SUCCEEDED).order_by(
        "-id"
    )
    pending = Suggestion.objects.filter(note_id=OuterRef("pk"), state=Suggestion.State.PENDING)
    queued = Item.objects.filter(
        note_id=OuterRef("pk"), job__state__in=[Job.State.PENDING, Job.State.RUNNING]
    )
    qs = (
        Note.objects.filter(vault_id=vault_id, state=Note.State.OK)
        .exclude(Exists(pending))
        .exclude(Exists(queued))
        .annotate(
            suggested_for=Coalesce(Subquery(latest_suggestion.values("note_hash")[:1]),
                                   Value(NOT_CURATED)),
            answered_for=Coalesce(Subquery(latest_item.values("note_hash")[:1]),
                                  Value(NOT_CURATED)),
        )  # fmt: skip
        .exclude(Q(suggested_for=F("content_hash")) | Q(answered_for=F("content_hash")))
        .order_by("id")
    )
    return list(qs.values_list("id", flat=True))


def spent_by_vault(*, start: datetime.datetime, end: datetime.datetime,
                   vault_ids: list[int] | None = None) -> dict[int, Decimal]:
    """Dollars each vault's jobs made in [start, end) spent, in one query: a finished job's
    cost; an unfinished one's cost so far or its estimate, whichever is more (its money is
    committed). A job over several vaults (no `vault`) counts for none."""
    final = Q(state__in=Job.FINAL_STATES)
    jobs_in = Job.objects.filter(created_at__gte=start, created_at__lt=end, vault__isnull=False)
    if vault_ids is not None:
        jobs_in = jobs_in.filter(vault_id__in=vault_ids)
    rows = jobs_in.values("vault_id").order_by("vault_id").annotate(
        done=Sum("cost", filter=final),
        open=Sum(Greatest("cost", "cost_estimate"), filter=~final),
    )
    return {r["vault_id"]: (r["done"] or Decimal(0)) + (r["open"] or Decimal(0)) for r in rows}


def period_spent(*, vault_id: int, start: datetime.datetime, end: datetime.datetime) -> Decimal:
    return spent_by_vault(start=start, end=end, vault_ids=[vault_id]).get(vault_id, Decimal(0))


@dataclass
class Allowance:
    """What the period's limit leaves for the next job."""

    limit: Decimal
    period: str
    spent: Decimal
    start: datetime.datetime
    end: datetime.datetime

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.limit - self.spent)

    @property
    def label(self) -> str:
        return f"limit {dollars(self.limit)}/{self.period}"

    @property
    def next_period(self) -> str:
        return f"{self.end:%Y-%m-%d}"


def watch_allowance(*, watch: Watch, now: datetime.datetime,
                    spent: Decimal | None = None) -> Allowance | None:
    """What the limit leaves in the period holding `now` (None: no limit); `spent` when the
    caller already summed it (spent_by_vault, for many watches at once)."""
    if watch.limit is None:
        return None
    start, end = period_bounds(now=now, period=watch.period)
    if spent is None:
        spent = period_spent(vault_id=watch.vault_id, start=start, end=end)
    return Allowance(limit=watch.limit, period=watch.period, spent=spent, start=start, end=end)


# --- the settings and their Schedule -------------------------------------------------------


def watch_configure(
    *,
    vault: Vault,
    enabled: bool | None = None,
    every_minutes: int | None = None,
    curate_at: datetime.time | None = None,
    limit: Decimal | None = None,
    period: str | None = None,
    now: datetime.datetime | None = None,
) -> Watch:
    """Change what is given of `vault`'s watch (made on first use) and sync its Schedule.

    `limit` 0 removes the limit; None leaves any setting as it is.
    """
    watch, _ = Watch.objects.get_or_create(vault=vault)
    if enabled is not None:
        watch.enabled = enabled
    if every_minutes is not None:
        if every_minutes < 1:
            raise ValueError("import every 1 minute at least")
        watch.every_minutes = every_minutes
    if curate_at is not None:
        watch.curate_at = curate_at
    if limit is not None:
        if limit < 0:
            raise ValueError("the limit is a number of US dollars, 0 for none")
        watch.limit = limit if limit > 0 else None
    if period is not None:
        if period not in Watch.Period.values:
            raise ValueError(f"period is one of {', '.join(Watch.Period.values)}")
        watch.period = period
    watch.save()
    watch_schedule_sync(watch=watch, now=now)
    return watch


def watch_schedule_sync(*, watch: Watch, now: datetime.datetime | None = None) -> None:
    """Enabled: its Schedule runs watch_task every `every_minutes` (made, or brought up to
    date). Disabled: no Schedule. Also records when it was enabled (curation waits for the
    next curate time after that)."""
    from django_q.models import Schedule

    now = now or timezone.now()
    name = schedule_name(watch.vault_id)
    if not watch.enabled:
        Schedule.objects.filter(name=name).delete()
        if watch.enabled_at is not None:
            Watch.objects.filter(pk=watch.pk).update(enabled_at=None)
            watch.enabled_at = None
        return
    if watch.enabled_at is None:
        Watch.objects.filter(pk=watch.pk).update(enabled_at=now)
        watch.enabled_at = now
    values = {"func": WATCH_FUNC, "args": str(watch.pk), "kwargs": "{'q_options': {'save': False}}",
              "schedule_type": Schedule.MINUTES, "minutes": watch.every_minutes, "repeats": -1}  # fmt: skip
    if not Schedule.objects.filter(name=name).update(**values):
        Schedule.objects.create(name=name, next_run=now, **values)


# --- one pass --------------------------------------------------------------------------------


def watch_claim(*, watch_id: int, now: datetime.datetime) -> str | None:
    """Take the watch's lease for one pass; None when a live pass holds it.

    One conditional UPDATE: of two passes at the same instant only one changes the row (on
    PostgreSQL the second waits for the first's row lock, then finds the lease taken).
    """
    token = secrets.token_hex(8)
    free = Q(running_since__isnull=True) | Q(running_since__lt=now - lease_length())
    n = Watch.objects.filter(free, pk=watch_id).update(running_since=now, running_token=token)
    return token if n == 1 else None


def watch_release(*, watch_id: int, token: str) -> None:
    Watch.objects.filter(pk=watch_id, running_token=token).update(
        running_since=None, running_token=""
    )


def watch_renew(*, watch_id: int, token: str, now: datetime.datetime) -> bool:
    """Keep the lease between the pass's steps; False when another pass took it over."""
    return bool(Watch.objects.filter(pk=watch_id, running_token=token).update(running_since=now))


def watch_run(*, watch_id: int, now: datetime.datetime | None = None,
              force_curate: bool = False, start: bool = True) -> str:
    """One pass of a watched vault; returns what it did in one line.

    Imports the vault (only what changed is read), then, when the curate time has come since
    the last pass (or `force_curate`), queues the notes to curate as one batch job (made
    and left for the caller to run when not `start`: `watch --once --wait`).
    """
    now = now or timezone.now()
    token = watch_claim(watch_id=watch_id, now=now)
    watch = Watch.objects.select_related("vault").get(pk=watch_id)
    if token is None:
        since = watch.running_since  # None: that pass ended in the meantime
        started = f" started {timezone.localtime(since):%Y-%m-%d %H:%M}" if since else ""
        line = f"skipped: the pass{started} is still going"
        log.info("watch vault=%s %s", watch.vault.name, line)
        return line
    try:
        return _run(watch=watch, token=token, now=now, force_curate=force_curate, start=start)
    finally:
        watch_release(watch_id=watch_id, token=token)


def _run(*, watch: Watch, token: str, now: datetime.datetime, force_curate: bool,
         start: bool) -> str:
    vault = watch.vault
    try:
        _, summary = vault_import(root=vault.root, name=vault.name)
        imported = f"import: {summary.line()}"
    except VaultNotFound as exc:
        imported = f"import failed: {exc}"
    Watch.objects.filter(pk=watch.pk).update(last_import_at=now, last_import=imported[:500])
    log.info("watch vault=%s %s", vault.name, imported)
    if not (force_curate or curate_due(watch=watch, now=now)):
        when = timezone.localtime(next_curate(watch=watch, now=now))
        return f"{imported}; curation next due {when:%Y-%m-%d %H:%M}"
    if not watch_renew(watch_id=watch.pk, token=token, now=now):
        return f"{imported}; the curation was left to the pass that took the lease over"
    outcome, job = watch_curate(watch=watch, now=now, start=start)
    Watch.objects.filter(pk=watch.pk).update(
        last_curate_at=now, outcome=outcome, **({"last_job": job} if job else {})
    )
    log.info("watch vault=%s %s", vault.name, outcome)
    return f"{imported}; {outcome}"


def watch_curate(*, watch: Watch, now: datetime.datetime,
                 start: bool = True) -> tuple[str, Job | None]:
    """Queue the vault's notes to curate as one batch job, sized to what the limit leaves.

    Returns the outcome line and the job (None when none was queued).
    """
    ids = notes_to_curate(vault_id=watch.vault_id)
    n = len(ids)
    if not n:
        return "nothing new or changed to curate: no job queued", None
    allowance = watch_allowance(watch=watch, now=now)
    model = settings.CURATION_MODEL
    k, max_cost = n, None
    if allowance is not None:
        waits = f"they wait until {allowance.next_period}"
        if allowance.left <= 0:
            return (f"{allowance.label} reached ({dollars(allowance.spent)} spent): 0 of {n} "
                    f"notes queued; {waits}"), None  # fmt: skip
        try:
            whole = job_estimate(note_ids=ids, fields=ALL_FIELDS, model=model, batch=True)
        except pricing.UnknownPrice as exc:
            return f"not queued: {exc}", None
        per_note = whole.cost / n
        if per_note > 0 and whole.cost > allowance.left:
            k = int((allowance.left / per_note).to_integral_value(rounding=ROUND_DOWN))
        if k == 0:
            return (f"{allowance.label}: {dollars(allowance.left)} left, less than one note "
                    f"(about {dollars(per_note)}): 0 of {n} notes queued; {waits}"), None  # fmt: skip
        max_cost = allowance.left.quantize(MICRO, rounding=ROUND_DOWN)
    job = None
    for _ in range(SHRINK_TRIES):
        try:
            job = jobs.job_create(
                notes=ids[:k], fields=ALL_FIELDS, mode=Mode.BATCH, max_cost=max_cost,
                selection=f"watched vault {watch.vault.name}: {k} new or changed notes",
            )  # fmt: skip
            break
        except jobs.OverBudget as exc:
            if allowance is None or k == 1:
                return f"not queued: {exc}", None
            k -= max(1, k // 10)  # this slice's own estimate came out above the average
        except ValueError as exc:  # no price, no curatable note
            return f"not queued: {exc}", None
    if job is None:
        return f"not queued: {k} notes' estimate stays over the {dollars(allowance.left)} left", None
    if start:
        jobs.job_start(job_id=job.id)
    queued = f"{k} of {n} notes queued in job {job.id} (batch, estimated {dollars(job.cost_estimate)})"
    if allowance is None:
        return f"{queued}", job
    left = max(Decimal(0), allowance.left - job.cost_estimate)
    rest = f"; the rest waits until {allowance.next_period}" if k < n else ""
    return f"{allowance.label}: {queued}, {dollars(left)} left{rest}", job


def watch_task(watch_id: int) -> str:
    """The Schedule's task: one pass of an enabled watch (a disabled one's Schedule is removed)."""
    watch = Watch.objects.filter(pk=watch_id).first()
    if watch is None:  # deleted with its vault: its Schedule goes too
        from django_q.models import Schedule

        Schedule.objects.filter(func=WATCH_FUNC, args=str(watch_id)).delete()
        return "missing"
    if not watch.enabled:
        watch_schedule_sync(watch=watch)
        return "disabled"
    return watch_run(watch_id=watch_id)

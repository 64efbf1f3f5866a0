"""The admin home page's numbers: what is in the app, which step a new user takes next, what
was spent and saved week by week and month by month, and what the watched vaults did.

A handful of aggregate queries whatever the size of the vault (tests hold it to a bound).
"""

import datetime
import os
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from curation.api import pricing
from curation.engine.watch import period_bounds, spent_by_vault, watch_allowance
from curation.models import Item, Job, Operation, Review, Suggestion, Watch
from ingest.models import Note, Vault

ZERO = Decimal("0")


def saved_by_batching(batch_cost: Decimal) -> Decimal:
    """What real time would have cost for the batched items, minus what they did cost.

    Every batched item's cost is `pricing.cost(..., batch=True)` = real-time cost x ratio, so
    one Sum over those items gives the saving without reading any item's usage.
    """
    ratio = pricing.BATCH_DISCOUNT  # batch price / real-time price
    if batch_cost <= 0 or ratio <= 0 or ratio >= 1:
        return ZERO
    return (batch_cost / ratio - batch_cost).quantize(Decimal("0.000001"))


@dataclass
class Step:
    key: str
    title: str
    text: str
    url: str | None
    link_text: str
    done: bool = False
    next: bool = False


@dataclass
class Dashboard:
    vaults: int = 0
    notes_ok: int = 0
    notes_skipped: int = 0
    notes_missing: int = 0
    jobs_total: int = 0
    jobs_running: int = 0
    jobs_failed: int = 0
    items_done: int = 0
    items_total: int = 0
    suggestions_pending: int = 0
    reviews_to_export: int = 0
    cost: Decimal = ZERO
    batch_cost: Decimal = ZERO
    saved: Decimal = ZERO
    operations_running: int = 0
    can_add_url: bool = False
    emulated: bool = False  # no API key: suggestions come from the built-in emulator
    awaiting_you: int | None = None
    steps: list[Step] = field(default_factory=list)
    spending: "Spending | None" = None  # spending_over_time(), filled by the page
    watches: list = field(default_factory=list)  # watched_vaults(), filled by the page


def dashboard_counts() -> Dashboard:
    """Every number on the dashboard, from six aggregate queries."""
    d = Dashboard()
    d.vaults = Vault.objects.count()
    notes = Note.objects.aggregate(
        ok=Count("id", filter=Q(state=Note.State.OK)),
        skipped=Count("id", filter=Q(state=Note.State.SKIPPED)),
        missing=Count("id", filter=Q(state=Note.State.MISSING)),
    )
    d.notes_ok, d.notes_skipped, d.notes_missing = notes["ok"], notes["skipped"], notes["missing"]
    jobs = Job.objects.aggregate(
        total=Count("id"),
        running=Count("id", filter=Q(state__in=[Job.State.PENDING, Job.State.RUNNING])),
        failed=Count("id", filter=Q(state=Job.State.FAILED)),
        cost=Sum("cost"),
    )
    d.jobs_total, d.jobs_running, d.jobs_failed = jobs["total"], jobs["running"], jobs["failed"]
    d.cost = jobs["cost"] or ZERO
    items = Item.objects.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(state__in=Item.FINAL_STATES)),
        # What each item was billed at the batch price, whichever batch or none it is in now.
        batch_cost=Sum("batch_cost"),
    )
    d.items_total, d.items_done = items["total"], items["done"]
    d.batch_cost = items["batch_cost"] or ZERO
    d.saved = saved_by_batching(d.batch_cost)
    d.suggestions_pending = Suggestion.objects.filter(state=Suggestion.State.PENDING).count()
    d.reviews_to_export = (
        Review.objects.filter(exported_at__isnull=True)
        .exclude(decision=Review.Decision.REJECTED)
        .values("suggestion__note_id")
        .distinct()
        .count()
    )
    # Only whether a key is set, never the key: the demo runs without one, on the emulator.
    d.emulated = not os.environ.get("ANTHROPIC_API_KEY")
    d.operations_running = Operation.objects.filter(
        state__in=[Operation.State.PENDING, Operation.State.RUNNING]
    ).count()
    d.steps = next_steps(d)
    return d


def _url(name: str, query: str = "") -> str | None:
    try:
        return reverse(name) + query
    except NoReverseMatch:
        return None


def next_steps(d: Dashboard) -> list[Step]:
    """The four steps of the story, each with its state; the first not done is `next`."""
    steps = [
        Step(
            key="import",
            title="Import",
            text=(
                f"{d.notes_ok:,} notes imported from {d.vaults} vault{'s' if d.vaults != 1 else ''}"
                + (f", {d.notes_skipped:,} skipped (see why in the list)" if d.notes_skipped else "")
                if d.notes_ok or d.notes_skipped
                else "Import a vault: python manage.py import_vault PATH, or add a web page."
            ),
            url=_url("admin:ingest_note_changelist"),
            link_text="Browse notes",
            done=d.notes_ok > 0,
        ),
        Step(
            key="curate",
            title="Curate",
            text=(
                f"{d.jobs_running} job{'s' if d.jobs_running != 1 else ''} running; "
                f"{d.items_done:,} of {d.items_total:,} notes processed"
                if d.jobs_total
                else "Select notes in the list and choose the action “Curate selected notes”."
            ),
            url=_url("admin:curation_job_changelist") if d.jobs_total else
            _url("admin:ingest_note_changelist"),
            link_text="Watch jobs" if d.jobs_total else "Select notes",
            done=d.jobs_total > 0 and d.jobs_running == 0,
        ),
        Step(
            key="review",
            title="Review",
            text=(
                f"{d.suggestions_pending:,} suggestions awaiting review"
                if d.suggestions_pending or d.jobs_total
                else "Approve, edit or reject each suggested tag, description and link."
            ),
            url=_url("admin:curation_suggestion_changelist", "?state__exact=pending"),
            link_text="Review suggestions",
            done=d.jobs_total > 0 and d.suggestions_pending == 0 and d.jobs_running == 0,
        ),
        Step(
            key="export",
            title="Export",
            text=(
                f"{d.reviews_to_export:,} notes with approved changes not yet written; "
                "preview the diff, then confirm"
                if d.reviews_to_export
                else "Write approved changes back into the markdown files: preview the diff "
                "per note, then confirm."
            ),
            url=_url("admin:ingest_vault_changelist"),
            link_text="Vaults",
            done=False,
        ),
    ]
    steps[3].done = d.jobs_total > 0 and d.reviews_to_export == 0 and steps[2].done
    for step in steps:
        if not step.done:
            step.next = True
            break
    return steps


# --- spending over time --------------------------------------------------------------------

WEEKS = 8
MONTHS = 12
CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 560, 170, 16, 22  # SVG user units


@dataclass
class SpendingPeriod:
    """One week or month: what its jobs spent and what batching saved on them."""

    start: datetime.date
    label: str  # under its bars: "Nov 30" (a week's Monday), "Dec" (a month)
    title: str  # in the table: "week of 2026-11-30", "December 2026"
    spent: Decimal = ZERO
    saved: Decimal = ZERO
    jobs: int = 0
    notes: int = 0  # items that ended with an answer
    # The bars, in SVG user units (filled by _chart).
    x: float = 0
    spent_y: float = 0
    spent_h: float = 0
    saved_x: float = 0
    saved_y: float = 0
    saved_h: float = 0
    label_x: float = 0


@dataclass
class SpendingChart:
    unit: str  # "week" or "month"
    periods: list[SpendingPeriod]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    bar_width: float = 0
    base_y: float = 0
    top: Decimal = ZERO  # the tallest bar's amount

    @property
    def spent(self) -> Decimal:
        return sum((p.spent for p in self.periods), ZERO)

    @property
    def saved(self) -> Decimal:
        return sum((p.saved for p in self.periods), ZERO)


@dataclass
class Spending:
    weeks: SpendingChart
    months: SpendingChart

    @property
    def charts(self) -> list[SpendingChart]:
        return [self.weeks, self.months]


def _week_periods(today: datetime.date) -> list[SpendingPeriod]:
    monday = today - datetime.timedelta(days=today.weekday())
    starts = [monday - datetime.timedelta(weeks=k) for k in range(WEEKS - 1, -1, -1)]
    return [SpendingPeriod(start=d, label=f"{d:%b} {d.day}", title=f"week of {d:%Y-%m-%d}")
            for d in starts]  # fmt: skip


def _month_periods(today: datetime.date) -> list[SpendingPeriod]:
    starts = []
    year, month = today.year, today.month
    for _ in range(MONTHS):
        starts.append(datetime.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return [SpendingPeriod(start=d, label=f"{d:%b}", title=f"{d:%B %Y}") for d in reversed(starts)]


def _chart(unit: str, periods: list[SpendingPeriod]) -> SpendingChart:
    """Two bars per period (spent, saved), scaled to the tallest; all inside the viewBox."""
    chart = SpendingChart(unit=unit, periods=periods)
    slot = CHART_WIDTH / len(periods)
    chart.bar_width = round(slot * 0.36, 2)
    chart.base_y = CHART_HEIGHT - CHART_BOTTOM
    room = chart.base_y - CHART_TOP
    chart.top = max([p.spent for p in periods] + [p.saved for p in periods] + [ZERO])
    for i, p in enumerate(periods):
        p.x = round(i * slot + slot * 0.12, 2)
        p.saved_x = round(p.x + chart.bar_width, 2)
        p.label_x = round(i * slot + slot / 2, 2)
        for kind in ("spent", "saved"):
            amount = getattr(p, kind)
            h = float(amount / chart.top) * room if chart.top > 0 else 0.0
            h = max(h, 1.0) if amount > 0 else 0.0  # a cent still shows
            setattr(p, f"{kind}_h", round(h, 2))
            setattr(p, f"{kind}_y", round(chart.base_y - h, 2))
    return chart


def spending_over_time(*, now: datetime.datetime | None = None) -> Spending:
    """Spent and saved by batching per week (the last WEEKS, Monday to Sunday) and per month
    (the last MONTHS), in local time, from two aggregate queries.

    A job's money counts in the period it was made (as the watched vaults' limits count it);
    spent is the jobs' cost, saved is `saved_by_batching` (the dashboard's own figure) of what
    their items were billed at the batch price.
    """
    today = timezone.localtime(now or timezone.now()).date()
    weeks, months = _week_periods(today), _month_periods(today)
    since = min(weeks[0].start, months[0].start)
    start = datetime.datetime.combine(since, datetime.time(0), tzinfo=timezone.get_current_timezone())
    per_day: dict[datetime.date, dict] = {}
    for row in (Job.objects.filter(created_at__gte=start).annotate(day=TruncDate("created_at"))
                .values("day").order_by("day").annotate(spent=Sum("cost"), jobs=Count("id"))):  # fmt: skip
        per_day.setdefault(row["day"], {}).update(spent=row["spent"] or ZERO, jobs=row["jobs"])
    for row in (Item.objects.filter(job__created_at__gte=start)
                .annotate(day=TruncDate("job__created_at")).values("day").order_by("day")
                .annotate(batch_cost=Sum("batch_cost"),
                          notes=Count("id", filter=Q(state=Item.State.SUCCEEDED)))):  # fmt: skip
        per_day.setdefault(row["day"], {}).update(batch_cost=row["batch_cost"] or ZERO,
                                                  notes=row["notes"])  # fmt: skip
    for periods, key in ((weeks, lambda d: d - datetime.timedelta(days=d.weekday())),
                         (months, lambda d: d.replace(day=1))):  # fmt: skip
        by_start = {p.start: p for p in periods}
        batch_cost: dict[datetime.date, Decimal] = {}
        for day, figures in per_day.items():
            p = by_start.get(key(day))
            if p is None:
                continue
            p.spent += figures.get("spent", ZERO)
            p.jobs += figures.get("jobs", 0)
            p.notes += figures.get("notes", 0)
            batch_cost[p.start] = batch_cost.get(p.start, ZERO) + figures.get("batch_cost", ZERO)
        for p in periods:
            p.saved = saved_by_batching(batch_cost.get(p.start, ZERO))
    return Spending(weeks=_chart("week", weeks), months=_chart("month", months))


@dataclass
class WatchedVault:
    name: str
    enabled: bool
    every_minutes: int
    curate_at: datetime.time
    period: str
    limit: Decimal | None  # None: no limit
    spent: Decimal  # this period (0 without a limit: not summed)
    left: Decimal
    until: str  # the next period's first day
    outcome: str
    last_curate_at: datetime.datetime | None
    last_import_at: datetime.datetime | None
    last_job_id: int | None


def watched_vaults(*, now: datetime.datetime | None = None) -> list[WatchedVault]:
    """Each watch, what its limit leaves this period and what its last curation did: one
    query for the watches, one for each kind of period their limits use."""
    now = now or timezone.now()
    watches = list(Watch.objects.select_related("vault").order_by("vault__name"))
    spent: dict[str, dict[int, Decimal]] = {}
    for period in {w.period for w in watches if w.limit is not None}:
        start, end = period_bounds(now=now, period=period)
        spent[period] = spent_by_vault(start=start, end=end)
    out = []
    for w in watches:
        a = watch_allowance(watch=w, now=now, spent=spent.get(w.period, {}).get(w.vault_id, ZERO))
        out.append(WatchedVault(
            name=w.vault.name, enabled=w.enabled, every_minutes=w.every_minutes,
            curate_at=w.curate_at, period=w.period, limit=w.limit,
            spent=a.spent if a else ZERO, left=a.left if a else ZERO,
            until=a.next_period if a else "", outcome=w.outcome,
            last_curate_at=w.last_curate_at, last_import_at=w.last_import_at,
            last_job_id=w.last_job_id,
        ))  # fmt: skip
    return out

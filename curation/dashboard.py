"""The admin home page's numbers: what is in the app, and which step a new user takes next.

A handful of aggregate queries whatever the size of the vault (tests hold it to a bound).
"""

import os
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.urls import NoReverseMatch, reverse

from curation.api import pricing
from curation.models import Item, Job, Operation, Review, Suggestion
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

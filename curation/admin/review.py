"""Admin for suggestions (the review queue), reviews (the audit trail), tag renames and locks."""

import json

from django.contrib import admin, messages
from django.core.cache import cache
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from curation import operations
from curation.admin.jobs import JobFilter
from curation.models import (
    Field,
    Operation,
    ProposedTag,
    Review,
    ReviewLock,
    Suggestion,
    TagConsolidation,
    TagRename,
    Vocabulary,
)
from curation.review.consolidation import consolidation_decide
from curation.review.decisions import ReviewError, note_value, suggestions_decide
from curation.review.html import STYLE, suggested_html, value_html
from curation.review.stale import stale_q
from curation.review.taxonomy import suggestion_ids_with_new_tags, vault_known_tags
from curation.roles import can_review, can_view
from vaultcms.admin import ReadOnlyAdminMixin

STALE_CHIP = mark_safe(
    ' <span class="rv-chip rv-new rv-stale" title="the note changed since this was suggested">'
    "stale</span>"
)
# Bulk decisions over more suggestions than this go to the workers (an Operation).
DECIDE_INLINE = 500


class StateFilter(admin.SimpleListFilter):
    """Pending by default: the queue is what awaits a decision."""

    title = "state"
    parameter_name = "state__exact"  # the spelling the dashboard's link uses

    def lookups(self, request, model_admin):
        return [*Suggestion.State.choices, ("all", "All")]

    def choices(self, changelist):
        value = self.value() or Suggestion.State.PENDING
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or Suggestion.State.PENDING
        return queryset if value == "all" else queryset.filter(state=value)


FACETS_KEY, FACETS_SECONDS = "curation:review:facets", 60


def note_facets() -> dict[str, list[str]]:
    """The folders and tag roots the queue's filters offer: read from the notes at most once a
    minute (they only name choices; the filtering itself always reads the rows)."""
    from ingest.models import Note

    def compute() -> dict[str, list[str]]:
        folders = Note.objects.order_by("folder").values_list("folder", flat=True).distinct()
        roots: dict[str, None] = {}
        for tags in Note.objects.exclude(tags=[]).values_list("tags", flat=True)[:5000]:
            for tag in tags or []:
                roots.setdefault(str(tag).split("/")[0], None)
        return {"folders": list(folders[:200]), "roots": sorted(roots)[:100]}

    return cache.get_or_set(FACETS_KEY, compute, FACETS_SECONDS)


class FolderFilter(admin.SimpleListFilter):
    title = "folder"
    parameter_name = "folder"

    def lookups(self, request, model_admin):
        return [(f or "/", f or "(vault root)") for f in note_facets()["folders"]]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == "/":
            return queryset.filter(note__folder="")
        return queryset.filter(Q(note__folder=value) | Q(note__folder__startswith=value + "/"))


def _json_fragments(text: str) -> list[str]:
    """How a string may appear inside stored JSON text: as is, and \\u-escaped (SQLite)."""
    escaped = json.dumps(text)[1:-1]
    return list(dict.fromkeys([text, escaped]))


class TagBranchFilter(admin.SimpleListFilter):
    """Suggestions whose note has, or which suggest, a tag in this branch (the tag or below)."""

    title = "tag branch"
    parameter_name = "branch"

    def lookups(self, request, model_admin):
        return [(root, root) for root in note_facets()["roots"]]

    def queryset(self, request, queryset):
        branch = (self.value() or "").strip().strip("/")
        if not branch:
            return queryset
        condition = Q()
        for fragment in _json_fragments(branch):
            for pattern in (f'"{fragment}"', f'"{fragment}/'):
                condition |= Q(note__tags__icontains=pattern)
                condition |= Q(field=Field.TAGS, value__icontains=pattern)
        return queryset.filter(condition)


class StaleFilter(admin.SimpleListFilter):
    """Made for other text: the note changed (outside the app) since the suggestion."""

    title = "made for other text (stale)"
    parameter_name = "stale"

    def lookups(self, request, model_admin):
        return [("yes", "Stale"), ("no", "Current")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(stale_q())
        if self.value() == "no":
            return queryset.exclude(stale_q())
        return queryset


class NewTagFilter(admin.SimpleListFilter):
    title = "introduces a new tag"
    parameter_name = "new_tag"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        ids = suggestion_ids_with_new_tags(queryset=queryset)
        if self.value() == "yes":
            return queryset.filter(pk__in=ids)
        return queryset.exclude(pk__in=ids)


@admin.action(description="Approve the selected suggestions", permissions=["review"])
def approve_selected(modeladmin, request, queryset):
    return _decide(modeladmin, request, queryset, Review.Decision.APPROVED)


@admin.action(description="Reject the selected suggestions", permissions=["review"])
def reject_selected(modeladmin, request, queryset):
    return _decide(modeladmin, request, queryset, Review.Decision.REJECTED)


def _decide(modeladmin, request, queryset, decision):
    pending = queryset.filter(state=Suggestion.State.PENDING)
    n = pending.count()
    verb = Review.Decision(decision).label.lower()
    if n > DECIDE_INLINE:
        op = operations.operation_create(
            kind=Operation.Kind.DECIDE,
            user=request.user,
            params={"suggestions": operations.selection_of(pending), "decision": decision},
            description=f"{verb}: {n:,} suggestions",
            total=n,
        )
        modeladmin.message_user(
            request, f"Deciding {n:,} suggestions in the background.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("curation:operation", args=[op.id]))
    try:
        result = suggestions_decide(queryset=queryset, user=request.user, decision=decision)
    except ReviewError as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return None
    level = messages.SUCCESS if result.decided else messages.WARNING
    modeladmin.message_user(request, result.summary(decision).capitalize() + ".", level)
    return None


@admin.register(Suggestion)
class SuggestionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The review queue: pending suggestions, what the note has now beside what is suggested."""

    change_list_template = "curation/review/change_list.html"
    list_filter = [
        StateFilter, StaleFilter, "field", JobFilter, "note__vault", FolderFilter, TagBranchFilter,
        NewTagFilter,
    ]  # fmt: skip
    list_display_links = None
    list_select_related = ["note", "note__vault", "job"]
    search_fields = ["note__path", "note__title"]
    actions = [approve_selected, reject_selected]
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = [
        "note", "job", "item", "field", "value", "model", "prompt_version", "cost",
        "created_at", "state",
    ]  # fmt: skip

    # Suggestions come from jobs; decisions are Reviews, made with the actions or on the
    # note's page; history is never deleted.
    deletable = False

    def has_review_permission(self, request):
        return can_review(request.user)

    def changelist_view(self, request, extra_context=None):
        # Superseding happens when a newer suggestion or a human edit is stored, never here:
        # this page only reads.
        extra_context = {
            **(extra_context or {}),
            "review_style": STYLE,
            "review_hint": (
                "Approve or reject with the actions (tick 'select all' to decide the whole "
                "filtered set); open a note to edit a field or keep and drop tags one by one."
                if can_review(request.user)
                else "You can read the queue; only moderators decide."
            ),
        }
        return super().changelist_view(request, extra_context)

    def get_list_display(self, request):
        # Display columns close over per-request caches (a ModelAdmin is shared by threads).
        known_by_vault: dict[int, set[str]] = {}
        locks: dict[int, ReviewLock] = {}
        locks_loaded = []

        @admin.display(description="Suggested")
        def suggested_value(obj):
            vault_id = obj.note.vault_id
            if vault_id not in known_by_vault:
                known_by_vault[vault_id] = vault_known_tags(vault_id=vault_id)
            current = note_value(obj.note, obj.field)
            return suggested_html(
                obj.field, obj.value, current=current, known=known_by_vault[vault_id]
            )

        def lock_of_other(obj) -> ReviewLock | None:
            if not locks_loaded:  # one query for the page: the live locks
                live = ReviewLock.objects.filter(expires_at__gt=timezone.now())
                locks.update((lk.note_id, lk) for lk in live.select_related("holder")[:1000])
                locks_loaded.append(True)
            held = locks.get(obj.note_id)
            return held if held is not None and held.holder_id != request.user.pk else None

        moderator = can_review(request.user)
        back = request.get_full_path()

        @admin.display(description="Decide")
        def decide(obj):
            # Buttons of the changelist's own form (it carries the CSRF token); formaction
            # sends them to the one-suggestion view, never to the bulk action.
            if obj.state != Suggestion.State.PENDING:
                return format_html('<span class="vc-muted">{}</span>', obj.get_state_display())
            held = lock_of_other(obj)
            note = (
                format_html(
                    '<div class="vc-small vc-muted">{} is reviewing it until {}</div>',
                    held.holder.get_username(),
                    timezone.localtime(held.expires_at).strftime("%H:%M %Z"),
                )
                if held
                else ""
            )
            if not moderator:
                return note
            if obj.is_stale:  # approving needs a look at what changed and a confirmation
                edit = reverse("curation:review_note", args=[obj.note_id])
                return format_html(
                    '<a href="{}#suggestion-{}">Look and confirm…</a>{}', edit, obj.pk, note
                )
            url = reverse("curation:review_decide") + "?" + urlencode({"next": back})
            disabled = " disabled" if held else ""
            buttons = format_html_join(
                " ",
                '<button type="submit" class="{}" formaction="{}" name="decide" '
                'value="{}:{}:{}"{}>{}</button>',
                (
                    ("vc-approve", url, obj.pk, obj.state, "approve", disabled, "Approve"),
                    ("vc-reject", url, obj.pk, obj.state, "reject", disabled, "Reject"),
                ),
            )
            edit = reverse("curation:review_note", args=[obj.note_id])
            return format_html(
                '<span class="vc-decide">{}</span> <a href="{}#suggestion-{}">Edit…</a>{}',
                buttons, edit, obj.pk, note,
            )  # fmt: skip

        return ["note_link", "current_value", suggested_value, decide]

    @admin.display(description="Note", ordering="note__path")
    def note_link(self, obj):
        url = reverse("curation:review_note", args=[obj.note_id])
        stale = STALE_CHIP if obj.is_stale else ""
        return format_html(
            '<a href="{}">{}</a>{}<div class="vc-small vc-muted">{} · job {}</div>',
            url, obj.note.path, stale, obj.get_field_display(), obj.job_id,
        )  # fmt: skip

    @admin.display(description="Now")
    def current_value(self, obj):
        return value_html(obj.field, note_value(obj.note, obj.field))


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: every decision, who made it, and the value before and after."""

    change_list_template = "curation/review/change_list.html"
    # Few, wrapping columns so the list fits a 1366 px screen; the row's page has the rest.
    list_display = ["decided", "note_link", "before_value", "after_value", "short_comment"]
    list_display_links = ["decided"]
    list_filter = [
        "decision", "reviewer", "suggestion__field", "suggestion__note__vault", "stale_confirmed",
    ]  # fmt: skip
    list_select_related = ["reviewer", "suggestion", "suggestion__note"]
    search_fields = ["suggestion__note__path", "reviewer__username", "comment"]
    date_hierarchy = "decided_at"
    list_per_page = 100
    show_full_result_count = False

    deletable = False  # the audit trail is never deleted

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "review_style": STYLE}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Decided", ordering="decided_at")
    def decided(self, obj):
        when = timezone.localtime(obj.decided_at).strftime("%Y-%m-%d %H:%M %Z")
        who = obj.reviewer.get_username() if obj.reviewer else "?"
        exported = " · exported" if obj.exported_at else ""
        confirmed = " · confirmed for changed text" if obj.stale_confirmed else ""
        return format_html(
            '{}<div class="vc-small vc-muted">{} · {}{}{}</div>',
            when, who, obj.get_decision_display(), confirmed, exported,
        )  # fmt: skip

    @admin.display(description="Note", ordering="suggestion__note__path")
    def note_link(self, obj):
        url = reverse("curation:review_note", args=[obj.suggestion.note_id])
        return format_html(
            '<a href="{}">{}</a><div class="vc-small vc-muted">{}</div>',
            url, obj.suggestion.note.path, obj.suggestion.get_field_display(),
        )  # fmt: skip

    @admin.display(description="Comment")
    def short_comment(self, obj):
        return obj.comment[:80] + ("…" if len(obj.comment) > 80 else "")

    @admin.display(description="Before")
    def before_value(self, obj):
        return value_html(obj.suggestion.field, obj.before)

    @admin.display(description="After")
    def after_value(self, obj):
        return value_html(obj.suggestion.field, obj.value)


@admin.register(TagRename)
class TagRenameAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Renames are made on the taxonomy page (through tag_rename); here they are listed."""

    list_display = ["old", "new", "vault", "decided_by", "decided_at"]
    list_filter = ["vault", "decided_by"]
    search_fields = ["old", "new"]


@admin.register(ReviewLock)
class ReviewLockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who is reviewing which note; a superuser may delete a lock to free a note at once."""

    list_display = ["note", "holder", "claimed_at", "expires_at", "live"]
    list_select_related = ["note", "holder"]

    @admin.display(boolean=True)
    def live(self, obj):
        return obj.expires_at > timezone.now()


@admin.register(ProposedTag)
class ProposedTagAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Proposed tags and who decided them (audit); decisions are made on the proposed tags page."""

    list_display = ["tag", "vault", "state", "mapped_to", "notes", "decided_by", "decided_at"]
    list_filter = ["state", "vault", "decided_by"]
    list_select_related = ["vault", "decided_by"]
    search_fields = ["tag", "mapped_to"]
    deletable = False

    def has_view_permission(self, request, obj=None):
        return can_view(request.user) or super().has_view_permission(request, obj)

    @admin.display(description="Notes")
    def notes(self, obj):
        url = reverse("curation:review_proposed_tags", args=[obj.vault_id])
        return format_html('<a href="{}">{}</a>', url, obj.uses.count())


@admin.register(Vocabulary)
class VocabularyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each vault's tag policy and who set it; set on the proposed tags page."""

    list_display = ["vault", "policy", "changed_by", "changed_at", "page"]
    list_select_related = ["vault", "changed_by"]

    def has_view_permission(self, request, obj=None):
        return can_view(request.user) or super().has_view_permission(request, obj)

    @admin.display(description="")
    def page(self, obj):
        url = reverse("curation:review_proposed_tags", args=[obj.vault_id])
        return format_html('<a href="{}">Proposed tags and policy</a>', url)


@admin.action(description="Approve the selected merges (record tag renames)", permissions=["review"])
def approve_consolidations(modeladmin, request, queryset):
    _decide_consolidations(modeladmin, request, queryset, TagConsolidation.State.APPROVED)


@admin.action(description="Reject the selected merges", permissions=["review"])
def reject_consolidations(modeladmin, request, queryset):
    _decide_consolidations(modeladmin, request, queryset, TagConsolidation.State.REJECTED)


def _decide_consolidations(modeladmin, request, queryset, decision):
    done = 0
    for pk in queryset.filter(state=TagConsolidation.State.PENDING).values_list("pk", flat=True):
        try:
            consolidation_decide(consolidation_id=pk, user=request.user, decision=decision)
            done += 1
        except ReviewError as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
    modeladmin.message_user(request, f"{decision} {done} merge(s).", messages.SUCCESS)


@admin.register(TagConsolidation)
class TagConsolidationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Merges and renames a consolidation job proposed; each decided here, who and when kept."""

    list_display = ["old", "new", "notes", "reason", "state", "vault", "job", "decided_by",
                    "decided_at"]  # fmt: skip
    list_filter = ["state", "vault", "decided_by"]
    list_select_related = ["vault", "job", "decided_by"]
    search_fields = ["old", "new"]
    actions = [approve_consolidations, reject_consolidations]
    deletable = False

    def has_review_permission(self, request):
        return can_review(request.user)

    def has_view_permission(self, request, obj=None):
        return can_view(request.user) or super().has_view_permission(request, obj)

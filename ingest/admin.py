"""Admin for vaults, notes and export records: search, filters, a sanitized preview of each note.

The curation app extends these (curation/admin/notes.py adds the curate and export actions),
as Django's own UserAdmin is extended, so nothing here knows of curation.
"""

import re

from django.contrib import admin, messages
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from ingest.files import UnsafePath, safe_path
from ingest.importer import VaultNotFound, vault_import
from ingest.models import ExportRecord, Note, Vault
from ingest.notes import NotRegular, link_name, read_regular
from ingest.render import link_wikilinks, render_markdown, wikilink_names
from vaultcms.admin import ReadOnlyAdminMixin


@admin.action(description="Re-import selected vaults from disk", permissions=["change"])
def reimport_vaults(modeladmin, request, queryset):
    for vault in queryset:
        try:
            _, summary = vault_import(root=vault.root, name=vault.name)
        except VaultNotFound as exc:
            modeladmin.message_user(request, f"{vault.name}: {exc}", messages.ERROR)
            continue
        level = messages.WARNING if summary.skipped else messages.SUCCESS
        modeladmin.message_user(request, f"Re-imported {vault.name}: {summary.line()}", level)


class IngestPermissionMixin:
    """Who may add a note from a web address (it writes a new file into the vault); the pages
    show their "Add" links only to them."""

    def has_ingest_permission(self, request) -> bool:
        return request.user.has_perm("ingest.add_note")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_ingest": self.has_ingest_permission(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_ingest": self.has_ingest_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Vault)
class VaultAdmin(IngestPermissionMixin, admin.ModelAdmin):
    """A vault's folder is set by `import_vault PATH` only: a form that could point it at any
    folder of the server would let "Re-import" pull that folder's files into the app."""

    list_display = ["name", "root", "note_count", "imported_at"]
    search_fields = ["name", "root"]
    readonly_fields = ["root", "created_at", "imported_at"]
    actions = [reimport_vaults]

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_note_count=Count("notes"))

    @admin.display(description="Notes", ordering="_note_count")
    def note_count(self, vault):
        url = f'{reverse("admin:ingest_note_changelist")}?vault__id__exact={vault.id}'
        return format_html('<a href="{}">{}</a>', url, vault._note_count)


class FolderFilter(admin.SimpleListFilter):
    title = "folder"
    parameter_name = "folder"

    def lookups(self, request, model_admin):
        folders = (
            Note.objects.order_by("folder").values_list("folder", flat=True).distinct()[:200]
        )
        return [(f, f or "(vault root)") for f in folders]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == "":
            return queryset.filter(folder="")
        # The folder and its subfolders; "AI" must not also match "AIX".
        return queryset.filter(Q(folder=value) | Q(folder__startswith=f"{value}/"))


class HasTagsFilter(admin.SimpleListFilter):
    title = "has tags"
    parameter_name = "has_tags"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(tags=[])
        if self.value() == "no":
            return queryset.filter(tags=[])
        return queryset


@admin.register(Note)
class NoteAdmin(IngestPermissionMixin, admin.ModelAdmin):
    # Few, wrapping columns so the list fits a 1366 px screen with the sidebar open.
    list_display = ["title", "path", "state", "tag_list"]
    list_filter = ["vault", FolderFilter, "state", HasTagsFilter]
    list_select_related = ["vault"]
    search_fields = ["title", "path", "body"]
    list_per_page = 50
    show_full_result_count = False
    actions = []
    readonly_fields = [
        "vault", "path", "folder", "title", "state", "reason", "raw_excerpt", "tag_chips",
        "frontmatter_block", "preview", "encoding", "has_bom", "content_hash", "size",
        "imported_at", "updated_at",
    ]  # fmt: skip
    exclude = ["frontmatter_raw", "frontmatter", "body", "newline", "mtime_ns", "tags"]

    def has_change_permission(self, request, obj=None):
        return False  # notes change on disk (then re-import) or by export: the page is read-only

    def has_add_permission(self, request):
        return False  # notes come from the vault on disk, never typed in

    def get_urls(self):
        from django.urls import path

        from ingest.views import url_ingest_view

        view = self.admin_site.admin_view(lambda request: url_ingest_view(request, self))
        return [path("from-url/", view, name="ingest_note_from_url"), *super().get_urls()]

    def get_url_ingest_form(self, request):
        """The form class of "Add from web address" (an extending admin may add fields)."""
        from ingest.views import UrlIngestForm

        return UrlIngestForm

    def response_url_ingest(self, request, note: Note, form):
        """Where "Add from web address" leads once `note` is added (its page, by default)."""
        from ingest.views import url_ingest_added

        return url_ingest_added(request, self, note)

    @admin.display(description="Tags")
    def tag_list(self, note):
        return chips(note.tags)

    @admin.display(description="Tags")
    def tag_chips(self, note):
        return chips(note.tags)

    @admin.display(description="Around the error")
    def raw_excerpt(self, note):
        if note.state != Note.State.SKIPPED:
            return "-"
        return raw_excerpt(note)

    @admin.display(description="Frontmatter")
    def frontmatter_block(self, note):
        return format_html("<pre>{}</pre>", note.frontmatter_raw or "(none)")

    @admin.display(description="Preview")
    def preview(self, note):
        # render_markdown sanitizes with nh3, so the HTML is safe to mark as such.
        html = link_wikilinks(render_markdown(note.body), note_links(note))
        return mark_safe(f'<div class="note-preview">{html}</div>')


def chips(tags) -> str:
    if not tags:
        return "-"
    return format_html_join(" ", '<span class="vc-chip">{}</span>', ((str(t),) for t in tags))


def note_links(note: Note):
    """resolve(name) -> the admin URL of the note of that vault a [[name]] points to."""
    names = wikilink_names(note.body)[:200]
    found: dict[str, int] = {}
    if names:
        wanted = Q()
        for name in names:
            wanted |= Q(path__iexact=f"{name}.md") | Q(path__iendswith=f"/{name}.md")
        for pk, path in Note.objects.filter(wanted, vault_id=note.vault_id).values_list("pk", "path"):
            found.setdefault(link_name(path).lower(), pk)
            found.setdefault(path[:-3].lower(), pk)

    def resolve(name: str) -> str | None:
        pk = found.get(name.strip().lower())
        return None if pk is None else reverse("admin:ingest_note_change", args=[pk])

    return resolve


EXCERPT_LINES = 6  # lines shown before and after a skipped note's broken line
LINE_IN_REASON = re.compile(r"\bline (\d+)")


def raw_excerpt(note: Note):
    """The file's raw text around the line its skip reason names (the broken YAML line)."""
    try:
        # Never opens a FIFO or a device for good, even one swapped in after a stat().
        data = read_regular(safe_path(note.vault.root, note.path), limit=256 * 1024)
    except NotRegular:
        return "(not a regular file)"
    except (UnsafePath, OSError) as exc:
        return f"(cannot read the file: {exc})"
    lines = data.decode("utf-8", errors="replace").splitlines()
    found = LINE_IN_REASON.search(note.reason or "")
    bad = int(found.group(1)) if found else None
    # The reason's line number counts the file's lines (ingest.notes.load_yaml).
    start = max(1, (bad or 1) - EXCERPT_LINES)
    end = min(len(lines), (bad or 1) + EXCERPT_LINES)
    rows = [
        ("vc-bad" if n == bad else "vc-line", n, lines[n - 1]) for n in range(start, end + 1)
    ]
    return format_html(
        '<div class="vc-raw">{}</div>',
        format_html_join(
            "", '<span class="{}"><span class="vc-n">{}</span>{}</span>', rows
        ),
    )


@admin.register(ExportRecord)
class ExportRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What each export wrote: read-only history."""

    list_display = ["note", "written_at", "fields", "new_hash"]
    list_filter = ["note__vault"]
    list_select_related = ["note"]
    search_fields = ["note__path"]
    readonly_fields = ["note", "written_at", "fields", "reviews", "old_hash", "new_hash"]

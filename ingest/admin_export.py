"""Admin actions that export approved changes to the vault, or preview them as a diff."""

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from curation.review import can_review
from ingest.exporter import ExportSummary, vault_export
from ingest.models import ExportRecord, Vault

SHOWN_PROBLEMS = 20
SHOWN_DIFFS = 200  # a preview page stays readable; the command's --dry-run shows every diff


def has_export_permission(modeladmin, request) -> bool:
    """Moderators (who decide what is approved) and users allowed to change notes."""
    return can_review(request.user) or request.user.has_perm("ingest.change_note")


def _by_vault(notes) -> dict[Vault, list[int]]:
    grouped: dict[Vault, list[int]] = {}
    for note in notes.select_related("vault").only("id", "vault"):
        grouped.setdefault(note.vault, []).append(note.id)
    return grouped


def _report(modeladmin, request, vault: Vault, summary: ExportSummary) -> None:
    level = messages.SUCCESS if summary.ok else messages.WARNING
    modeladmin.message_user(request, f"Vault {vault.name}: {summary.line()}.", level)
    problems = [("Conflict", p, r) for p, r in summary.conflicts] + [
        ("Error", p, r) for p, r in summary.errors
    ]
    for kind, path, reason in problems[:SHOWN_PROBLEMS]:
        modeladmin.message_user(request, f"{kind}: {path}: {reason}", messages.WARNING)
    if len(problems) > SHOWN_PROBLEMS:
        more = len(problems) - SHOWN_PROBLEMS
        modeladmin.message_user(request, f"... and {more} more (see the log).", messages.WARNING)


def _preview(modeladmin, request, runs: list[tuple[Vault, list[int] | None]]):
    results = []
    for vault, note_ids in runs:
        summary = vault_export(vault=vault, note_ids=note_ids, dry_run=True)
        files = [
            {"path": path, "lines": [(_line_class(i, line), line) for i, line in enumerate(lines)]}
            for path, lines in ((p, d.splitlines()) for p, d in summary.diffs[:SHOWN_DIFFS])
        ]
        hidden = max(0, len(summary.diffs) - SHOWN_DIFFS)
        results.append({"vault": vault, "summary": summary, "files": files, "hidden": hidden})
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Preview export (nothing is written)",
        "opts": modeladmin.model._meta,
        "results": results,
    }
    return TemplateResponse(request, "admin/ingest/export_preview.html", context)


def _line_class(index: int, line: str) -> str:
    if index < 2:  # the `--- a/...` and `+++ b/...` header
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "ctx")


@admin.action(description="Export approved to vault", permissions=["export"])
def export_approved_vaults(modeladmin, request, queryset):
    for vault in queryset:
        _report(modeladmin, request, vault, vault_export(vault=vault))


@admin.action(description="Preview export", permissions=["view"])
def preview_export_vaults(modeladmin, request, queryset):
    return _preview(modeladmin, request, [(vault, None) for vault in queryset])


@admin.action(description="Export approved to vault", permissions=["export"])
def export_approved_notes(modeladmin, request, queryset):
    for vault, note_ids in _by_vault(queryset).items():
        _report(modeladmin, request, vault, vault_export(vault=vault, note_ids=note_ids))


@admin.action(description="Preview export", permissions=["view"])
def preview_export_notes(modeladmin, request, queryset):
    return _preview(modeladmin, request, list(_by_vault(queryset).items()))


@admin.register(ExportRecord)
class ExportRecordAdmin(admin.ModelAdmin):
    """What each export wrote: read-only history."""

    list_display = ["note", "written_at", "fields", "new_hash"]
    list_filter = ["note__vault"]
    list_select_related = ["note"]
    search_fields = ["note__path"]
    readonly_fields = ["note", "written_at", "fields", "reviews", "old_hash", "new_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

"""The Note and Vault admins, extended with curation: curate selected notes, export, preview.

ingest's admins know nothing of curation; this module re-registers them with the actions added,
as Django's own UserAdmin is extended by other apps.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from curation.engine import jobs
from curation.engine.consolidation import consolidation_run
from curation.models import ALL_FIELDS, Field, Mode
from curation.review.decisions import ReviewError
from curation.review.export import (
    ExportSummary,
    RevertSummary,
    export_run_records,
    exports_revert,
    vault_export,
)
from curation.roles import can_curate, can_export, can_ingest_url, can_view
from ingest.admin import ExportRecordAdmin, NoteAdmin, VaultAdmin
from ingest.models import ExportRecord, Note, Vault


class CurateForm(forms.Form):
    curate_fields = forms.MultipleChoiceField(
        label="Fields",
        choices=Field.choices,
        initial=ALL_FIELDS,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the model suggests for each note; every suggestion is reviewed.",
    )
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.AUTO)
    urgent = forms.BooleanField(
        required=False,
        help_text="Auto mode only: parallel real-time calls instead of a half-price batch.",
    )
    max_cost = forms.DecimalField(
        label="Maximum cost (US$)",
        required=False,
        min_value=0,
        max_digits=14,
        decimal_places=6,
        help_text="A job estimated over it is refused; one reaching it stops sending and its "
        "unsent notes end canceled. 0: no limit.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["max_cost"].initial = settings.CURATION_MAX_JOB_COST


@admin.action(description="Curate selected notes")
def curate_selected_notes(modeladmin, request, queryset):
    """Ask for fields and mode, then create one job over the selection and queue it.

    `queryset` is the whole selection ("select all N" across pages included); the job is
    made from it in bulk, never row by row.
    """
    if not can_curate(request.user):
        modeladmin.message_user(
            request, "You are not allowed to start curation jobs.", messages.ERROR
        )
        return None
    form = CurateForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        across = request.POST.get("select_across") == "1"
        filters = request.GET.urlencode()
        selection = "admin: " + ("all matching" if across else "selected") + (
            f" ({filters})" if filters else ""
        )
        try:
            job = jobs.job_create(
                notes=queryset,
                fields=form.cleaned_data["curate_fields"],
                mode=form.cleaned_data["mode"],
                urgent=form.cleaned_data["urgent"],
                user=request.user,
                selection=selection,
                max_cost=form.cleaned_data["max_cost"],
            )
        except jobs.NoNotesError:
            modeladmin.message_user(
                request, "None of the selected notes can be curated (skipped or missing).",
                messages.WARNING,
            )  # fmt: skip
            return None
        except ValueError as exc:  # no price for the model, or over the maximum cost
            form.add_error(None, str(exc))
        else:
            jobs.job_start(job_id=job.id)
            modeladmin.message_user(
                request,
                f"Job {job.id} queued: {job.items.count()} notes, mode "
                f"{job.get_mode_display()}, estimated cost ${job.cost_estimate}.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("curation:job", args=[job.id]))
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Curate selected notes",
        "opts": modeladmin.model._meta,
        "form": form,
        "count": queryset.count(),
        "curatable": queryset.filter(state=Note.State.OK).count(),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": "curate_selected_notes",
    }
    return TemplateResponse(request, "admin/curation/curate_notes.html", context)


# --- export -----------------------------------------------------------------------------------

SHOWN_PROBLEMS = 20
SHOWN_DIFFS = 200  # a preview page stays readable; the command's --dry-run shows every diff


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
    return TemplateResponse(request, "admin/curation/export_preview.html", context)


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


# --- the extended admins ---------------------------------------------------------------------


@admin.action(description="Propose tag consolidation (ask the model about all tags)")
def consolidate_vault_tags(modeladmin, request, queryset):
    if not can_curate(request.user):
        modeladmin.message_user(request, "You are not allowed to start jobs.", messages.ERROR)
        return
    for vault in queryset:
        try:
            job = consolidation_run(vault_id=vault.pk, user=request.user)
        except ReviewError as exc:
            modeladmin.message_user(request, f"{vault.name}: {exc}", messages.WARNING)
            continue
        if job.state == job.State.FAILED:
            modeladmin.message_user(request, f"{vault.name}: job {job.pk} failed: {job.error}",
                                    messages.ERROR)  # fmt: skip
            continue
        n = job.consolidations.count()
        url = reverse("admin:curation_tagconsolidation_changelist") + f"?job__id__exact={job.pk}"
        modeladmin.message_user(
            request,
            format_html('{}: job {} proposed {} merge(s), cost ${}. <a href="{}">Review them</a>.',
                        vault.name, job.pk, n, job.cost, url),
            messages.SUCCESS,
        )  # fmt: skip


class CurationVaultAdmin(VaultAdmin):
    actions = [*VaultAdmin.actions, export_approved_vaults, preview_export_vaults,
               consolidate_vault_tags]  # fmt: skip

    def has_export_permission(self, request) -> bool:
        return can_export(request.user)

    def has_ingest_permission(self, request) -> bool:
        return can_ingest_url(request.user)


class CurationNoteAdmin(NoteAdmin):
    actions = [*NoteAdmin.actions, curate_selected_notes, export_approved_notes,
               preview_export_notes]  # fmt: skip

    def has_export_permission(self, request) -> bool:
        return can_export(request.user)

    def has_ingest_permission(self, request) -> bool:
        return can_ingest_url(request.user)


# --- undoing exports ---------------------------------------------------------------------------


def _report_revert(modeladmin, request, summary: RevertSummary) -> None:
    level = messages.SUCCESS if summary.ok else messages.WARNING
    modeladmin.message_user(request, f"Revert: {summary.line()}.", level)
    for path, reason in summary.conflicts[:SHOWN_PROBLEMS]:
        modeladmin.message_user(request, f"Conflict: {path}: {reason}", messages.WARNING)


@admin.action(description="Revert the selected exports", permissions=["export"])
def revert_exports(modeladmin, request, queryset):
    _report_revert(modeladmin, request, exports_revert(records=queryset, user=request.user))


@admin.action(description="Revert the whole export runs of the selected", permissions=["export"])
def revert_export_runs(modeladmin, request, queryset):
    runs = set(queryset.exclude(run="").values_list("run", flat=True))
    records = [r for run in sorted(runs) for r in export_run_records(run=run)]
    _report_revert(modeladmin, request, exports_revert(records=records, user=request.user))


class CurationExportRecordAdmin(ExportRecordAdmin):
    """Export history with undo; reverted records show who reverted them and when."""

    list_display = ["note", "written_at", "fields", "run", "reverted_at", "reverted_by"]
    list_filter = [*ExportRecordAdmin.list_filter, "run", "reverted_by"]
    list_select_related = ["note", "reverted_by"]
    readonly_fields = [*ExportRecordAdmin.readonly_fields, "run", "reverted_at", "reverted_by"]
    actions = [revert_exports, revert_export_runs]
    deletable = False

    def has_export_permission(self, request) -> bool:
        return can_export(request.user)

    def has_view_permission(self, request, obj=None):
        # Exports are part of the audit trail every role reads (roles.py, not a new grant).
        return can_view(request.user) or super().has_view_permission(request, obj)


admin.site.unregister(ExportRecord)
admin.site.register(ExportRecord, CurationExportRecordAdmin)
admin.site.unregister(Vault)
admin.site.register(Vault, CurationVaultAdmin)
admin.site.unregister(Note)
admin.site.register(Note, CurationNoteAdmin)

"""The Note and Vault admins, extended with curation: curate selected notes, export, re-import.

ingest's admins know nothing of curation; this module re-registers them with the actions added,
as Django's own UserAdmin is extended by other apps. Every action here only records an
Operation and answers at once; the workers do the work (curation.operations). "Propose tag
consolidation" creates its small job itself (one item per part of the vault's tag list, after
reading the list and counting its requests' tokens for the estimate) and queues it: the model
is asked by a worker.
"""

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from curation import operations
from curation.admin.watch import watch_link
from curation.curate_now import CurateNowRefused, note_curate_now
from curation.engine import jobs, router
from curation.engine.consolidation import NothingToConsolidate
from curation.engine.jobs import budget_for
from curation.models import ALL_FIELDS, Field, Mode, Operation
from curation.review.export import RevertSummary, export_run_records, exports_revert
from curation.roles import can_curate, can_export, can_ingest_url, can_view
from curation.templatetags.vaultcms_money import money
from ingest.admin import ExportRecordAdmin, NoteAdmin, VaultAdmin
from ingest.models import ExportRecord, Note, Vault
from ingest.views import UrlIngestForm

SHOWN_PROBLEMS = 20


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

    pending = forms.ChoiceField(
        label="Notes with suggestions awaiting review",
        choices=[
            ("skip", "Leave them out (their pending suggestions stay as they are)"),
            ("replace", "Curate them again: the new suggestions replace the pending ones"),
        ],
        initial="skip",
        required=False,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["max_cost"].initial = settings.CURATION_MAX_JOB_COST


def _selection_label(request) -> str:
    across = request.POST.get("select_across") == "1"
    filters = request.GET.urlencode()
    return "admin: " + ("all matching" if across else "selected") + (
        f" ({filters})" if filters else ""
    )


def _estimates(queryset, fields=None) -> tuple[dict, str]:
    """The curate form's numbers: curatable notes, and per (mode, urgent) the mode the router
    picks and its estimated cost, so the page follows the form without a rule of its own.
    With no known price for the model, the costs are empty and `estimate["error"]` says why."""
    batch = operations.curate_estimate(notes=queryset, mode=Mode.BATCH, fields=fields)
    by_choice = {}
    for mode in Mode.values:
        for urgent in (False, True):
            chosen = (
                operations.router.choose_mode(batch["curatable"], mode, urgent=urgent)
                if batch["curatable"]
                else ""
            )
            cost = batch["batch"] if chosen == Mode.BATCH else batch["realtime"]
            cost = "" if cost is None else money(cost)
            by_choice[f"{mode}:{int(urgent)}"] = {
                "mode": Mode(chosen).label if chosen else "",
                "cost": cost,
            }
    return batch, json.dumps(by_choice)


@admin.action(description="Curate selected notes")
def curate_selected_notes(modeladmin, request, queryset):
    """Ask for fields and mode (showing the estimate), then queue the job's creation.

    `queryset` is the whole selection ("select all N" across pages included); its ids are read
    once, checked against the maximum cost (a job estimated over it, or a model without a known
    price, is refused before anything is queued; the estimate of a large selection is counted
    on a sample) and stored as id ranges; the worker creates the job's items, so the answer
    comes at once.
    """
    if not can_curate(request.user):
        modeladmin.message_user(
            request, "You are not allowed to start curation jobs.", messages.ERROR
        )
        return None
    form = CurateForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        ids = operations.curatable_ids(notes=queryset)
        max_cost = form.cleaned_data["max_cost"]
        try:  # refused here, before anything is queued (the worker's job_create checks again)
            n = operations.curate_check(
                note_ids=ids,
                fields=form.cleaned_data["curate_fields"],
                mode=form.cleaned_data["mode"],
                urgent=form.cleaned_data["urgent"],
                max_cost=max_cost,
            )
        except ValueError as exc:  # no price for the model, or over the maximum cost
            form.add_error(None, str(exc))
            return _curate_page(modeladmin, request, queryset, form)
        if not n:
            modeladmin.message_user(
                request, "None of the selected notes can be curated (skipped or missing).",
                messages.WARNING,
            )  # fmt: skip
            return None
        op = operations.operation_create(
            kind=Operation.Kind.CURATE,
            user=request.user,
            params={
                "notes": operations.selection_from_ids(ids),
                "fields": form.cleaned_data["curate_fields"],
                "mode": form.cleaned_data["mode"],
                "urgent": form.cleaned_data["urgent"],
                "pending": form.cleaned_data["pending"] or "replace",
                "selection": _selection_label(request),
                "max_cost": None if max_cost is None else str(max_cost),
            },
            description=f"curate {n:,} note{'s' if n != 1 else ''}",
            total=n,
        )
        modeladmin.message_user(
            request, f"Creating the job over {n:,} note{'s' if n != 1 else ''} in the background.",
            messages.SUCCESS,
        )  # fmt: skip
        return HttpResponseRedirect(reverse("curation:operation", args=[op.id]))
    return _curate_page(modeladmin, request, queryset, form)


def _curate_page(modeladmin, request, queryset, form):
    fields = getattr(form, "cleaned_data", {}).get("curate_fields")
    estimate, by_choice = _estimates(queryset, fields)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Curate selected notes",
        "opts": modeladmin.model._meta,
        "form": form,
        "count": estimate["selected"],
        "curatable": estimate["curatable"],
        "estimate": estimate,
        "estimates_json": by_choice,
        "pending_notes": operations.pending_notes_count(notes=queryset),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": "curate_selected_notes",
    }
    return TemplateResponse(request, "admin/curation/curate_notes.html", context)


# --- export: always a preview first, then "Export these N notes" on the preview's page ------


def _preview(modeladmin, request, runs: list[dict], what: str):
    op = operations.operation_create(
        kind=Operation.Kind.PREVIEW,
        user=request.user,
        params={"runs": runs},
        description=f"preview the export of {what}",
    )
    modeladmin.message_user(
        request, f"Preparing the preview of {what}; nothing is written until you confirm.",
        messages.SUCCESS,
    )  # fmt: skip
    return HttpResponseRedirect(reverse("curation:operation", args=[op.id]))


def _vault_runs(queryset) -> list[dict]:
    return [{"vault": pk, "notes": None} for pk in queryset.values_list("pk", flat=True)]


def _note_runs(queryset) -> list[dict]:
    vaults = queryset.order_by().values_list("vault_id", flat=True).distinct()
    return [
        {"vault": v, "notes": operations.selection_of(queryset.filter(vault_id=v))}
        for v in sorted(vaults)
    ]


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


@admin.action(description="Export approved to vault (preview first)", permissions=["export"])
def export_approved_vaults(modeladmin, request, queryset):
    runs = _vault_runs(queryset)
    return _preview(modeladmin, request, runs, _plural(len(runs), "vault"))


@admin.action(description="Preview export", permissions=["view"])
def preview_export_vaults(modeladmin, request, queryset):
    runs = _vault_runs(queryset)
    return _preview(modeladmin, request, runs, _plural(len(runs), "vault"))


@admin.action(description="Export approved to vault (preview first)", permissions=["export"])
def export_approved_notes(modeladmin, request, queryset):
    runs = _note_runs(queryset)
    return _preview(modeladmin, request, runs, _plural(queryset.count(), "selected note"))


@admin.action(description="Preview export", permissions=["view"])
def preview_export_notes(modeladmin, request, queryset):
    runs = _note_runs(queryset)
    return _preview(modeladmin, request, runs, _plural(queryset.count(), "selected note"))


@admin.action(description="Re-import selected vaults from disk", permissions=["change"])
def reimport_vaults(modeladmin, request, queryset):
    runs = [{"vault": pk, "paths": None} for pk in queryset.values_list("pk", flat=True)]
    op = operations.operation_create(
        kind=Operation.Kind.IMPORT,
        user=request.user,
        params={"runs": runs},
        description=f"re-import {_plural(len(runs), 'vault')}",
    )
    modeladmin.message_user(request, "Re-importing in the background.", messages.SUCCESS)
    return HttpResponseRedirect(reverse("curation:operation", args=[op.id]))


# --- the extended admins ---------------------------------------------------------------------


class ConsolidateForm(forms.Form):
    mode = forms.ChoiceField(
        choices=Mode.choices, initial=Mode.AUTO,
        help_text="Auto: one request in real time; a tag list sent in several parts goes as a "
        "half-price Message Batch.",
    )  # fmt: skip
    max_cost = forms.DecimalField(
        label="Maximum cost (US$)", required=False, min_value=0, max_digits=14,
        decimal_places=6,
        help_text="A job estimated over it is refused; one reaching it stops sending. 0: no limit.",
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["max_cost"].initial = settings.CURATION_MAX_JOB_COST


@admin.action(description="Propose tag consolidation (ask the model about all tags)")
def consolidate_vault_tags(modeladmin, request, queryset):
    """Show the vault's tag count and the estimate, ask for mode and maximum cost, then queue
    the consolidation job and open its page. The request only reads the tag list and counts
    the request's tokens; the model is asked by a worker."""
    if not can_curate(request.user):
        modeladmin.message_user(request, "You are not allowed to start jobs.", messages.ERROR)
        return None
    vaults = list(queryset[:2])
    if len(vaults) != 1:
        modeladmin.message_user(request, "Choose one vault: its tags are consolidated alone.",
                                messages.WARNING)  # fmt: skip
        return None
    vault = vaults[0]
    form = ConsolidateForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        try:
            job = jobs.consolidation_create(
                vault_id=vault.pk, mode=form.cleaned_data["mode"],
                max_cost=form.cleaned_data["max_cost"], user=request.user,
            )  # fmt: skip
        except NothingToConsolidate as exc:
            modeladmin.message_user(request, f"{vault.name}: {exc}", messages.WARNING)
            return None
        except ValueError as exc:  # no price for the model, or over the maximum cost
            form.add_error(None, str(exc))
        else:
            jobs.job_start(job_id=job.id)
            modeladmin.message_user(
                request, f"{vault.name}: consolidation job {job.pk} queued ({job.selection}).",
                messages.SUCCESS,
            )  # fmt: skip
            return HttpResponseRedirect(reverse("curation:job", args=[job.id]))
    try:
        preview = jobs.consolidation_preview(vault_id=vault.pk)
    except NothingToConsolidate as exc:
        modeladmin.message_user(request, f"{vault.name}: {exc}", messages.WARNING)
        return None
    parts = len(preview["parts"])
    # Keyed as the curate form's script reads them ("mode:urgent"; no urgent choice here).
    estimates = {
        f"{mode}:0": {
            "mode": Mode(chosen).label,
            "cost": money(preview["costs"][chosen == Mode.BATCH]) if preview["costs"] else "",
        }
        for mode in Mode.values
        for chosen in [router.choose_mode(parts, mode)]
    }
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Propose tag consolidation: {vault.name}",
        "opts": modeladmin.model._meta,
        "form": form,
        "vault": vault,
        "tags": len(preview["tags"]),
        "parts": parts,
        "estimate": estimates[f"{form['mode'].value() or Mode.AUTO}:0"],
        "estimate_error": preview["error"],
        "estimates_json": json.dumps(estimates),
        "selected": [vault.pk],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": "consolidate_vault_tags",
    }
    return TemplateResponse(request, "admin/curation/consolidate_tags.html", context)


class CurationVaultAdmin(VaultAdmin):
    # The re-import here replaces ingest's own (the same service, run by a worker).
    actions = [reimport_vaults, export_approved_vaults, preview_export_vaults,
               consolidate_vault_tags]  # fmt: skip
    list_display = [*VaultAdmin.list_display, "watched"]
    readonly_fields = [*VaultAdmin.readonly_fields, "watched"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("watch")

    @admin.display(description="Watched vault")
    def watched(self, vault):
        return watch_link(vault)

    def has_export_permission(self, request) -> bool:
        return can_export(request.user)

    def has_ingest_permission(self, request) -> bool:
        return can_ingest_url(request.user)


class UrlCurateNowForm(UrlIngestForm):
    """The "Add from web address" form for curators: the new note can be curated at once."""

    curate_now = forms.BooleanField(
        label="Curate now",
        required=False,
        help_text="Suggest its tags, description and related notes right away (one real-time "
        "call, full price), and show them on the next page to review.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit = budget_for(None)
        if limit is not None:
            self.fields["curate_now"].help_text += f" Maximum cost {money(limit)}."


class CurationNoteAdmin(NoteAdmin):
    actions = [*NoteAdmin.actions, curate_selected_notes, export_approved_notes,
               preview_export_notes]  # fmt: skip
    change_form_template = "admin/curation/note_change_form.html"

    def has_export_permission(self, request) -> bool:
        return can_export(request.user)

    def has_ingest_permission(self, request) -> bool:
        return can_ingest_url(request.user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_curate": can_curate(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_url_ingest_form(self, request):
        # Only curators get the choice; anyone else's form has no such field to post.
        if can_curate(request.user):
            return UrlCurateNowForm
        return super().get_url_ingest_form(request)

    def response_url_ingest(self, request, note, form):
        """With "Curate now": queue the note's one-note real-time job and open its page."""
        if not form.cleaned_data.get("curate_now"):
            return super().response_url_ingest(request, note, form)
        source = note.frontmatter.get("source")
        try:
            op = note_curate_now(note=note, user=request.user)
        except CurateNowRefused as exc:
            self.message_user(request, f"Added {note.path} from {source}, but it cannot be "
                                       f"curated now: {exc}", messages.WARNING)  # fmt: skip
            return HttpResponseRedirect(reverse("admin:ingest_note_change", args=[note.pk]))
        self.message_user(
            request, f"Added {note.path} from {source}; curating it now.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("curation:curate-now", args=[op.id]))


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

"""An operation's page (live progress, then its result), its JSON, cancel, and the next steps:
"Export these N notes" after a preview, "Re-import the conflicting notes" after an export."""

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from curation import operations
from curation.models import Operation, Suggestion
from curation.roles import can_change_jobs, can_export, can_view
from ingest.models import Vault


def _visible(request, operation_id: int) -> Operation:
    op = get_object_or_404(Operation.objects.select_related("created_by", "job"), id=operation_id)
    if not (can_view(request.user) or op.created_by_id == request.user.pk):
        raise PermissionDenied("You cannot see this operation.")
    return op


def _page_url(op: Operation) -> str:
    return reverse("curation:operation", args=[op.id])


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines, each with its class: file header, hunk, added, removed, context."""
    lines = []
    for index, line in enumerate(diff.splitlines()):
        if index < 2:
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = {"+": "add", "-": "del"}.get(line[:1], "ctx")
        lines.append((kind, line))
    return lines


@require_safe
@staff_member_required
def operation_page(request, operation_id: int):
    op = _visible(request, operation_id)
    result = op.result or {}
    vaults = []
    for vault in result.get("vaults", []):
        files = [
            {"path": path, "lines": diff_lines(diff)} for path, diff in vault.get("diffs", [])
        ]
        hidden = max(0, vault.get("written", 0) - len(files))
        vaults.append({**vault, "files": files, "hidden": hidden})
    context = {
        **admin.site.each_context(request),
        "title": f"{op.get_kind_display()} (operation {op.id})",
        "op": op,
        "result": result,
        "vaults": vaults,
        "to_export": sum(operations.ranges_count(v.get("notes")) for v in result.get("vaults", [])),
        "can_cancel": _may_cancel(request, op),
        "can_export": can_export(request.user),
        "pending": (
            Suggestion.objects.filter(job_id=op.job_id, state=Suggestion.State.PENDING).count()
            if op.job_id
            else 0
        ),
    }
    return TemplateResponse(request, "curation/operation.html", context)


@require_safe
@staff_member_required
def operation_progress(request, operation_id: int):
    _visible(request, operation_id)
    try:
        data = operations.operation_progress(operation_id=operation_id)
    except Operation.DoesNotExist:
        raise Http404("no such operation") from None
    if data["job_id"]:
        data["job_url"] = reverse("curation:job", args=[data["job_id"]])
    response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response


def _may_cancel(request, op: Operation) -> bool:
    user = request.user
    return not op.is_final and (
        user.is_superuser or op.created_by_id == user.pk or can_change_jobs(user)
    )


@require_POST
@staff_member_required
def operation_cancel(request, operation_id: int):
    op = _visible(request, operation_id)
    if not _may_cancel(request, op):
        raise PermissionDenied("You cannot cancel this operation.")
    if operations.operation_cancel(operation_id=op.id):
        messages.success(request, f"Operation {op.id} canceled.")
    else:
        messages.warning(request, f"Operation {op.id} had already ended.")
    return HttpResponseRedirect(_page_url(op))


@require_POST
@staff_member_required
def operation_confirm_export(request, operation_id: int):
    """The preview's "Export these N notes" button: an export of exactly those notes."""
    preview = _visible(request, operation_id)
    if not can_export(request.user):
        raise PermissionDenied("You cannot export.")
    try:
        export = operations.export_confirm(preview=preview, user=request.user)
    except operations.OperationError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(_page_url(preview))
    messages.success(request, f"Export queued: {export.description}.")
    return HttpResponseRedirect(_page_url(export))


@require_POST
@staff_member_required
def operation_reimport_conflicts(request, operation_id: int):
    export = _visible(request, operation_id)
    if not (can_export(request.user) or request.user.has_perm("ingest.change_vault")):
        raise PermissionDenied("You cannot re-import notes.")
    try:
        reimport = operations.reimport_conflicts(export=export, user=request.user)
    except operations.OperationError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(_page_url(export))
    messages.success(request, f"Re-import queued: {reimport.description}.")
    return HttpResponseRedirect(_page_url(reimport))


@require_POST
@staff_member_required
def export_preview_all(request):
    """The dashboard's "Preview the export": every vault, nothing written before confirming."""
    if not can_view(request.user):
        raise PermissionDenied("You cannot preview the export.")
    runs = [{"vault": pk, "notes": None} for pk in Vault.objects.values_list("pk", flat=True)]
    op = operations.operation_create(
        kind=Operation.Kind.PREVIEW,
        user=request.user,
        params={"runs": runs},
        description="preview the export of every vault",
    )
    return HttpResponseRedirect(_page_url(op))

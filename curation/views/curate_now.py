"""Curate now: the button of a note's pages (POST), and the page that shows the suggestions as
they arrive (polling a small JSON), ready to review."""

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST, require_safe

from curation.curate_now import (
    CurateNowRefused,
    PendingSuggestions,
    curate_now_note_id,
    curate_now_status,
    note_curate_now,
)
from curation.models import Operation
from curation.roles import can_curate, can_review, can_view
from curation.templatetags.vaultcms_money import money
from ingest.models import Note


def page_url(operation: Operation) -> str:
    return reverse("curation:curate-now", args=[operation.id])


@require_POST
@staff_member_required
def note_curate(request, note_id: int):
    """The "Curate now" button of a note's pages: queue its one-note real-time job, then show
    the page that follows it.

    A note with suggestions awaiting review gets a page that says so first, with a button to
    curate it again (the new suggestions replace the pending ones) as the curate form offers.
    """
    if not can_curate(request.user):
        raise PermissionDenied("Only curators start curation jobs.")
    note = get_object_or_404(Note.objects.select_related("vault"), pk=note_id)
    try:
        op = note_curate_now(
            note=note, user=request.user, replace_pending=request.POST.get("pending") == "replace"
        )
    except PendingSuggestions as exc:
        context = {
            **admin.site.each_context(request),
            "title": f"Curate {note.path} now",
            "note": note,
            "pending": exc.count,
            "reason": str(exc),
        }
        return TemplateResponse(request, "curation/curate_now_confirm.html", context)
    except CurateNowRefused as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(_back(request, note))
    messages.success(request, f"Curating {note.path} now, in real time.")
    return HttpResponseRedirect(page_url(op))


def _back(request, note: Note) -> str:
    if request.POST.get("from") == "review":
        return reverse("curation:review_note", args=[note.pk])
    return reverse("admin:ingest_note_change", args=[note.pk])


def _visible(request, operation_id: int) -> tuple[Operation, Note]:
    op = get_object_or_404(Operation.objects.select_related("job"), id=operation_id)
    note_id = curate_now_note_id(op)
    if note_id is None:
        raise PermissionDenied("This operation is not a curate-now.")
    if not (can_view(request.user) or op.created_by_id == request.user.pk):
        raise PermissionDenied("You cannot see this curation.")
    return op, get_object_or_404(Note.objects.select_related("vault"), pk=note_id)


def _shown(status: dict) -> dict:
    status["cost_text"] = money(status["cost"]) if status["cost"] else ""
    return status


@require_safe
@staff_member_required
def curate_now_page(request, operation_id: int):
    op, note = _visible(request, operation_id)
    status = _shown(curate_now_status(operation=op))
    here = reverse("curation:curate-now", args=[op.id])
    context = {
        **admin.site.each_context(request),
        "title": f"Curate now: {note.title or note.path}",
        "op": op,
        "note": note,
        "status": status,
        "can_review": can_review(request.user),
        "can_curate": can_curate(request.user),
        "decide_url": reverse("curation:review_decide") + "?" + urlencode({"next": here}),
        "review_url": reverse("curation:review_note", args=[note.pk]),
    }
    return TemplateResponse(request, "curation/curate_now.html", context)


@require_safe
@staff_member_required
def curate_now_progress(request, operation_id: int):
    op, _ = _visible(request, operation_id)
    response = JsonResponse(_shown(curate_now_status(operation=op)))
    response["Cache-Control"] = "no-store"
    return response

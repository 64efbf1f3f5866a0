"""The review lock over POST: the note's page claims it on load, renews it while it is open,
and takes it over once the other moderator's claim has lapsed. Never claimed by a GET."""

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from curation.models import ReviewLock
from curation.review.locks import lock_seconds, note_lock_claim, note_lock_live
from curation.roles import can_review
from ingest.models import Note


def lock_state(lock: ReviewLock | None, user) -> dict:
    """What a review page shows of a lock: whose, until when (with the time zone)."""
    if lock is None or lock.expires_at <= timezone.now():
        return {"held": False, "free": True, "holder": "", "until": "", "expires_at": ""}
    local = timezone.localtime(lock.expires_at)
    return {
        "held": lock.holder_id == user.pk,
        "free": False,
        "holder": lock.holder.get_username(),
        "until": local.strftime("%H:%M:%S %Z"),
        "expires_at": lock.expires_at.isoformat(),
    }


@staff_member_required
@require_POST
def note_lock(request, note_id: int):
    """Claim (or renew, or take over once lapsed) the note's lock.

    The page's script asks for JSON (who holds it, until when); a plain form post (no script)
    returns to the note's page. The one door for claiming: a GET of the page never claims.
    """
    note = get_object_or_404(Note, pk=note_id)
    wants_json = "application/json" in request.headers.get("accept", "")
    if not can_review(request.user):
        if not wants_json:
            raise PermissionDenied("Only moderators claim notes.")
        state = lock_state(note_lock_live(note_id=note.pk), request.user)
        return JsonResponse({**state, "error": "Only moderators review."}, status=403)
    _, lock = note_lock_claim(note_id=note.pk, user=request.user)
    if not wants_json:
        return redirect("curation:review_note", note_id=note.pk)
    response = JsonResponse({**lock_state(lock, request.user), "seconds": lock_seconds()})
    response["Cache-Control"] = "no-store"
    return response

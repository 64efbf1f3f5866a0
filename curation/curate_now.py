"""Curate now: one note curated in real time while its person waits, and what its page shows.

A one-note job through the router (`choose_mode(1)`: sync, the real-time Messages API), made
and run by the workers as any admin curation is (an `Operation` of kind curate, then the job's
own task), so no API call is made in the web request: the estimate, the per-job budget and the
job itself all happen on a worker. `curate_now_status` is what the page polls: the job's
state, its suggestions for the note as soon as they are stored, and the reason of a failure.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from curation import operations
from curation.models import ALL_FIELDS, Field, Item, Job, Mode, Operation, Suggestion
from curation.review.locks import lock_of_other
from ingest.models import Note

SELECTION = "curate now"


class CurateNowRefused(Exception):
    """The note cannot be curated now; the message says why, for the person who asked."""


class PendingSuggestions(CurateNowRefused):
    """The note already has suggestions awaiting review: curate it again only if asked to."""

    def __init__(self, message: str, *, count: int):
        super().__init__(message)
        self.count = count


def note_pending_count(*, note_id: int) -> int:
    return Suggestion.objects.filter(note_id=note_id, state=Suggestion.State.PENDING).count()


def note_curate_now(*, note: Note, user, replace_pending: bool = False) -> Operation:
    """Queue a one-note real-time curation of `note`; returns the Operation the page follows.

    Refused (CurateNowRefused, with the reason) when the note cannot be curated (skipped or
    missing), when another moderator holds its review lock (new suggestions would replace the
    ones under their eyes), and, unless `replace_pending`, when it has suggestions awaiting
    review (PendingSuggestions). The budget is the per-job default (CURATION_MAX_JOB_COST),
    checked by the worker against the job's estimate before anything is sent.
    """
    if note.state != Note.State.OK:
        why = f": {note.reason}" if note.reason else ""
        raise CurateNowRefused(f"{note.path} is {note.get_state_display().lower()}{why}; "
                               "it cannot be curated.")  # fmt: skip
    lock = lock_of_other(note.pk, user)
    if lock is not None:
        raise CurateNowRefused(
            f"{lock.holder.get_username()} is reviewing {note.path} until "
            f"{timezone.localtime(lock.expires_at):%H:%M:%S %Z}; curate it once they are done."
        )
    pending = note_pending_count(note_id=note.pk)
    if pending and not replace_pending:
        raise PendingSuggestions(
            f"{note.path} already has {pending} suggestion{'s' if pending != 1 else ''} "
            "awaiting review.",
            count=pending,
        )
    return operations.operation_create(
        kind=Operation.Kind.CURATE,
        user=user,
        params={
            "notes": operations.selection_of(Note.objects.filter(pk=note.pk)),
            "note": note.pk,
            "fields": list(ALL_FIELDS),
            "mode": Mode.AUTO,  # the router: one note -> sync, the real-time API
            "urgent": False,
            # "skip" when not asked to replace: suggestions that arrive meanwhile are kept.
            "pending": "replace" if replace_pending else "skip",
            "selection": SELECTION,
            "max_cost": None,
            "curate_now": True,
        },
        description=f"curate now: {note.path}",
        total=1,
    )


def curate_now_note_id(operation: Operation) -> int | None:
    note_id = (operation.params or {}).get("note")
    return int(note_id) if operation.params.get("curate_now") and note_id else None


def _value_of(suggestion: Suggestion) -> dict:
    value = suggestion.value
    if suggestion.field in (Field.TAGS, Field.RELATED) and isinstance(value, list):
        return {"values": [str(v) for v in value], "text": ""}
    return {"values": [], "text": "" if value is None else str(value)}


def _failure(job: Job) -> str:
    """Why a one-note job did not end with suggestions: the job's reason, else its item's."""
    if job.error:
        return job.error + (f" (request-id {job.request_id})" if job.request_id else "")
    item = job.items.filter(~Q(error="")).order_by("-updated_at").first()
    if item is not None and item.state in (Item.State.FAILED, Item.State.CANCELED):
        return item.error
    return ""


def curate_now_status(*, operation: Operation) -> dict:
    """What the curate-now page shows and polls: where the one-note job is, its suggestions for
    the note (as soon as they are stored) and, when it ended without them, why."""
    note_id = curate_now_note_id(operation)
    job = operation.job
    data = {
        "operation": operation.id,
        "note_id": note_id,
        "job_id": job.id if job else None,
        "mode": job.mode if job else "",
        "cost": str(job.cost) if job and job.is_final else "",
        "error": "",
        "suggestions": [],
    }
    if job is None:
        if operation.state == Operation.State.FAILED:
            data.update(state="failed", state_label="Refused", final=True, error=operation.error)
        elif operation.state == Operation.State.CANCELED:
            data.update(state="canceled", state_label="Canceled", final=True)
        elif operation.state == Operation.State.RUNNING:
            data.update(state="queued", state_label="Estimating the cost", final=False)
        else:
            data.update(state="queued", state_label="Queued for a worker", final=False)
        return data
    data.update(state=job.state, state_label=job.get_state_display(), final=job.is_final)
    if job.state == Job.State.PENDING:
        data["state_label"] = "Queued for a worker"
    elif job.state == Job.State.RUNNING:
        data["state_label"] = "Asking the model"
    suggestions = Suggestion.objects.filter(job=job, note_id=note_id).order_by("id")
    field_order = {f: i for i, f in enumerate(ALL_FIELDS)}
    labels = dict(Field.choices)
    data["suggestions"] = sorted(
        (
            {
                "id": s.id,
                "field": s.field,
                "field_label": labels.get(s.field, s.field),
                "state": s.state,
                "state_label": s.get_state_display(),
                **_value_of(s),
            }
            for s in suggestions
        ),
        key=lambda s: field_order.get(s["field"], len(field_order)),
    )
    if job.is_final and job.state != Job.State.SUCCEEDED:
        data["error"] = _failure(job)
    return data

"""Review services: what moderators decided, and the values those decisions say to export."""

from collections.abc import Iterable

from curation.models import Review


def approved_values(*, note_ids: Iterable[int] | None = None) -> dict[int, dict[str, dict]]:
    """For each note, per field, the decided value to export and the Review it comes from.

    Returns {note_id: {field: {"value": ..., "review_id": ..., "exported": bool}}}.

    The newest approving Review of a (note, field) wins, except that a human edit is never
    replaced by a later plain approval of a machine suggestion: only a newer edit replaces it.
    A rejection after an approval withdraws that approval for the same suggestion.
    Values: tags -> list of tags to add; description -> str; related -> list of note paths.
    """
    reviews = Review.objects.select_related("suggestion").order_by("decided_at", "id")
    if note_ids is not None:
        reviews = reviews.filter(suggestion__note_id__in=list(note_ids))
    latest_per_suggestion: dict[int, Review] = {}
    for review in reviews.iterator(chunk_size=2000):
        latest_per_suggestion[review.suggestion_id] = review

    result: dict[int, dict[str, dict]] = {}
    for review in sorted(latest_per_suggestion.values(), key=lambda r: (r.decided_at, r.id)):
        if review.decision == Review.Decision.REJECTED:
            continue
        suggestion = review.suggestion
        fields = result.setdefault(suggestion.note_id, {})
        current = fields.get(suggestion.field)
        if (
            current is not None
            and current["decision"] == Review.Decision.EDITED
            and review.decision != Review.Decision.EDITED
        ):
            continue
        fields[suggestion.field] = {
            "value": review.value,
            "review_id": review.id,
            "decision": review.decision,
            "exported": review.exported_at is not None,
        }
    return result

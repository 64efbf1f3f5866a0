"""Tag consolidation, the review side: decide a proposed merge (curation.engine.consolidation
runs the job that proposes them). An approved merge becomes a TagRename, which export applies
to every note carrying the tag (bodies untouched).
"""

from django.db import transaction
from django.utils import timezone

from curation.models import TagConsolidation
from curation.review.decisions import ReviewError, ReviewForbidden
from curation.review.taxonomy import tag_rename
from curation.roles import can_review


def consolidation_decide(*, consolidation_id: int, user, decision: str) -> TagConsolidation:
    """Approve (a TagRename is recorded, by this user) or reject one proposed merge; the first
    moderator to decide wins."""
    if not can_review(user):
        raise ReviewForbidden("Only moderators decide tag consolidations.")
    if decision not in (TagConsolidation.State.APPROVED, TagConsolidation.State.REJECTED):
        raise ReviewError(f"Unknown decision {decision!r}.")
    with transaction.atomic():
        moved = TagConsolidation.objects.filter(
            pk=consolidation_id, state=TagConsolidation.State.PENDING
        ).update(state=decision, decided_by=user, decided_at=timezone.now())
        proposal = TagConsolidation.objects.select_related("decided_by").get(pk=consolidation_id)
        if moved != 1:
            who = proposal.decided_by.get_username() if proposal.decided_by else "someone"
            raise ReviewError(f"{who} already decided {proposal}; your decision was not saved.")
        if decision == TagConsolidation.State.APPROVED:
            proposal.rename = tag_rename(
                vault_id=proposal.vault_id, old=proposal.old, new=proposal.new, user=user
            )
            proposal.save(update_fields=["rename"])
    return proposal

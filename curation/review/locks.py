"""Review locks: one moderator at a time works on a note's suggestions."""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from curation.models import ReviewLock


class LockUnavailable(Exception):
    """The lock could not be claimed after several tries (it kept changing hands)."""



def lock_seconds() -> int:
    return int(settings.REVIEW_LOCK_SECONDS)


def note_lock_claim(*, note_id: int, user, seconds: int | None = None) -> tuple[bool, ReviewLock]:
    """Claim (or renew) the review lock of a note; returns (claimed, the lock as it stands).

    A conditional UPDATE takes an expired lock or renews one's own; otherwise a unique
    INSERT takes a free note. If both fail, someone else holds it and the lock says who.
    """
    for _ in range(3):
        now = timezone.now()
        expires = now + timedelta(seconds=seconds if seconds is not None else lock_seconds())
        taken = (
            ReviewLock.objects.filter(note_id=note_id)
            .filter(Q(holder_id=user.pk) | Q(expires_at__lte=now))
            .update(holder_id=user.pk, claimed_at=now, expires_at=expires)
        )
        if not taken:
            try:
                with transaction.atomic():
                    ReviewLock.objects.create(
                        note_id=note_id, holder_id=user.pk, claimed_at=now, expires_at=expires
                    )
            except IntegrityError:
                pass
        lock = ReviewLock.objects.select_related("holder").filter(note_id=note_id).first()
        if lock is not None:  # None: released between our two statements; try again
            return lock.holder_id == user.pk, lock
    raise LockUnavailable("Could not claim the review lock; try again.")


def note_lock_release(*, note_id: int, user) -> bool:
    return ReviewLock.objects.filter(note_id=note_id, holder_id=user.pk).delete()[0] > 0


def note_lock_live(*, note_id: int) -> ReviewLock | None:
    return (
        ReviewLock.objects.filter(note_id=note_id, expires_at__gt=timezone.now())
        .select_related("holder")
        .first()
    )




def lock_of_other(note_id: int, user) -> ReviewLock | None:
    return (
        ReviewLock.objects.filter(note_id=note_id, expires_at__gt=timezone.now())
        .exclude(holder_id=user.pk)
        .select_related("holder")
        .first()
    )

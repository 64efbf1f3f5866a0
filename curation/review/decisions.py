"""Moderators' decisions on suggestions: one at a time, in bulk, and what they approved.

The machine's Suggestion and the human Review are separate rows and neither is overwritten.
A decision is a conditional UPDATE on the suggestion's state (`WHERE state=<what the moderator
saw>`), so two moderators deciding at once cannot both win.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from curation import sql
from curation.models import Field, Review, ReviewLock, Suggestion
from curation.review.locks import lock_of_other
from curation.review.stale import stale_q
from curation.roles import can_review
from ingest.models import Note, own_description_q
from ingest.notes import tag_clean

MAX_DESCRIPTION = 500


class ReviewError(Exception):
    """A decision that could not be made; the message is shown to the moderator as is."""


class ReviewForbidden(ReviewError):
    pass


class ReviewLocked(ReviewError):
    def __init__(self, message: str, *, lock: ReviewLock):
        super().__init__(message)
        self.lock = lock


class ReviewStale(ReviewError):
    """Approving a suggestion made for other text needs an explicit confirmation."""


class ReviewConflict(ReviewError):
    """Someone decided first (or the suggestion was superseded); `review` is their decision."""

    def __init__(self, message: str, *, suggestion: Suggestion, review: Review | None):
        super().__init__(message)
        self.suggestion = suggestion
        self.review = review


# --- Values --------------------------------------------------------------------------


def value_clean(*, field: str, value, note: Note | None = None):
    """A moderator's edited value in the field's convention; InvalidValue-style ReviewError if not."""
    if field == Field.TAGS:
        raw = value.replace(",", "\n").split() if isinstance(value, str) else list(value or [])
        tags: dict[str, None] = {}
        for tag in raw:
            cleaned = tag_clean(tag)
            if any(ch.isspace() for ch in cleaned):
                raise ReviewError(f"A tag cannot contain spaces: {cleaned!r}.")
            if cleaned:
                tags.setdefault(cleaned, None)
        return list(tags)
    if field == Field.DESCRIPTION:
        if not isinstance(value, str):
            raise ReviewError("A description must be text.")
        text = " ".join(value.split())
        if len(text) > MAX_DESCRIPTION:
            raise ReviewError(f"A description is one line of at most {MAX_DESCRIPTION} characters.")
        return text
    if field == Field.RELATED:
        raw = value.splitlines() if isinstance(value, str) else list(value or [])
        paths: dict[str, None] = {}
        for item in raw:
            path = str(item).strip().removeprefix("[[").removesuffix("]]").strip()
            if path:
                paths.setdefault(path, None)
        related = list(paths)
        if note is not None and related:
            existing = set(
                Note.objects.filter(vault_id=note.vault_id, path__in=related).values_list(
                    "path", flat=True
                )
            )
            unknown = [p for p in related if p not in existing]
            if unknown:
                raise ReviewError(f"No such note in this vault: {', '.join(unknown)}.")
            if note.path in related:
                raise ReviewError("A note cannot be related to itself.")
        return related
    raise ReviewError(f"Unknown field {field!r}.")


MAX_TYPED_WORDS = 200


def typed_paths(*, vault_id: int, text: str) -> list[str]:
    """The notes a moderator typed into "Add notes": paths, with or without `.md` and `[[ ]]`,
    several in one line. Note names hold spaces, so the words are read left to right as the
    longest path of this vault they spell (`Gardening Note 00.md Sourdough` is two notes); a run
    of words that spells none comes back as typed, for value_clean to report by name."""
    tokens = text.split()[:MAX_TYPED_WORDS]
    if not tokens:
        return []

    def bare(words: list[str]) -> str:
        return " ".join(words).rstrip(",;").strip().removeprefix("[[").removesuffix("]]").strip()

    starts = {bare(tokens[i : i + 1]) for i in range(len(tokens))} - {""}
    known: set[str] = set()
    if starts:
        q = Q()
        for start in starts:
            q |= Q(path__startswith=start)
        known = set(Note.objects.filter(q, vault_id=vault_id).values_list("path", flat=True))
    found: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(tokens):
        for j in range(len(tokens), i, -1):  # the longest run that names a note
            name = bare(tokens[i:j])
            path = name if name in known else f"{name}.md" if f"{name}.md" in known else None
            if path is not None:
                break
        if path is None:
            unknown.append(tokens[i])
            i += 1
            continue
        if unknown:
            found.append(" ".join(unknown))
            unknown = []
        found.append(path)
        i = j
    if unknown:
        found.append(" ".join(unknown))
    return found


def note_value(note: Note, field: str):
    """The note's value of a field as it is now (the `before` of a decision)."""
    if field == Field.TAGS:
        return list(note.tags or [])
    frontmatter = note.frontmatter if isinstance(note.frontmatter, dict) else {}
    return frontmatter.get(field)


# --- Deciding one suggestion ---------------------------------------------------------


def _conflict(suggestion_id: int, attempted: str) -> ReviewConflict:
    suggestion = Suggestion.objects.select_related("note").get(pk=suggestion_id)
    review = suggestion.reviews.select_related("reviewer").first()
    if suggestion.state == Suggestion.State.SUPERSEDED:
        message = (
            "This suggestion was superseded: a moderator's edit or a newer suggestion now "
            f"decides {suggestion.field} of {suggestion.note}. Your decision ({attempted}) "
            "was not saved."
        )
    elif review is not None:
        who = review.reviewer.get_username() if review.reviewer else "someone"
        when = timezone.localtime(review.decided_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        message = (
            f"{who} already decided this suggestion ({review.get_decision_display().lower()}"
            f" at {when}). Your decision ({attempted}) was not saved; theirs stands."
        )
    else:
        message = (
            f"This suggestion is now {suggestion.get_state_display().lower()}. "
            f"Your decision ({attempted}) was not saved."
        )
    return ReviewConflict(message, suggestion=suggestion, review=review)


def suggestion_decide(
    *,
    suggestion_id: int,
    user,
    decision: str,
    value=None,
    comment: str = "",
    expected_state: str = Suggestion.State.PENDING,
    confirm_stale: bool = False,
) -> Review:
    """Record one moderator's decision as a new Review and move the suggestion's state.

    `expected_state` is the state the moderator saw: the state changes only if it still is
    that (a conditional UPDATE), so a second moderator gets ReviewConflict, never a silent
    overwrite. An edit whose value equals the suggestion is an approval; an edit keeping
    nothing (no tags, no related notes) is a rejection, which keeps the empty related list
    it was (every related note unticked: each pair removed, see related_removals). A plain
    approval cannot replace a human edit of the same note and field; such a suggestion is
    superseded instead.
    A suggestion made for other text (stale) is approved only with `confirm_stale`, and the
    Review records it; the Review also records the note's hash, the text decided on.
    A decision on one suggestion is made seeing the note's value beside it (the review page's
    "Now:", the queue's "Now" column): one replacing the description the person wrote
    (Note.own_description) records `replaces_own`, which export requires to write over it.
    """
    if not can_review(user):
        raise ReviewForbidden("Only moderators can decide suggestions.")
    try:
        decision = Review.Decision(decision)
    except ValueError:
        raise ReviewError(f"Unknown decision {decision!r}.") from None
    suggestion = Suggestion.objects.select_related("note").filter(pk=suggestion_id).first()
    if suggestion is None:
        raise ReviewError(f"No suggestion {suggestion_id}.")
    note = suggestion.note
    lock = lock_of_other(note.pk, user)
    if lock is not None:
        raise ReviewLocked(
            f"{lock.holder.get_username()} is reviewing {note} until "
            f"{timezone.localtime(lock.expires_at):%H:%M:%S %Z}; try again later.",
            lock=lock,
        )

    if decision == Review.Decision.EDITED:
        value = value_clean(field=suggestion.field, value=value, note=note)
        try:
            suggested = value_clean(field=suggestion.field, value=suggestion.value)
        except ReviewError:  # a malformed machine value: the edit simply replaces it
            suggested = None
        if value in ([], ""):
            kept = [] if suggestion.field == Field.RELATED else None
            decision, value = Review.Decision.REJECTED, kept
        elif value == suggested:
            decision, value = Review.Decision.APPROVED, suggestion.value
    elif decision == Review.Decision.APPROVED:
        value = suggestion.value
    else:
        value = None

    stale = suggestion.is_stale
    if decision == Review.Decision.APPROVED and stale and not confirm_stale:
        raise ReviewStale(
            f"This suggestion was made for other text: {note} changed since. Look at what "
            "changed and confirm to approve it for the text as it is now."
        )

    own = note.own_description() if suggestion.field == Field.DESCRIPTION else None
    replaces_own = (
        own is not None
        and decision != Review.Decision.REJECTED
        and " ".join(str(value).split()) != own
    )

    if decision == Review.Decision.APPROVED:
        edited = Suggestion.objects.filter(
            note_id=note.pk, field=suggestion.field, state=Suggestion.State.EDITED
        ).exclude(pk=suggestion.pk)
        if edited.exists():
            # The human's edit wins: this machine value can never replace it.
            Suggestion.objects.filter(pk=suggestion.pk, state=Suggestion.State.PENDING).update(
                state=Suggestion.State.SUPERSEDED
            )
            raise ReviewConflict(
                f"A moderator's edit already decides {suggestion.field} of {note}; this "
                "suggestion cannot be approved over it. Edit the field to change its value.",
                suggestion=suggestion,
                review=Review.objects.filter(suggestion__in=edited).first(),
            )

    with transaction.atomic():
        moved = Suggestion.objects.filter(pk=suggestion.pk, state=expected_state).update(
            state=decision.value
        )
        if moved != 1:
            raise _conflict(suggestion.pk, decision.label.lower())
        review = Review.objects.create(
            suggestion=suggestion,
            decision=decision,
            value=value,
            before=note_value(note, suggestion.field),
            reviewer=user,
            comment=comment.strip(),
            note_hash=note.content_hash,
            stale_confirmed=stale and decision == Review.Decision.APPROVED,
            replaces_own=replaces_own,
        )
        if decision == Review.Decision.EDITED:
            # The human's value now decides this field: older machine suggestions lose.
            Suggestion.objects.filter(
                note_id=note.pk, field=suggestion.field, state=Suggestion.State.PENDING
            ).update(state=Suggestion.State.SUPERSEDED)
    return review


# --- Deciding many at once -----------------------------------------------------------


@dataclass
class BulkResult:
    decided: int = 0
    superseded: int = 0
    locked: int = 0
    stale: int = 0
    own: int = 0

    def summary(self, decision: str) -> str:
        verb = Review.Decision(decision).label.lower()
        line = (
            f"{verb} {self.decided} suggestion(s); {self.superseded} superseded by a human edit "
            f"or a newer suggestion; {self.locked} skipped (note locked by another moderator)"
        )
        if self.stale:
            line += f"; {self.stale} stale skipped (made for other text: confirm one by one)"
        if self.own:
            line += (
                f"; {self.own} kept: the note's own description (to replace it, approve it "
                "alone, on the note's review page)"
            )
        return line


def suggestions_supersede(
    *, queryset: QuerySet | None = None, note_ids: list[int] | None = None
) -> int:
    """Mark pending suggestions superseded where a human edit or a newer suggestion decides.

    With `queryset`, only the notes its suggestions belong to are looked at; with `note_ids`,
    only those notes. The job engine calls this (with `note_ids`) after storing a job's
    suggestions; the review queue and bulk decisions call it too, so a stale machine value
    never reaches a note over a human's.
    """
    if note_ids is not None and connection.vendor == "postgresql":
        # The same rule, in a statement whose plan does not hang on table statistics.
        return sql.suggestions_supersede_notes(note_ids=note_ids)
    if note_ids is not None:
        return _supersede_notes_by_index(note_ids=note_ids)
    pending = Suggestion.objects.filter(state=Suggestion.State.PENDING)
    if queryset is not None:
        pending = pending.filter(note_id__in=queryset.values("note_id"))
    if note_ids is not None:
        pending = pending.filter(note_id__in=note_ids)
    same_field = Suggestion.objects.filter(note_id=OuterRef("note_id"), field=OuterRef("field"))
    return pending.filter(
        Exists(same_field.filter(state=Suggestion.State.EDITED))
        | Exists(same_field.filter(pk__gt=OuterRef("pk")))
    ).update(state=Suggestion.State.SUPERSEDED)


def _supersede_notes_by_index(*, note_ids: list[int]) -> int:
    """suggestions_supersede for `note_ids` (SQLite): the notes' suggestions read by the note
    index and the rule applied here. The EXISTS form's `state = 'pending'` sends SQLite's
    planner through the state index, every pending suggestion of every job once per chunk:
    bench/batch_bench.py "apply results" spent 28 ms a chunk there at 100,000 items, 70% of
    its time. Call it in a transaction (the engine does): the UPDATE still checks the state."""
    rows = Suggestion.objects.filter(note_id__in=sorted(set(note_ids))).values_list(
        "id", "note_id", "field", "state"
    )
    newest: dict[tuple[int, str], int] = {}
    edited: set[tuple[int, str]] = set()
    pending = []
    for pk, note_id, field, state in rows:
        key = (note_id, field)
        newest[key] = max(newest.get(key, pk), pk)
        if state == Suggestion.State.EDITED:
            edited.add(key)
        elif state == Suggestion.State.PENDING:
            pending.append((pk, key))
    ids = [pk for pk, key in pending if key in edited or pk < newest[key]]
    return sum(
        Suggestion.objects.filter(
            id__in=ids[start : start + 500], state=Suggestion.State.PENDING
        ).update(state=Suggestion.State.SUPERSEDED)
        for start in range(0, len(ids), 500)
    )


def suggestions_decide(*, queryset: QuerySet, user, decision: str, comment: str = "") -> BulkResult:
    """Approve or reject every pending suggestion of `queryset` in a fixed number of queries.

    One Review per suggestion is inserted with INSERT ... SELECT and the states are moved
    with one UPDATE, so 10 or 100,000 suggestions cost the same number of queries. Human
    edits win (those suggestions are superseded, not approved); notes another moderator has
    locked are skipped; approval skips stale suggestions (made for other text), which need a
    confirmation one at a time, and descriptions that would replace the one the person wrote
    (left pending, counted): only a decision on that one suggestion replaces that.
    """
    if not can_review(user):
        raise ReviewForbidden("Only moderators can decide suggestions.")
    try:
        decision = Review.Decision(decision)
    except ValueError:
        raise ReviewError(f"Unknown decision {decision!r}.") from None
    if decision == Review.Decision.EDITED:
        raise ReviewError("Edits are made one field at a time, on the note's review page.")

    now = timezone.now()
    result = BulkResult()
    with transaction.atomic():
        result.superseded = suggestions_supersede(queryset=queryset)
        locked_notes = (
            ReviewLock.objects.filter(expires_at__gt=now)
            .exclude(holder_id=user.pk)
            .values("note_id")
        )
        targets = Suggestion.objects.filter(
            pk__in=queryset.values("pk"), state=Suggestion.State.PENDING
        )
        result.locked = targets.filter(note_id__in=locked_notes).count()
        targets = targets.exclude(note_id__in=locked_notes)
        if decision == Review.Decision.APPROVED:
            stale = targets.filter(stale_q())
            result.stale = stale.count()
            targets = targets.exclude(pk__in=stale.values("pk"))
            own = targets.filter(
                field=Field.DESCRIPTION,
                note_id__in=Note.objects.filter(own_description_q(), id__in=targets.values("note_id"))
                .values("id"),
            )  # fmt: skip
            result.own = own.count()
            targets = targets.exclude(pk__in=own.values("pk"))

        inserted, result.decided = sql.reviews_record_bulk(
            suggestions=targets,
            decision=decision.value,
            approved=decision == Review.Decision.APPROVED,
            reviewer_id=user.pk,
            now=now,
            comment=comment.strip(),
        )
        if inserted != result.decided:
            raise ReviewError("The suggestions changed while deciding them; nothing was saved.")
    return result


# --- What was approved --------------------------------------------------------------


def _latest_decisions(reviews: QuerySet, *, note_ids) -> list[Review]:
    """The newest of `reviews` for each suggestion (of `note_ids`: ids, a subquery of them, or
    None for all), oldest decision first."""
    if isinstance(note_ids, QuerySet):  # a subquery: no limit on how many notes it names
        reviews = reviews.filter(suggestion__note_id__in=note_ids)
    elif note_ids is not None:
        reviews = reviews.filter(suggestion__note_id__in=list(note_ids))
    latest: dict[int, Review] = {}
    for review in reviews.order_by("decided_at", "id").iterator(chunk_size=2000):
        latest[review.suggestion_id] = review
    return sorted(latest.values(), key=lambda r: (r.decided_at, r.id))


def approved_values(
    *, note_ids: Iterable[int] | None = None, held: list[tuple[int, str]] | None = None
) -> dict[int, dict[str, dict]]:
    """For each note, per field, the decided value to export and the Review it comes from.

    Returns {note_id: {field: {"value": ..., "review_id": ..., "decision": ..., "exported": bool,
    "suggestion_id": ..., "replaces_own": bool}}}.

    The newest approving Review of a (note, field) wins, except that a human edit is never
    replaced by a later plain approval of a machine suggestion: only a newer edit replaces it.
    A rejection after an approval withdraws that approval for the same suggestion.
    A decision made for other text than the note's now (the note changed outside the app
    since) is left out, unless it was confirmed for the text as it is now.
    Values: tags -> list of tags to add; description -> str; related -> list of note paths.
    Tag renames and merges are TagRename rows, applied by export on top of these values.
    `held`, when given, receives (note id, field) of each approval not yet exported that is
    left out because its note changed since.
    """
    reviews = Review.objects.select_related("suggestion").annotate(
        current_hash=F("suggestion__note__content_hash")
    )
    result: dict[int, dict[str, dict]] = {}
    for review in _latest_decisions(reviews, note_ids=note_ids):
        if review.decision == Review.Decision.REJECTED:
            continue
        suggestion = review.suggestion
        if not _decided_for_current_text(review):
            if held is not None and review.exported_at is None:
                held.append((suggestion.note_id, suggestion.field))
            continue
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
            "suggestion_id": suggestion.id,
            "replaces_own": review.replaces_own,
        }
    return result


def related_removals(*, note_ids: Iterable[int] | None = None) -> dict[int, dict[str, Review]]:
    """Per note, the related notes a moderator removed from its suggestion, each with the Review
    that removed it: {note_id: {path: Review}}. Export writes such a pair on neither note,
    even where the other note's approved suggestion proposes it.

    A removal is an explicit untick: what a moderator's edit of the note's related suggestion
    leaves out of the suggested list (all of it when nothing was kept). Rejecting the whole
    suggestion removes nothing: it declines this note's list (often in bulk), not each pair,
    so the other note's approved link to it is still written on both.
    The removal holds until a later decision on the same note keeps the pair again (an edit
    keeping it, an approval of a newer suggestion proposing it); the other note's approval
    does not lift it. The newest decision of each suggestion counts, made for any text.
    """
    reviews = Review.objects.filter(suggestion__field=Field.RELATED).select_related(
        "suggestion", "reviewer"
    )
    removed: dict[int, dict[str, Review]] = {}
    for review in _latest_decisions(reviews, note_ids=note_ids):
        if review.decision == Review.Decision.REJECTED and review.value is None:
            continue  # the whole list declined
        kept = value_clean(field=Field.RELATED, value=review.value)
        gone = removed.setdefault(review.suggestion.note_id, {})
        for path in kept:
            gone.pop(path, None)
        if review.decision != Review.Decision.APPROVED:  # an edit: what it left out
            try:
                suggested = value_clean(field=Field.RELATED, value=review.suggestion.value)
            except ReviewError:
                suggested = []
            gone.update((path, review) for path in suggested if path not in kept)
    return {note_id: gone for note_id, gone in removed.items() if gone}


def related_removed_by_partners(*, note: Note, paths: Iterable[str]) -> dict[str, Review]:
    """Of `paths` (notes suggested as related to `note`), those whose moderator removed `note`
    from their own related suggestion: {path: the Review that removed it}."""
    partners = dict(
        Note.objects.filter(vault_id=note.vault_id, path__in=set(paths)).values_list("id", "path")
    )
    if not partners:
        return {}
    return {
        partners[partner_id]: gone[note.path]
        for partner_id, gone in related_removals(note_ids=list(partners)).items()
        if note.path in gone
    }


def _decided_for_current_text(review: Review) -> bool:
    """The decision is for the note's text as it is now ("" hashes: from before hashes were
    kept). An approval of a suggestion made for other text counts only if confirmed."""
    decided_for = review.note_hash or review.suggestion.note_hash
    if decided_for and decided_for != review.current_hash:
        return False
    made_for = review.suggestion.note_hash
    return (
        review.decision == Review.Decision.EDITED
        or review.stale_confirmed
        or not made_for
        or made_for == decided_for
    )


def pending_count_for(user) -> int | None:
    """How many suggestions await this user's review; None when the user cannot review."""
    if not can_review(user):
        return None
    locked_by_others = ReviewLock.objects.filter(expires_at__gt=timezone.now()).exclude(
        holder_id=user.pk
    )
    return (
        Suggestion.objects.filter(state=Suggestion.State.PENDING)
        .exclude(note_id__in=locked_by_others.values("note_id"))
        .count()
    )

"""Stale suggestions: made for note text that has since changed outside the app.

A suggestion records the content hash of the note it was made for (`Suggestion.note_hash`,
from the item, taken when the job was made). Our own exports carry that hash forward
(`note_hashes_carry`), so only an edit on disk followed by a re-import makes a suggestion stale.
The text at suggestion time is kept once per (note, hash) in NoteVersion, to show what changed.
"""

import difflib

from django.db.models import Exists, F, OuterRef, Q, QuerySet

from curation import sql
from curation.models import Item, NoteVersion, Review, Suggestion

MAX_DIFF_LINES = 400  # a page stays readable; the whole texts are in NoteVersion and the file


def stale_q(prefix: str = "") -> Q:
    """Suggestions made for other text: a hash was recorded and the note's is now different."""
    return ~Q(**{f"{prefix}note_hash": ""}) & ~Q(
        **{f"{prefix}note_hash": F(f"{prefix}note__content_hash")}
    )


def stale_suggestions(queryset: QuerySet | None = None) -> QuerySet:
    qs = Suggestion.objects.all() if queryset is None else queryset
    return qs.filter(stale_q())


def stale_note_ids(*, vault_id: int | None = None) -> QuerySet:
    """Notes whose latest suggestion for some field was made for other text, whatever became
    of it (pending, approved, exported, rejected): the note changed outside the app since."""
    newer = Suggestion.objects.filter(
        note_id=OuterRef("note_id"), field=OuterRef("field"), pk__gt=OuterRef("pk")
    )
    qs = stale_suggestions().exclude(Exists(newer))
    if vault_id is not None:
        qs = qs.filter(note__vault_id=vault_id)
    return qs.values("note_id").distinct()


def note_versions_keep(*, note_ids: list[int]) -> None:
    """Keep the current text of these notes (once per content hash), then drop what is no
    longer needed."""
    sql.note_versions_insert(note_ids)
    note_versions_prune(note_ids=note_ids)


def note_versions_prune(*, note_ids: list[int]) -> int:
    """Drop kept texts nobody needs: not the note's current text, and no open or approved
    suggestion was made for it. What is kept stays bounded by the notes and their open stale suggestions."""
    needed = Suggestion.objects.filter(
        note_id=OuterRef("note_id"),
        item__note_hash=OuterRef("content_hash"),
        state__in=[Suggestion.State.PENDING, Suggestion.State.APPROVED, Suggestion.State.EDITED],
    )
    return (
        NoteVersion.objects.filter(note_id__in=note_ids)
        .exclude(content_hash=F("note__content_hash"))
        .exclude(Exists(needed))
        .delete()[0]
    )


def note_text(frontmatter_raw: str, body: str) -> str:
    head = f"---\n{frontmatter_raw}\n---\n" if frontmatter_raw else ""
    return head + (body or "")


def stale_diff(suggestion: Suggestion) -> str | None:
    """A unified diff from the text the suggestion was made for to the note's text now.

    None when that text was not kept (a suggestion older than this feature).
    """
    note = suggestion.note
    version = NoteVersion.objects.filter(note=note, content_hash=suggestion.note_hash).first()
    if version is None:
        item_hash = Item.objects.filter(pk=suggestion.item_id).values_list("note_hash", flat=True)
        version = NoteVersion.objects.filter(note=note, content_hash__in=item_hash).first()
    if version is None:
        return None
    old = note_text(version.frontmatter_raw, version.body)
    new = note_text(note.frontmatter_raw, note.body)
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            "when suggested",
            "now",
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def note_hashes_carry(*, note_id: int, old_hash: str, new_hash: str) -> None:
    """Our own write changed the note from old_hash to new_hash: what was current stays so."""
    Suggestion.objects.filter(note_id=note_id, note_hash=old_hash).update(note_hash=new_hash)
    Review.objects.filter(suggestion__note_id=note_id, note_hash=old_hash).update(
        note_hash=new_hash
    )

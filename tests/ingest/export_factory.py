"""Building approved reviews straight through the ORM, for the export tests."""

import itertools

from curation.models import Field, Item, Job, Review, Suggestion, TagRename
from ingest.models import Note

_ids = itertools.count(1)


def approve(note: Note, field: str, value, *, decision=Review.Decision.APPROVED) -> Review:
    """One job/item/suggestion for `note` and a Review deciding it (the value to export)."""
    job = Job.objects.create(vault=note.vault, fields=[field], model="test-model")
    item = Item.objects.create(
        job=job, note=note, custom_id=f"t{next(_ids)}", state=Item.State.SUCCEEDED
    )
    state = (
        Suggestion.State.EDITED
        if decision == Review.Decision.EDITED
        else Suggestion.State.APPROVED
    )
    suggestion = Suggestion.objects.create(
        item=item, note=note, job=job, field=field, value=value, model="test-model", state=state
    )
    # A decision made on purpose: a description is written over the note's own one too, as
    # when a moderator decides it on the note's review page (bulk approval never does).
    return Review.objects.create(
        suggestion=suggestion, decision=decision, value=value,
        replaces_own=field == Field.DESCRIPTION,
    )  # fmt: skip


def approve_tags(note: Note, tags: list[str]) -> Review:
    return approve(note, Field.TAGS, tags)


def approve_description(note: Note, text: str) -> Review:
    return approve(note, Field.DESCRIPTION, text)


def approve_related(note: Note, paths: list[str]) -> Review:
    return approve(note, Field.RELATED, paths)


def rename_tag(note: Note, old: str, new: str) -> TagRename:
    return TagRename.objects.create(vault=note.vault, old=old, new=new)

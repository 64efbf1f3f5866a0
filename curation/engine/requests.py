"""Building API requests from a job's items: the note, the vault's taxonomy, the candidates;
for a consolidation job, the part of the tag list its item carries (engine.consolidation).

Per vault, one candidate index is loaded once per builder (from the words stored per note; see
curation.engine.candidates.vault_index) and gives both the taxonomy (existing tags, most used
first) and each note's candidate related notes, kept per note for the builder's life, so the
same candidates are offered in the request and checked against in the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

from django.db.models import QuerySet, Value

from curation.api import prompt
from curation.engine import consolidation
from curation.engine.candidates import CandidateIndex, sample_index, vault_index
from curation.models import Batch, Item, Job, ProposedTag, TagPolicy
from curation.review.vocabulary import vault_policy
from ingest.models import Note
from ingest.notes import link_name

PAGE = 1000  # items read per query when building requests
TAXONOMY_SIZE = 300  # most common existing tags shown to the model
VOCABULARY_SIZE = prompt.MAX_VOCABULARY_TAGS  # "existing tags only": the whole vocabulary


class RequestBuilder:
    """Turns items of one job into API request params (see the module docstring)."""

    def __init__(self, job: Job, *, index_notes: list[int] | None = None):
        self.job = job
        # Only for estimates: candidates and taxonomy from these notes, not the whole vault.
        self.index_notes = index_notes
        self.want_related = "related" in job.fields
        self._indexes: dict[int, CandidateIndex] = {}
        self._taxonomies: dict[int, list[str]] = {}
        self._policies: dict[int, str] = {}
        self._candidates: dict[tuple[int, str], list[str]] = {}
        self._ranked: list[str] | None = None  # a consolidation job's tags, most used first

    def index(self, vault_id: int) -> CandidateIndex:
        index = self._indexes.get(vault_id)
        if index is None:
            if self.index_notes is not None:
                index = sample_index(vault_id, self.index_notes, words=self.want_related)
            elif self.want_related:
                index = vault_index(vault_id)
            else:  # the taxonomy alone: no note's words need reading
                rows = Note.objects.filter(vault_id=vault_id, state=Note.State.OK).values_list(
                    "path", "title", "tags", Value(""), Value("")
                )
                index = CandidateIndex.build(rows.iterator(chunk_size=5000))
            self._indexes[vault_id] = index
            policy = self._policies[vault_id] = vault_policy(vault_id=vault_id)
            if policy == TagPolicy.FREE:
                self._taxonomies[vault_id] = index.taxonomy(TAXONOMY_SIZE)
            else:  # approved proposed tags are part of the vocabulary too
                taxonomy = index.taxonomy(VOCABULARY_SIZE)
                approved = ProposedTag.objects.filter(
                    vault_id=vault_id, state=ProposedTag.State.APPROVED
                ).values_list("tag", flat=True)
                self._taxonomies[vault_id] = list(dict.fromkeys([*taxonomy, *approved]))
        return index

    def taxonomy(self, vault_id: int) -> list[str]:
        self.index(vault_id)
        return self._taxonomies[vault_id]

    def candidates(self, note: Note) -> list[str]:
        if not self.want_related:
            return []
        return self._candidates_of(note.vault_id, note.path)

    def _candidates_of(self, vault_id: int, path: str) -> list[str]:
        found = self._candidates.get((vault_id, path))
        if found is None:
            found = self._candidates[(vault_id, path)] = self.index(vault_id).candidates(path)
        return found

    def note_input(self, item: Item, note: Note, candidates: list[str] | None = None):
        return prompt.NoteInput(
            custom_id=item.custom_id,
            name=note.name,
            path=note.path,
            title=note.title,
            body=note.body,
            tags=note.tags if isinstance(note.tags, list) else [],
            fields=list(self.job.fields),
            candidates=self.candidates(note) if candidates is None else candidates,
            taxonomy=self.taxonomy(note.vault_id),
            tag_policy=self._policies[note.vault_id],
        )

    def params(self, item: Item, note: Note | None = None, candidates: list[str] | None = None) -> dict:
        if self.job.is_consolidation:
            return consolidation.part_params(
                item.tag_list or [], ranked=self.ranked_tags(), model=self.job.model
            )
        return prompt.build_request(self.note_input(item, note, candidates), model=self.job.model)

    def request(self, item: Item) -> tuple[dict, dict]:
        """(params, reading) for one item: the request, and how its answer is read (the
        keyword arguments of client.send_one: fields and candidates, or the tags listed)."""
        if self.job.is_consolidation:
            return self.params(item), self.reading(item)
        candidates = self.candidates(item.note)
        params = self.params(item, item.note, candidates)
        return params, {"fields": list(self.job.fields), "candidates": candidates}

    def reading(self, item: Item) -> dict:
        """How the answer to a consolidation item's request is read: the tags it listed."""
        return {"fields": list(self.job.fields), "candidates": [],
                "tags": [entry[0] for entry in item.tag_list or []]}  # fmt: skip

    def ranked_tags(self) -> list[str]:
        if self._ranked is None:
            parts = Item.objects.filter(job_id=self.job.id).values_list("tag_list", flat=True)
            self._ranked = consolidation.ranked_tags(parts)
        return self._ranked

    def tags_lookup(self, batch: Batch) -> Callable[[str], list[str]] | None:
        """custom_id -> the tags its consolidation request listed; None for a curation job."""
        if not self.job.is_consolidation:
            return None
        parts = dict(Item.objects.filter(batch=batch).values_list("custom_id", "tag_list"))

        def lookup(custom_id: str) -> list[str]:
            return [entry[0] for entry in parts[custom_id] or []]

        return lookup

    def offered(self, batch: Batch) -> dict[str, list[str]] | None:
        """custom_id -> the candidate paths offered to each of the batch's claimed items (the
        ones its requests carry: same builder, same cache); None when no candidates are sent."""
        if not self.want_related or self.job.is_consolidation:
            return None
        rows = Item.objects.filter(batch=batch, state=Item.State.SUBMITTED).values_list(
            "custom_id", "note__vault_id", "note__path"
        )
        return {custom_id: self._candidates_of(vault_id, path) for custom_id, vault_id, path in rows}

    def candidates_lookup(self, batch: Batch) -> Callable[[str], list[str]]:
        """custom_id -> the candidate paths its request offered (for checking `related`)."""
        if not self.want_related or self.job.is_consolidation:
            return lambda custom_id: []
        if batch.offered is not None:  # saved at submit: what was really offered
            return batch.offered.__getitem__  # KeyError for an unknown custom_id, as below
        notes = {
            custom_id: (vault_id, path)
            for custom_id, vault_id, path in Item.objects.filter(batch=batch).values_list(
                "custom_id", "note__vault_id", "note__path"
            )
        }

        def lookup(custom_id: str) -> list[str]:
            if custom_id not in notes:
                raise KeyError(custom_id)
            return self._candidates_of(*notes[custom_id])

        return lookup


class NoteRow(NamedTuple):
    """The note columns a request is built from (model instances cost more than the request)."""

    id: int
    vault_id: int
    path: str
    title: str
    body: str
    tags: list

    @property
    def name(self) -> str:
        return link_name(self.path)


class ItemRow(NamedTuple):
    id: int
    custom_id: str
    note: NoteRow | None
    tag_list: list | None = None


def item_pages(qs: QuerySet, size: int = PAGE) -> Iterator[list[ItemRow]]:
    """Items with their notes (or tag lists), by id, one page per query (keyset: no OFFSET,
    no open cursor)."""
    last = 0
    qs = qs.order_by("id").values_list(
        "id", "custom_id", "tag_list", "note_id", "note__vault_id", "note__path", "note__title",
        "note__body", "note__tags",
    )  # fmt: skip
    while True:
        rows = list(qs.filter(id__gt=last)[:size])
        if not rows:
            return
        yield [
            ItemRow(r[0], r[1], NoteRow(*r[3:]) if r[3] is not None else None, r[2]) for r in rows
        ]
        last = rows[-1][0]


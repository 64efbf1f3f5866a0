"""Tag consolidation, the engine side: the vault's tag list, the parts its requests carry, and
the merges an answer proposes stored as TagConsolidation rows.

A consolidation job (Job.Kind.CONSOLIDATE, made by jobs.consolidation_create) has one Item per
part of the tag list (CURATION_CONSOLIDATION_TAGS tags at most), each carrying its part in
`Item.tag_list`. It runs through the same router, runners, budget, cost and recovery as a
curation job; only building its requests (engine.requests) and applying its answers
(engine.items -> consolidations_store) differ. curation.review.consolidation decides each merge.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.conf import settings

from curation.api import prompt
from curation.models import Job, TagConsolidation
from curation.review.taxonomy import vault_note_tags
from ingest.models import Note

log = logging.getLogger(__name__)

EXAMPLE_TITLES = 3
TARGETS = 200  # most used tags outside a part, named in its request as possible targets

TagEntry = tuple[str, int, list[str]]  # (tag, notes carrying it, a few example titles)


class NothingToConsolidate(ValueError):
    """The vault has fewer than two tags."""


def vault_tag_list(*, vault_id: int) -> list[TagEntry]:
    """(tag, notes carrying it, a few example titles), most used first: what the model sees."""
    note_tags = vault_note_tags(vault_id=vault_id)
    counts: Counter[str] = Counter()
    examples: dict[str, list[int]] = {}
    for note_id, tags in note_tags.items():
        for tag in dict.fromkeys(tags):
            counts[tag] += 1
            picked = examples.setdefault(tag, [])
            if len(picked) < EXAMPLE_TITLES:
                picked.append(note_id)
    wanted = {i for ids in examples.values() for i in ids}
    titles = dict(Note.objects.filter(id__in=wanted).values_list("id", "title"))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(tag, n, [titles.get(i, "") for i in examples[tag]]) for tag, n in ranked]


def tags_per_request() -> int:
    return max(2, int(settings.CURATION_CONSOLIDATION_TAGS))


def tag_parts(tags: list[TagEntry], *, size: int | None = None) -> list[list[TagEntry]]:
    """The tag list cut into requests of at most `size` tags (CURATION_CONSOLIDATION_TAGS).

    A list that fits is one part, as ranked. A longer one is cut in alphabetical order (case
    folded), so spellings of one tag ("Agent", "agent", "agents") land in the same part, where
    one answer can merge them; each part is then ranked most used first again.
    """
    size = size or tags_per_request()
    if len(tags) <= size:
        return [list(tags)]
    ordered = sorted(tags, key=lambda t: (t[0].lower(), t[0]))
    parts = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    return [sorted(part, key=lambda t: (-t[1], t[0])) for part in parts]


def part_targets(part: list, ranked: list[str], *, limit: int = TARGETS) -> list[str]:
    """The most used tags (of `ranked`, most used first) outside `part`: the targets its
    request names so that a tag can merge onto one sent in another part."""
    inside = {entry[0] for entry in part}
    return [tag for tag in ranked if tag not in inside][:limit]


def notes_touched(old: str, new: str, note_tags: dict[int, list[str]]) -> int:
    """Notes whose tags the rename would change (matched as export matches: any case)."""
    low = old.lower()

    def changes(tag: str) -> bool:
        hit = tag.lower() == low or tag.lower().startswith(low + "/")
        return hit and f"{new}{tag[len(old):]}" != tag

    return sum(1 for tags in note_tags.values() if any(changes(t) for t in tags))


def consolidations_store(*, job: Job, merges: list) -> int:
    """Store the merges (prompt.TagMerge) answers of `job` proposed, each with the notes it
    touches now. As within one answer (prompt.parse_consolidation), every merge stays one
    step across the job's parts: a tag already moved, or already a target, is not moved again,
    and nothing moves onto a tag that is itself moved (the first answer stored wins).

    Called by items.apply_outcomes inside its transaction. Returns how many were stored.
    """
    if not merges or job.vault_id is None:
        return 0
    stored = TagConsolidation.objects.filter(job=job).values_list("old", "new")
    moved = {old for old, _ in stored}
    targets = {new for _, new in stored}
    fresh = []
    for merge in merges:
        if merge.old in moved or merge.old in targets or merge.new in moved:
            continue
        moved.add(merge.old)
        targets.add(merge.new)
        fresh.append(merge)
    if not fresh:
        return 0
    note_tags = vault_note_tags(vault_id=job.vault_id)
    TagConsolidation.objects.bulk_create(
        [
            TagConsolidation(
                job=job, vault_id=job.vault_id, old=m.old, new=m.new, reason=m.reason,
                notes=notes_touched(m.old, m.new, note_tags),
            )  # fmt: skip
            for m in fresh
        ]
    )
    log.info("consolidation job=%s vault=%s merges=%s", job.id, job.vault_id, len(fresh))
    return len(fresh)


def ranked_tags(parts) -> list[str]:
    """Every tag of a job's parts, most used first (the order targets are named in)."""
    entries = [entry for part in parts for entry in part or []]
    return [entry[0] for entry in sorted(entries, key=lambda e: (-e[1], e[0]))]


def part_params(part: list, *, ranked: list[str], model: str) -> dict:
    """The request for one part of the tag list; `ranked`: every tag of the job's parts."""
    others = part_targets(part, ranked) if len(ranked) > len(part) else []
    return prompt.build_consolidation_request(part, model=model, others=others)

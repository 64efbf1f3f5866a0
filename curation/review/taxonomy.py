"""The vault's tag taxonomy: the tag tree with counts, what is new, and tag renames."""

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from django.db.models import QuerySet

from curation import sql
from curation.models import Field, Review, TagRename
from curation.review.decisions import ReviewError, ReviewForbidden, approved_values
from curation.roles import can_review
from ingest.models import Note
from ingest.notes import tag_clean, tag_prefixes


def tags_renamed(tags: Iterable[str], renames: Iterable[TagRename]) -> list[str]:
    """Apply renames in order: `old` and `old/...` become `new` (and `new/...`); "" removes.

    Matched without regard to case, as export matches them (ingest.writer._rename).
    """
    result = list(tags)
    for rename in renames:
        old = rename.old.lower()
        moved: dict[str, None] = {}
        for tag in result:
            low = tag.lower()
            if low == old or low.startswith(old + "/"):
                tag = f"{rename.new}{tag[len(old):]}" if rename.new else ""
            if tag:
                moved.setdefault(tag, None)
        result = list(moved)
    return result


def vault_note_tags(*, vault_id: int) -> dict[int, list[str]]:
    """Each note's tags as export will leave them: its own plus approved ones, renames applied."""
    vault_notes = Note.objects.filter(vault_id=vault_id, state=Note.State.OK)
    notes = dict(vault_notes.values_list("id", "tags"))
    approved = approved_values(note_ids=vault_notes.values("id"))
    renames = list(TagRename.objects.filter(vault_id=vault_id))
    result = {}
    for note_id, tags in notes.items():
        merged = dict.fromkeys(tags if isinstance(tags, list) else [])  # as vault_known_tags
        added = approved.get(note_id, {}).get(Field.TAGS)
        if added and isinstance(added["value"], list):
            merged.update(dict.fromkeys(str(t) for t in added["value"]))
        result[note_id] = tags_renamed(merged, renames)
    return result


def vault_known_tags(*, vault_id: int) -> set[str]:
    """Every tag and branch of the vault's tree (existing plus approved tags): the tags of
    vault_note_tags, without reading each note's list (a rename maps each tag on its own, so
    the union of the notes' renamed tags is the renamed union of their tags)."""
    tags = sql.vault_tags_distinct(vault_id=vault_id)
    approving = Review.objects.filter(
        decision__in=[Review.Decision.APPROVED, Review.Decision.EDITED],
        suggestion__field=Field.TAGS, suggestion__note__vault_id=vault_id,
        suggestion__note__state=Note.State.OK,
    ).values("suggestion__note_id")  # fmt: skip
    for fields in approved_values(note_ids=approving).values():
        added = fields.get(Field.TAGS)
        if added and isinstance(added["value"], list):
            tags.update(str(t) for t in added["value"])
    renames = list(TagRename.objects.filter(vault_id=vault_id))
    known: set[str] = set()
    for tag in tags_renamed(tags, renames):
        known.update(tag_prefixes(tag))
    return known


def tag_is_new(tag: str, known: set[str]) -> bool:
    """New: neither the tag nor its parent branch is in the vault's tree yet."""
    if tag in known:
        return False
    parent = tag.rpartition("/")[0]
    return not parent or parent not in known


@dataclass
class TagNode:
    path: str
    name: str
    count: int = 0  # notes carrying exactly this tag
    total: int = 0  # notes carrying this tag or one below it
    children: list["TagNode"] = dataclass_field(default_factory=list)


def tag_tree(*, vault_id: int) -> list[TagNode]:
    """The vault's tag tree (existing plus approved tags, renames applied) with note counts."""
    nodes: dict[str, TagNode] = {}
    for tags in vault_note_tags(vault_id=vault_id).values():
        seen: set[str] = set()
        for tag in tags:
            for prefix in tag_prefixes(tag):
                node = nodes.get(prefix)
                if node is None:
                    node = nodes[prefix] = TagNode(path=prefix, name=prefix.rpartition("/")[2])
                if prefix not in seen:
                    node.total += 1
                    seen.add(prefix)
            nodes[tag].count += 1
    roots = []
    for path in sorted(nodes):
        parent = path.rpartition("/")[0]
        (nodes[parent].children if parent else roots).append(nodes[path])
    return roots


def tag_tree_flat(roots: list[TagNode], depth: int = 0) -> list[tuple[int, TagNode]]:
    """The tree as (depth, node) rows in display order, for templates."""
    rows = []
    for node in roots:
        rows.append((depth, node))
        rows.extend(tag_tree_flat(node.children, depth + 1))
    return rows


def tag_rename(*, vault_id: int, old: str, new: str, user) -> TagRename:
    """Rename or merge `old` (and everything below it) into `new` across the vault; "" removes.

    Recorded as an approved change that export applies to every note carrying the tag.
    """
    if not can_review(user):
        raise ReviewForbidden("Only moderators can rename or merge tags.")
    old, new = tag_clean(old), tag_clean(new)
    if not old:
        raise ReviewError("Give the tag to rename.")
    if any(ch.isspace() for ch in old + new):
        raise ReviewError("A tag cannot contain spaces.")
    if old == new:
        raise ReviewError("The new name is the same as the old one.")
    if new.startswith(old + "/"):
        raise ReviewError("A tag cannot be moved below itself.")
    return TagRename.objects.create(vault_id=vault_id, old=old, new=new, decided_by=user)


def suggestion_ids_with_new_tags(*, queryset: QuerySet) -> list[int]:
    """Ids of tag suggestions in `queryset` that bring a tag outside their vault's tree."""
    known_by_vault: dict[int, set[str]] = {}
    ids = []
    rows = queryset.filter(field=Field.TAGS).values_list("pk", "note__vault_id", "value")
    for pk, vault_id, value in rows.iterator(chunk_size=2000):
        if vault_id not in known_by_vault:
            known_by_vault[vault_id] = vault_known_tags(vault_id=vault_id)
        known = known_by_vault[vault_id]
        if isinstance(value, list) and any(tag_is_new(tag_clean(t), known) for t in value):
            ids.append(pk)
    return ids

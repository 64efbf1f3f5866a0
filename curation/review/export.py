"""Exporting approved changes into the vault's files: safe, atomic, idempotent, confined.

`vault_export` is the one door (the `export_vault` command and the admin actions call it).
What it applies: per note, the approved fields not yet exported (`approved_values`), the links
those approvals imply on the *other* note of each link, and the vault's tag renames.

A file whose bytes no longer match the hash recorded at import is a conflict and is left
alone: its reviews stay unexported, so `import_vault` (which records the new hash) followed by
another export re-applies them on top of the user's edit.
"""

import difflib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.models import Field, Review, TagRename
from curation.review.decisions import approved_values
from ingest import notes
from ingest.files import FileChanged, UnsafePath, fsync_folder, refuse_unsafe_file, safe_path, write_atomic
from ingest.models import ExportRecord, Note, Vault
from ingest.notes import LINK_BREAKING, link_key, tag_clean
from ingest.writer import Changes, ExportError, Link, link_names, rewrite

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass
class ExportSummary:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    diffs: list[tuple[str, str]] = field(default_factory=list)  # (path, unified diff)
    dry_run: bool = False

    def line(self) -> str:
        verb = "would write" if self.dry_run else "written"
        return (
            f"{verb} {len(self.written)}, unchanged {self.unchanged}, "
            f"conflicts {len(self.conflicts)}, errors {len(self.errors)}"
        )

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.errors)


@dataclass
class _Plan:
    """Everything one note file will receive, and the reviews it carries out."""

    changes: Changes = field(default_factory=Changes)
    reviews: set[int] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)


def vault_export(
    *,
    vault: Vault,
    note_ids: Iterable[int] | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> ExportSummary:
    """Write the approved, not yet exported changes of `vault` (or of `note_ids`) to disk."""
    summary = ExportSummary(dry_run=dry_run)
    plans, review_notes = _plans(vault=vault, note_ids=note_ids)
    # The whole vault's small columns in one query: no `IN (...)` list as long as the vault.
    rows = {
        n.id: n
        for n in Note.objects.filter(vault=vault).only(
            "id", "path", "state", "reason", "content_hash", "vault_id"
        )
        if n.id in plans
    }
    failed: set[int] = set()
    folders: set[str] = set()  # folders written to: each fsynced once, at the end
    order = sorted(plans, key=lambda i: rows[i].path if i in rows else "")
    for index, note_id in enumerate(order, 1):
        note = rows.get(note_id)
        if note is None:
            continue
        outcome = _export_note(
            note=note, vault=vault, plan=plans[note_id], dry_run=dry_run, folders=folders
        )
        kind, detail = outcome
        if kind == "written":
            summary.written.append(note.path)
            if dry_run:
                summary.diffs.append((note.path, detail))
        elif kind == "unchanged":
            summary.unchanged += 1
        else:
            failed.add(note_id)
            problems = summary.conflicts if kind == "conflict" else summary.errors
            problems.append((note.path, detail))
            log.warning("export %s %s: %s", kind, note.path, detail)
        if progress is not None:
            progress(index, len(order), note.path)

    for folder in folders:
        fsync_folder(folder)
    if not dry_run:
        done = [rid for rid, ids in review_notes.items() if not (ids & failed)]
        now = timezone.now()
        for start in range(0, len(done), CHUNK):
            chunk = done[start : start + CHUNK]
            Review.objects.filter(id__in=chunk, exported_at__isnull=True).update(exported_at=now)
    log.info("export vault=%s dry_run=%s %s", vault.name, dry_run, summary.line())
    return summary


def _plans(*, vault: Vault, note_ids) -> tuple[dict[int, _Plan], dict[int, set[int]]]:
    """Per note id, what to write; per review id, every note that must be written for it."""
    vault_notes = Note.objects.filter(vault=vault)
    table = list(vault_notes.exclude(state=Note.State.MISSING).values_list("id", "path", "state"))
    by_path = {path: (nid, state) for nid, path, state in table}
    path_of = {nid: path for nid, path, _ in table}
    names = link_names([path for _, path, _ in table])
    selected = set(note_ids) if note_ids is not None else None

    approved = approved_values(note_ids=vault_notes.filter(suggestions__isnull=False).values("id"))
    plans: dict[int, _Plan] = {}
    review_notes: dict[int, set[int]] = {}

    def plan(note_id: int, review_id: int | None = None, key: str | None = None) -> _Plan:
        p = plans.setdefault(note_id, _Plan())
        if review_id is not None:
            p.reviews.add(review_id)
            review_notes.setdefault(review_id, set()).add(note_id)
        if key:
            p.fields.add(key)
        return p

    by_name: dict[str, int | None] = {}
    for path, name in names.items():  # a link name only this note answers to
        key = link_key(name)
        by_name[key] = None if key in by_name else by_path[path][0]

    def resolve(value) -> int | None:
        """A related value is a note path; `Name`, `[[Name]]` or a path without .md also work."""
        text = str(value).strip().removeprefix("[[").removesuffix("]]").split("|")[0].strip()
        for candidate in (text, f"{text}.md"):
            if candidate in by_path:
                return by_path[candidate][0]
        bare = text[:-3] if text.lower().endswith(".md") else text
        return by_name.get(link_key(bare))

    def target(note_id: int) -> Link | None:
        path = path_of.get(note_id)
        if path is None or by_path[path][1] != Note.State.OK:
            return None
        name = names[path]
        if LINK_BREAKING & set(name):  # the name as written may carry a folder part
            return None
        return Link(name=name, target=path[:-3] if path.lower().endswith(".md") else path)

    for note_id, decided in approved.items():
        for key, entry in decided.items():
            if entry["exported"]:
                continue
            value, review_id = entry["value"], entry["review_id"]
            if key == Field.RELATED:
                found = (resolve(p) for p in (value if isinstance(value, list) else []))
                others = list(dict.fromkeys(i for i in found if i is not None and i != note_id))
                # A link is one decision with two ends: if either end is selected, all of it.
                if selected is not None and not ({note_id, *others} & selected):
                    continue
                plan(note_id, review_id)
                for other_id in others:
                    there, back = target(other_id), target(note_id)
                    if there is None or back is None:
                        continue  # a link is written on both notes, or on neither
                    plan(note_id, review_id, "related").changes.add_related.append(there)
                    plan(other_id, review_id, "related").changes.add_related.append(back)
                continue
            if selected is not None and note_id not in selected:
                continue
            p = plan(note_id, review_id, key)
            if key == Field.TAGS and isinstance(value, list):
                p.changes.add_tags.extend(str(t) for t in value)
            elif key == Field.DESCRIPTION and isinstance(value, str):
                p.changes.description = value

    renames = [(r.old, r.new) for r in TagRename.objects.filter(vault=vault)]
    if renames:
        olds = [tag_clean(old).lower() for old, _ in renames]
        for note_id, tags in vault_notes.filter(state=Note.State.OK).values_list("id", "tags"):
            if selected is not None and note_id not in selected:
                continue
            lowered = [str(t).lower() for t in tags or []]
            if any(t == o or t.startswith(o + "/") for t in lowered for o in olds):
                plan(note_id, None, "tags")
        for p in plans.values():
            p.changes.tag_renames = renames
    return plans, review_notes


def _export_note(
    *, note: Note, vault: Vault, plan: _Plan, dry_run: bool, folders: set[str]
) -> tuple[str, str]:
    """("written" | "unchanged" | "conflict" | "error", detail) for one note file."""
    if note.state != Note.State.OK:
        state = note.get_state_display().lower()
        return "error", f"note is {state}: {note.reason or 'not imported'}"
    try:
        path = safe_path(vault.root, note.path)
        refuse_unsafe_file(path)
        with open(path, "rb") as fh:
            data = fh.read()
    except UnsafePath as exc:
        return "error", str(exc)
    except OSError as exc:
        return "error", f"cannot read: {exc.strerror or exc}"
    old_hash = notes.content_hash(data)
    if old_hash != note.content_hash:
        return "conflict", (
            "changed on disk since it was imported; run import_vault, then export again"
        )
    try:
        result = rewrite(data, plan.changes)
    except ExportError as exc:
        return "error", str(exc)
    if result.data == data:
        return "unchanged", ""
    if len(result.data) > settings.VAULTCMS_MAX_NOTE_BYTES:
        return "error", "the note would grow past VAULTCMS_MAX_NOTE_BYTES"
    if dry_run:
        return "written", unified_diff(note.path, result.old_text, result.new_text)
    try:
        write_atomic(path, result.data, expect_hash=old_hash, sync_folder=False)
        folders.add(os.path.dirname(path))
    except FileChanged:
        try:
            with open(path, "rb") as fh:
                if fh.read() == result.data:  # another export got there first
                    return "unchanged", ""
        except OSError:
            pass
        return "conflict", "changed on disk during the export; run import_vault, then export again"
    except OSError as exc:
        return "error", f"cannot write: {exc.strerror or exc}"
    _record(note=note, data=result.data, path=path, plan=plan, old_hash=old_hash)
    return "written", ""


def _record(*, note: Note, data: bytes, path: str, plan: _Plan, old_hash: str) -> None:
    """Bring the Note row up to date with the file just written, so re-import sees no change."""
    parsed = notes.parse(data, path=note.path)
    st = os.stat(path)
    new_hash = notes.content_hash(data)
    now = timezone.now()
    with transaction.atomic():
        Note.objects.filter(id=note.id).update(
            frontmatter_raw=parsed.yaml or "",
            frontmatter=parsed.metadata,
            tags=parsed.tags,
            title=parsed.title[:1024],
            content_hash=new_hash,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            updated_at=now,
        )
        ExportRecord.objects.create(
            note_id=note.id,
            fields=sorted(plan.fields),
            reviews=sorted(plan.reviews),
            old_hash=old_hash,
            new_hash=new_hash,
        )


def unified_diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

"""Importing a vault folder into the database: incremental, chunked, never touching a file."""

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ingest import notes
from ingest.models import Note, Vault

log = logging.getLogger(__name__)

CHUNK = 500


class VaultNotFound(Exception):
    """The vault folder does not exist or is not a folder."""


@dataclass
class ImportSummary:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def line(self) -> str:
        return (
            f"imported {self.imported}, updated {self.updated}, unchanged {self.unchanged}, "
            f"skipped {len(self.skipped)}, missing {self.missing}"
        )


@dataclass
class _Found:
    rel: str  # posix path relative to the root
    abs: str
    skip_reason: str = ""


def walk(root: Path) -> Iterator[_Found]:
    """Every `*.md` file under root, skipping hidden folders and links out of the vault."""
    root_real = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        # Hidden folders (.obsidian, .trash, .git) hold settings and deleted notes.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(".md"):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full):
                target = os.path.realpath(full)
                if os.path.commonpath([root_real, target]) != root_real:
                    yield _Found(rel, full, "symlink to a file outside the vault")
                    continue
            yield _Found(rel, full)


def vault_import(
    *,
    root: str | Path,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Vault, ImportSummary]:
    """Register (or refresh) the vault at `root` and import every note that changed."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise VaultNotFound(f"no such folder: {root}")
    root = root.resolve()
    vault_name = name or root.name
    vault, _ = Vault.objects.get_or_create(name=vault_name, defaults={"root": str(root)})
    if vault.root != str(root):
        vault.root = str(root)
        vault.save(update_fields=["root"])

    # What the database knows, without bodies: one query, small rows.
    known = {
        row[0]: row
        for row in Note.objects.filter(vault=vault).values_list(
            "path", "id", "size", "mtime_ns", "content_hash", "state"
        )
    }
    found = list(walk(root))
    summary = ImportSummary()
    seen: set[str] = set()
    to_create: list[Note] = []
    to_update: list[Note] = []
    max_bytes = settings.VAULTCMS_MAX_NOTE_BYTES
    now = timezone.now()

    def flush() -> None:
        with transaction.atomic():
            if to_create:
                Note.objects.bulk_create(to_create, batch_size=CHUNK)
            if to_update:
                Note.objects.bulk_update(to_update, UPDATE_FIELDS, batch_size=CHUNK)
        to_create.clear()
        to_update.clear()

    for index, entry in enumerate(found, 1):
        seen.add(entry.rel)
        row = known.get(entry.rel)
        note = _examine(entry, row=row, max_bytes=max_bytes, now=now, summary=summary)
        if note is not None:
            note.vault = vault
            (to_update if row else to_create).append(note)
            if len(to_create) + len(to_update) >= CHUNK:
                flush()
        if progress is not None:
            progress(index, len(found))
    flush()

    gone = [
        row[1] for path, row in known.items() if path not in seen and row[5] != Note.State.MISSING
    ]
    for start in range(0, len(gone), CHUNK):
        Note.objects.filter(id__in=gone[start : start + CHUNK]).update(
            state=Note.State.MISSING, reason="file no longer in the vault", updated_at=now
        )
    summary.missing = len(gone)
    vault.imported_at = now
    vault.save(update_fields=["imported_at"])
    log.info("import vault=%s %s", vault.name, summary.line())
    return vault, summary


UPDATE_FIELDS = [
    "folder", "title", "frontmatter_raw", "frontmatter", "tags", "body", "encoding", "has_bom",
    "newline", "content_hash", "size", "mtime_ns", "state", "reason", "imported_at", "updated_at",
]  # fmt: skip


def _examine(entry: _Found, *, row, max_bytes: int, now, summary: ImportSummary) -> Note | None:
    """The Note to save for one file, or None when the database already holds it as it is."""
    folder = entry.rel.rpartition("/")[0]
    note = Note(path=entry.rel, folder=folder, imported_at=now, updated_at=now)
    if row is not None:
        note.id = row[1]

    def skipped(reason: str, size: int = 0, mtime_ns: int = 0) -> Note | None:
        summary.skipped.append((entry.rel, reason))
        if row is not None and row[5] == Note.State.SKIPPED and row[2] == size and row[3] == mtime_ns:
            return None
        note.state, note.reason = Note.State.SKIPPED, reason
        note.size, note.mtime_ns, note.title = size, mtime_ns, entry.rel.rpartition("/")[2][:-3]
        return note

    if entry.skip_reason:
        return skipped(entry.skip_reason)
    try:
        stat = os.stat(entry.abs)
    except OSError as exc:
        return skipped(f"cannot read: {exc.strerror}")
    if row is not None and row[5] == Note.State.OK and row[2] == stat.st_size and row[3] == stat.st_mtime_ns:
        summary.unchanged += 1
        return None
    if stat.st_size > max_bytes:
        return skipped(
            f"too large: {stat.st_size:,} bytes (limit {max_bytes:,})", stat.st_size, stat.st_mtime_ns
        )
    try:
        with open(entry.abs, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return skipped(f"cannot read: {exc.strerror}", stat.st_size, stat.st_mtime_ns)
    digest = notes.content_hash(data)
    if row is not None and row[5] == Note.State.OK and row[4] == digest:
        # Touched but not changed: remember the new mtime so the next run skips the read.
        Note.objects.filter(id=row[1]).update(mtime_ns=stat.st_mtime_ns, size=stat.st_size)
        summary.unchanged += 1
        return None
    try:
        parsed = notes.parse(data, path=entry.rel)
    except notes.NoteError as exc:
        return skipped(str(exc), stat.st_size, stat.st_mtime_ns)

    note.title = parsed.title[:1024]
    note.frontmatter_raw = parsed.yaml or ""
    note.frontmatter = parsed.metadata
    note.tags = parsed.tags
    note.body = parsed.body
    note.encoding, note.has_bom, note.newline = parsed.encoding, parsed.has_bom, parsed.newline
    note.content_hash = digest
    note.size, note.mtime_ns = stat.st_size, stat.st_mtime_ns
    note.state, note.reason = Note.State.OK, ""
    if row is None:
        summary.imported += 1
    else:
        summary.updated += 1
    return note

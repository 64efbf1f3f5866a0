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


def walk(root: Path, *, unreadable: list[tuple[str, str]] | None = None) -> Iterator[_Found]:
    """Every `*.md` file under root, skipping hidden folders and links out of the vault.

    Folders that cannot be listed are appended to `unreadable` as (relative folder, reason).
    """
    root_real = os.path.realpath(root)

    def on_error(exc: OSError) -> None:
        if unreadable is not None and exc.filename:
            rel = os.path.relpath(exc.filename, root).replace(os.sep, "/")
            unreadable.append((rel, f"cannot list folder: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
        # Hidden folders (.obsidian, .trash, .git) hold settings and deleted notes.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(".md"):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes in a name (surrogate escapes)
                shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                yield _Found(shown, full, "file name is not valid UTF-8")
                continue
            if os.path.islink(full):
                target = os.path.realpath(full)
                if os.path.commonpath([root_real, target]) != root_real:
                    yield _Found(rel, full, "symlink to a file outside the vault")
                    continue
            yield _Found(rel, full)


# Every column a (re)parsed note writes; a skipped file only writes SKIP_FIELDS, so a note
# that was fine before keeps its last good content while its file is broken.
UPDATE_FIELDS = [
    "folder", "title", "frontmatter_raw", "frontmatter", "tags", "body", "encoding", "has_bom",
    "newline", "content_hash", "size", "mtime_ns", "state", "reason", "imported_at", "updated_at",
]  # fmt: skip
SKIP_FIELDS = ["folder", "size", "mtime_ns", "state", "reason", "updated_at"]
TOUCH_FIELDS = ["size", "mtime_ns"]


@dataclass
class _Writes:
    """Rows waiting to be written; flushed in one transaction every CHUNK rows."""

    create: list[Note] = field(default_factory=list)
    update: list[Note] = field(default_factory=list)
    skip: list[Note] = field(default_factory=list)
    touch: list[Note] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.create) + len(self.update) + len(self.skip) + len(self.touch)

    def flush(self) -> None:
        if not len(self):
            return
        with transaction.atomic():
            if self.create:
                Note.objects.bulk_create(self.create, batch_size=CHUNK)
            for rows, fields in (
                (self.update, UPDATE_FIELDS),
                (self.skip, SKIP_FIELDS),
                (self.touch, TOUCH_FIELDS),
            ):
                if rows:
                    Note.objects.bulk_update(rows, fields, batch_size=CHUNK)
        for rows in (self.create, self.update, self.skip, self.touch):
            rows.clear()


def vault_register(*, root: Path, name: str | None) -> Vault:
    """The vault for `root`: by name when one is given, else the vault already at that root.

    Without a name, two different folders that happen to share a folder name get two vaults
    ("notes", "notes (2)") instead of one marking the other's notes missing.
    """
    if name:
        vault, _ = Vault.objects.get_or_create(name=name, defaults={"root": str(root)})
    else:
        vault = Vault.objects.filter(root=str(root)).order_by("id").first()
        if vault is None:
            base = (root.name or "vault")[:190]
            taken = set(
                Vault.objects.filter(name__startswith=base).values_list("name", flat=True)
            )
            candidate, n = base, 1
            while candidate in taken:
                n += 1
                candidate = f"{base} ({n})"
            vault = Vault.objects.create(name=candidate, root=str(root))
    if vault.root != str(root):
        vault.root = str(root)
        vault.save(update_fields=["root"])
    return vault


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
    vault = vault_register(root=root, name=name)

    # What the database knows, without bodies: one query, small rows.
    known = {
        row[0]: row
        for row in Note.objects.filter(vault=vault).values_list(
            "path", "id", "size", "mtime_ns", "content_hash", "state", "reason"
        )
    }
    unreadable: list[tuple[str, str]] = []
    found = list(walk(root, unreadable=unreadable))
    summary = ImportSummary()
    summary.skipped.extend((f"{rel}/", reason) for rel, reason in unreadable)
    seen: set[str] = set()
    writes = _Writes()
    max_bytes = settings.VAULTCMS_MAX_NOTE_BYTES
    now = timezone.now()

    for index, entry in enumerate(found, 1):
        seen.add(entry.rel)
        _examine(
            entry,
            row=known.get(entry.rel),
            vault=vault,
            max_bytes=max_bytes,
            now=now,
            summary=summary,
            writes=writes,
        )
        if len(writes) >= CHUNK:
            writes.flush()
        if progress is not None:
            progress(index, len(found))
    writes.flush()

    # A folder we could not list still has its notes: don't call them missing.
    hidden = tuple(f"{rel}/" for rel, _ in unreadable)
    gone = [
        row[1]
        for path, row in known.items()
        if path not in seen and row[5] != Note.State.MISSING and not path.startswith(hidden)
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


def _examine(
    entry: _Found,
    *,
    row: tuple | None,
    vault: Vault,
    max_bytes: int,
    now,
    summary: ImportSummary,
    writes: _Writes,
) -> None:
    """Decide what one file means for its row and queue that write (nothing when unchanged)."""
    folder = entry.rel.rpartition("/")[0]
    note = Note(vault=vault, path=entry.rel, folder=folder, imported_at=now, updated_at=now)
    if row is not None:
        note.id = row[1]
    state = row[5] if row is not None else None

    def skipped(reason: str, size: int = 0, mtime_ns: int = 0) -> None:
        summary.skipped.append((entry.rel, reason))
        if state == Note.State.SKIPPED and row[2:4] == (size, mtime_ns) and row[6] == reason:
            return  # recorded like this already
        note.state, note.reason = Note.State.SKIPPED, reason
        note.size, note.mtime_ns = size, mtime_ns
        if row is None:
            note.title = entry.rel.rpartition("/")[2][:-3][:1024]
            writes.create.append(note)
        else:
            writes.skip.append(note)

    if entry.skip_reason:
        return skipped(entry.skip_reason)
    try:
        stat = os.stat(entry.abs)
    except OSError as exc:
        return skipped(f"cannot read: {exc.strerror}")
    if state == Note.State.OK and row[2] == stat.st_size and row[3] == stat.st_mtime_ns:
        summary.unchanged += 1
        return None
    if stat.st_size > max_bytes:
        reason = f"too large: {stat.st_size:,} bytes (limit {max_bytes:,})"
        return skipped(reason, stat.st_size, stat.st_mtime_ns)
    try:
        with open(entry.abs, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return skipped(f"cannot read: {exc.strerror}", stat.st_size, stat.st_mtime_ns)
    if len(data) > max_bytes:  # grew between stat and read
        return skipped(
            f"too large: over {max_bytes:,} bytes (limit {max_bytes:,})",
            stat.st_size, stat.st_mtime_ns,
        )  # fmt: skip
    digest = notes.content_hash(data)
    if state == Note.State.OK and row[4] == digest:
        # Touched but not changed: remember the new mtime so the next run skips the read.
        note.size, note.mtime_ns = stat.st_size, stat.st_mtime_ns
        writes.touch.append(note)
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
        writes.create.append(note)
    else:
        summary.updated += 1
        writes.update.append(note)
    return None

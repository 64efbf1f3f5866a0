"""Importing a vault folder into the database: incremental, chunked, never touching a file."""

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ingest import notes, sql
from ingest.models import Note, Vault

log = logging.getLogger(__name__)

CHUNK = 500
# Below this many files to read, a process pool costs more than it saves.


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


# Where Obsidian's Templates core plugin and the Templater plugin keep their templates.
TEMPLATE_SETTINGS = (
    (".obsidian/templates.json", "folder"),
    (".obsidian/plugins/templater-obsidian/data.json", "templates_folder"),
)


def template_folders(root: Path) -> dict[str, str]:
    """The vault's template folders (`Templates/`) and the settings file that names each. A
    note there is a template: tags written into it would reach every note made from it. A
    settings file that is missing or unreadable names none."""
    found = {}
    for settings_file, key in TEMPLATE_SETTINGS:
        try:
            with open(root / settings_file, encoding="utf-8") as handle:
                folder = json.load(handle).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        folder = folder.strip().strip("/") if isinstance(folder, str) else ""
        if folder and not folder.startswith("."):
            found.setdefault(folder + "/", settings_file)
    return found


def _template_reason(rel: str, templates: dict[str, str]) -> str:
    """Why a note in a template folder is skipped ("" for a note elsewhere)."""
    folder = next((t for t in templates if rel.startswith(t)), None)
    if folder is None:
        return ""
    return notes.template_reason(f"the folder {folder} is named in {templates[folder]}")


def walk(root: Path, *, unreadable: list[tuple[str, str]] | None = None) -> Iterator[_Found]:
    """Every `*.md` file under root, skipping hidden folders and links out of the vault; a
    note in a template folder is found with its reason to be skipped.

    Folders that cannot be listed are appended to `unreadable` as (relative folder, reason).
    """
    root_real = os.path.realpath(root)
    templates = template_folders(Path(root))

    def on_error(exc: OSError) -> None:
        if unreadable is not None and exc.filename:
            rel = os.path.relpath(exc.filename, root).replace(os.sep, "/")
            unreadable.append((rel, f"cannot list folder: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
        # Hidden folders (.obsidian, .trash, .git) hold settings and deleted notes.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = os.path.relpath(dirpath, root).replace(os.sep, "/")  # once per folder
        prefix = "" if folder == "." else f"{folder}/"
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(".md"):
                continue
            full = os.path.join(dirpath, name)
            rel = prefix + name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes in a name (surrogate escapes)
                shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                yield _Found(shown, full, "file name is not valid UTF-8")
                continue
            if os.path.islink(full):
                yield _Found(rel, full, _symlink_reason(full, root_real))
                continue
            yield _Found(rel, full, _template_reason(rel, templates))


def _symlink_reason(full: str, root_real: str) -> str:
    """Why a note file that is a symbolic link is skipped. Out of the vault, it would import
    another folder's file; in it, it is a second name for a note imported as itself, which
    export could never write (it never writes through links) and which would be a related
    link from a note to itself."""
    target = os.path.realpath(full)
    if os.path.commonpath([root_real, target]) != root_real:
        return "symlink to a file outside the vault"
    if not os.path.exists(target):
        return "symlink to a file that does not exist"
    shown = os.path.relpath(target, root_real).replace(os.sep, "/")
    return f"symlink to {shown} in the vault: that file is the note, imported under its own name"


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
    """Rows (dicts of field values) waiting to be written; flushed in one transaction per CHUNK.

    Written with one `executemany` per kind (ingest/sql.py: bench/sql_bench.py shows the ORM's
    bulk_create and bulk_update several times slower on the same rows).
    """

    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    skip: list[dict] = field(default_factory=list)
    touch: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.create) + len(self.update) + len(self.skip) + len(self.touch)

    def flush(self) -> None:
        if not len(self):
            return
        with transaction.atomic(), connection.cursor() as cursor:
            if self.create:
                sql.notes_insert(cursor, self.create)
            for rows, names in (
                (self.update, UPDATE_FIELDS),
                (self.skip, SKIP_FIELDS),
                (self.touch, TOUCH_FIELDS),
            ):
                if rows:
                    sql.notes_update(cursor, rows, names)
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
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if len(writes) >= CHUNK:
            writes.flush()
        if progress is not None:
            progress(done, len(found))

    # First what stat() alone decides (unchanged, too large, unreadable), then read the rest.
    to_read: list[tuple[_Found, tuple | None, os.stat_result]] = []
    for entry in found:
        seen.add(entry.rel)
        row = known.get(entry.rel)
        stat = _check(entry, row=row, vault=vault, max_bytes=max_bytes, now=now,
                      summary=summary, writes=writes)  # fmt: skip
        if stat is None:
            step()
        else:
            to_read.append((entry, row, stat))
    for (entry, row, stat), result in _read_all(to_read, max_bytes=max_bytes):
        _apply(entry, row=row, stat=stat, result=result, vault=vault, now=now,
               summary=summary, writes=writes)  # fmt: skip
        step()
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
    summary.skipped.sort()  # stat-time and read-time skips were found in two passes
    vault.imported_at = now
    vault.save(update_fields=["imported_at"])
    log.info("import vault=%s %s", vault.name, summary.line())
    return vault, summary


def _read_all(jobs: list, *, max_bytes: int) -> Iterator[tuple[tuple, notes.ReadResult]]:
    """Each job with what reading its file found, in order, one file at a time.

    A process pool was measured (bench/import_bench.py) and did not pay on a 2-core machine
    with other work on it: the plain loop stays.
    """
    for entry, row, stat in jobs:
        known = row[4] if row and row[5] == Note.State.OK else None
        yield (entry, row, stat), notes.read_file(
            entry.abs, rel=entry.rel, max_bytes=max_bytes, known_digest=known, size=stat.st_size
        )


def _new_row(entry: _Found, *, row: tuple | None, vault: Vault, now) -> dict:
    note = {
        "vault": vault.id,
        "path": entry.rel,
        "folder": entry.rel.rpartition("/")[0],
        "imported_at": now,
        "updated_at": now,
    }
    if row is not None:
        note["id"] = row[1]
    return note


def _skip(
    entry: _Found,
    reason: str,
    *,
    size: int = 0,
    mtime_ns: int = 0,
    row: tuple | None,
    vault: Vault,
    now,
    summary: ImportSummary,
    writes: _Writes,
) -> None:
    """Record a file that cannot be imported (and report it), unless recorded so already."""
    summary.skipped.append((entry.rel, reason))
    if row is not None and row[5] == Note.State.SKIPPED and row[2:4] == (size, mtime_ns):
        if row[6] == reason:
            return
    note = _new_row(entry, row=row, vault=vault, now=now)
    note.update(state=Note.State.SKIPPED.value, reason=reason, size=size, mtime_ns=mtime_ns)
    if row is None:
        note["title"] = entry.rel.rpartition("/")[2][:-3][:1024]
        writes.create.append(note)
    else:
        writes.skip.append(note)


def _check(entry: _Found, *, row, vault, max_bytes: int, now, summary, writes):
    """Settle a file by stat() alone when possible; return its stat when it must be read."""
    where = dict(row=row, vault=vault, now=now, summary=summary, writes=writes)
    if entry.skip_reason:
        return _skip(entry, entry.skip_reason, **where)
    try:
        stat = os.stat(entry.abs)
    except OSError as exc:
        return _skip(entry, f"cannot read: {exc.strerror}", **where)
    not_regular = notes.not_regular_reason(stat.st_mode)
    if not_regular:  # a FIFO would block the read for ever; a device never ends
        return _skip(entry, not_regular, mtime_ns=stat.st_mtime_ns, **where)
    if row is not None and row[5] == Note.State.OK and row[2:4] == (stat.st_size, stat.st_mtime_ns):
        summary.unchanged += 1
        return None
    if stat.st_size > max_bytes:
        reason = f"too large: {stat.st_size:,} bytes (limit {max_bytes:,})"
        return _skip(entry, reason, size=stat.st_size, mtime_ns=stat.st_mtime_ns, **where)
    return stat


def _apply(entry: _Found, *, row, stat, result: notes.ReadResult, vault, now, summary, writes):
    """Queue the write that reading the file calls for."""
    if result.kind == "bad":
        return _skip(entry, result.reason, size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                     row=row, vault=vault, now=now, summary=summary, writes=writes)  # fmt: skip
    note = _new_row(entry, row=row, vault=vault, now=now)
    note.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    if result.kind == "same":
        # Touched but not changed: remember the new mtime so the next run skips the read.
        writes.touch.append(note)
        summary.unchanged += 1
        return None
    parsed = result.note
    note.update(
        title=parsed.title[:1024],
        frontmatter_raw=parsed.yaml or "",
        frontmatter=parsed.metadata,
        tags=parsed.tags,
        body=parsed.body,
        encoding=parsed.encoding,
        has_bom=parsed.has_bom,
        newline=parsed.newline,
        content_hash=result.digest,
        state=Note.State.OK.value,
        reason="",
    )
    if row is None:
        summary.imported += 1
        writes.create.append(note)
    else:
        summary.updated += 1
        writes.update.append(note)
    return None


def notes_import(
    *,
    vault: Vault,
    paths: Iterable[str],
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import only these files of `vault` (paths relative to its root), nothing else.

    For the one note "Add from web address" writes, or the notes an export found changed on
    disk: the rest of the vault is not walked. A path no longer on disk is marked missing; one
    that is not a note inside the vault (hidden, a link out of it, not `.md`) is skipped.
    """
    root = Path(vault.root)
    if not root.is_dir():
        raise VaultNotFound(f"no such folder: {root}")
    root_real = os.path.realpath(root)
    templates = template_folders(Path(root))
    wanted = sorted(dict.fromkeys(str(p) for p in paths))
    known: dict[str, tuple] = {}
    for start in range(0, len(wanted), CHUNK):
        for row in Note.objects.filter(vault=vault, path__in=wanted[start : start + CHUNK]).values_list(
            "path", "id", "size", "mtime_ns", "content_hash", "state", "reason"
        ):
            known[row[0]] = row
    summary = ImportSummary()
    writes = _Writes()
    max_bytes = settings.VAULTCMS_MAX_NOTE_BYTES
    now = timezone.now()
    where = dict(vault=vault, now=now, summary=summary, writes=writes)
    to_read, gone = [], []
    for rel in wanted:
        parts = PurePosixPath(rel).parts
        full = os.path.join(root_real, *parts)
        if (
            rel.startswith("/")
            or ".." in parts
            or any(part.startswith(".") for part in parts)
            or not rel.lower().endswith(".md")
        ):
            summary.skipped.append((rel, "not a note inside the vault"))
            continue
        if not os.path.lexists(full):
            row = known.get(rel)
            if row is not None and row[5] != Note.State.MISSING:
                gone.append(row[1])
            continue
        entry = _Found(rel, full, _template_reason(rel, templates))
        if os.path.realpath(full) != full:  # the file, or a folder on its way, is a link
            entry.skip_reason = _symlink_reason(full, root_real)
        stat = _check(entry, row=known.get(rel), max_bytes=max_bytes, **where)
        if stat is not None:
            to_read.append((entry, known.get(rel), stat))
    for done, ((entry, row, stat), result) in enumerate(
        _read_all(to_read, max_bytes=max_bytes), 1
    ):
        _apply(entry, row=row, stat=stat, result=result, **where)
        if len(writes) >= CHUNK:
            writes.flush()
        if progress is not None:
            progress(done, len(to_read))
    writes.flush()
    for start in range(0, len(gone), CHUNK):
        Note.objects.filter(id__in=gone[start : start + CHUNK]).update(
            state=Note.State.MISSING, reason="file no longer in the vault", updated_at=now
        )
    summary.missing = len(gone)
    summary.skipped.sort()
    log.info("import vault=%s files=%s %s", vault.name, len(wanted), summary.line())
    return summary

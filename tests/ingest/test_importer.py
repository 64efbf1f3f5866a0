"""vault_import: incremental re-import, chunked writes, skipped files recovering, names."""

import os
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ingest import importer, notes
from ingest.importer import CHUNK, vault_import
from ingest.models import Note, Vault

pytestmark = pytest.mark.django_db

GOOD = "---\ntitle: Good\ntags: [ai]\n---\nBody.\n"


def state(path: str) -> tuple[str, str]:
    note = Note.objects.get(path=path)
    return note.state, note.reason


def bump_mtime(path: Path, seconds: int = 10) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


@pytest.fixture
def hashed(monkeypatch):
    """Count how many files the importer reads and hashes."""
    calls = []
    real = notes.content_hash

    def counting(data):
        calls.append(data)
        return real(data)

    monkeypatch.setattr(importer.notes, "content_hash", counting)
    return calls


def test_touch_without_change_is_unchanged_and_not_read_again(make_vault, hashed):
    root = make_vault({"a.md": GOOD, "b.md": GOOD})
    vault_import(root=root)
    assert len(hashed) == 2
    bump_mtime(root / "a.md")
    _, summary = vault_import(root=root)
    assert (summary.unchanged, summary.updated) == (2, 0)
    assert len(hashed) == 3  # a.md read once to learn it did not change
    assert Note.objects.get(path="a.md").mtime_ns == (root / "a.md").stat().st_mtime_ns
    _, summary = vault_import(root=root)
    assert summary.unchanged == 2 and len(hashed) == 3  # now stat alone settles it


def test_change_delete_and_reappear_keep_the_same_row(make_vault):
    root = make_vault({"a.md": GOOD, "b.md": GOOD})
    vault_import(root=root)
    ids = dict(Note.objects.values_list("path", "id"))

    (root / "a.md").write_text(GOOD.replace("Body.", "New body."), encoding="utf-8")
    bump_mtime(root / "a.md")
    kept = (root / "b.md").read_bytes()
    (root / "b.md").unlink()
    _, summary = vault_import(root=root)
    assert (summary.updated, summary.missing) == (1, 1)
    assert Note.objects.get(path="a.md").body == "New body.\n"
    assert state("b.md") == ("missing", "file no longer in the vault")
    assert Note.objects.get(path="b.md").body == "Body.\n"  # marked, never deleted

    _, summary = vault_import(root=root)
    assert summary.missing == 0  # already marked: not counted again

    (root / "b.md").write_bytes(kept)
    _, summary = vault_import(root=root)
    assert summary.updated == 1 and state("b.md") == ("ok", "")
    assert dict(Note.objects.values_list("path", "id")) == ids


def test_a_skipped_file_that_becomes_valid_is_imported(make_vault):
    root = make_vault({"n.md": "---\ntitle: [broken\n---\nbody\n"})
    vault_import(root=root)
    assert state("n.md")[0] == "skipped"
    _, summary = vault_import(root=root)  # same bytes: still skipped, still reported
    assert [p for p, _ in summary.skipped] == ["n.md"]

    (root / "n.md").write_text("---\ntitle: Fixed\n---\nbody\n", encoding="utf-8")
    bump_mtime(root / "n.md")
    vault_import(root=root)
    note = Note.objects.get(path="n.md")
    assert (note.state, note.reason, note.title, note.body) == ("ok", "", "Fixed", "body\n")


def test_a_good_note_that_breaks_keeps_its_last_good_content(make_vault):
    root = make_vault({"n.md": GOOD})
    vault_import(root=root)
    (root / "n.md").write_text("---\ntitle: [broken\n---\nBody.\n", encoding="utf-8")
    bump_mtime(root / "n.md")
    vault_import(root=root)
    note = Note.objects.get(path="n.md")
    assert note.state == "skipped" and note.reason.startswith("invalid YAML")
    assert (note.title, note.tags, note.body) == ("Good", ["ai"], "Body.\n")
    assert note.state != Note.State.OK


def test_skip_reason_follows_the_size_limit(make_vault, settings):
    settings.VAULTCMS_MAX_NOTE_BYTES = 10
    root = make_vault({"n.md": GOOD})
    vault_import(root=root)
    assert state("n.md") == ("skipped", f"too large: {len(GOOD)} bytes (limit 10)")
    settings.VAULTCMS_MAX_NOTE_BYTES = 20
    vault_import(root=root)
    assert state("n.md") == ("skipped", f"too large: {len(GOOD)} bytes (limit 20)")
    settings.VAULTCMS_MAX_NOTE_BYTES = 1000
    vault_import(root=root)
    assert state("n.md") == ("ok", "")


def test_utf16_notes_import(make_vault):
    text = "---\ntitle: Wide\ntags: [a]\n---\nbody ü\n"
    root = make_vault({"le.md": b"\xff\xfe" + text.encode("utf-16-le")})
    vault_import(root=root)
    note = Note.objects.get(path="le.md")
    assert (note.state, note.encoding, note.has_bom) == ("ok", "utf-16-le", True)
    assert note.body == "body ü\n"


def test_more_than_one_chunk_in_bounded_queries(make_vault):
    count = CHUNK * 2 + 203
    files = {
        f"f{i % 7}/n{i:05}.md": f"---\ntags: [t{i % 3}]\n---\nnote {i}\n" for i in range(count)
    }
    root = make_vault(files)
    with CaptureQueriesContext(connection) as ctx:
        _, summary = vault_import(root=root)
    assert summary.imported == count and Note.objects.filter(state="ok").count() == count
    assert len(ctx.captured_queries) < 40  # bulk writes per chunk, not one query per note
    assert Note.objects.get(path=f"f{1202 % 7}/n01202.md").body == "note 1202\n"

    for i in range(0, count, 2):  # change 602 notes, delete 550
        path = root / f"f{i % 7}/n{i:05}.md"
        path.write_text(f"---\ntags: [t{i % 3}]\n---\nchanged {i}\n", encoding="utf-8")
        bump_mtime(path)
    for i in range(1, 1101, 2):
        (root / f"f{i % 7}/n{i:05}.md").unlink()
    with CaptureQueriesContext(connection) as ctx:
        _, summary = vault_import(root=root)
    assert (summary.updated, summary.unchanged, summary.missing) == (602, count - 602 - 550, 550)
    assert len(ctx.captured_queries) < 60
    assert Note.objects.get(path=f"f{1202 % 7}/n01202.md").body == "changed 1202\n"
    assert Note.objects.filter(state="missing").count() == 550


def test_two_folders_with_the_same_name_are_two_vaults(tmp_path, make_vault):
    one = make_vault({"a.md": GOOD}, root=tmp_path / "x" / "notes")
    two = make_vault({"b.md": GOOD}, root=tmp_path / "y" / "notes")
    v1, _ = vault_import(root=one)
    v2, _ = vault_import(root=two)
    again, _ = vault_import(root=one)
    assert (v1.name, v2.name, again.id) == ("notes", "notes (2)", v1.id)
    assert Note.objects.filter(state="missing").count() == 0


def test_a_named_vault_follows_its_folder_when_moved(tmp_path, make_vault):
    old = make_vault({"a.md": GOOD}, root=tmp_path / "old")
    vault_import(root=old, name="Main")
    new = tmp_path / "new"
    old.rename(new)
    vault, summary = vault_import(root=new, name="Main")
    assert Vault.objects.count() == 1 and vault.root == str(new.resolve())
    assert summary.unchanged == 1


def test_file_name_that_is_not_utf8_is_skipped_not_crashing(make_vault):
    root = make_vault({"ok.md": GOOD})
    with open(os.path.join(os.fsencode(root), b"bad\xff name.md"), "wb") as fh:
        fh.write(GOOD.encode())
    _, summary = vault_import(root=root)
    assert summary.imported == 1
    assert summary.skipped == [("bad\\xff name.md", "file name is not valid UTF-8")]


def test_an_unreadable_folder_is_reported_and_its_notes_not_missing(make_vault, monkeypatch):
    root = make_vault({"locked/a.md": GOOD, "b.md": GOOD})
    vault_import(root=root)
    real_scandir = os.scandir

    def scandir(path="."):  # as if chmod 000 (which root would ignore)
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    _, summary = vault_import(root=root)
    assert summary.missing == 0 and state("locked/a.md") == ("ok", "")
    assert summary.skipped == [("locked/", "cannot list folder: Permission denied")]

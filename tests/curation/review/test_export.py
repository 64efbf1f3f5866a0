"""vault_export: conflicts, confinement to the vault, idempotence, links on both notes."""

import os
import stat
from pathlib import Path

import pytest

from curation.models import Review
from curation.review.export import vault_export
from ingest import files, notes
from ingest.files import safe_path
from ingest.importer import vault_import
from ingest.models import ExportRecord, Note
from tests.ingest.export_factory import (
    approve_description,
    approve_related,
    approve_tags,
    rename_tag,
)

pytestmark = pytest.mark.django_db

A = "---\ntitle: A\ntags: [python]  # mine\n---\n# A\n\nBody of A.\n"


def setup_vault(make_vault, files):
    root = make_vault(files)
    vault, _ = vault_import(root=root, name="v")
    return root, vault


def note(path: str) -> Note:
    return Note.objects.get(path=path)


def meta(root: Path, rel: str) -> dict:
    return notes.parse((root / rel).read_bytes(), path=rel).metadata


def test_tags_and_description_written_and_recorded(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A})
    tags = approve_tags(note("a.md"), ["ai/agents", "Python", "#new"])
    desc = approve_description(note("a.md"), "What A is about.")
    summary = vault_export(vault=vault)
    assert summary.written == ["a.md"] and summary.ok
    assert (root / "a.md").read_text() == (
        "---\ntitle: A\ntags: [python, ai/agents, new]  # mine\n"
        "description: What A is about.\n---\n# A\n\nBody of A.\n"
    )
    record = ExportRecord.objects.get()
    assert record.fields == ["description", "tags"]
    assert sorted(record.reviews) == sorted([tags.id, desc.id])
    assert record.new_hash == notes.content_hash((root / "a.md").read_bytes())
    row = note("a.md")
    assert row.content_hash == record.new_hash and row.tags == ["python", "ai/agents", "new"]
    assert row.frontmatter["description"] == "What A is about."
    assert Review.objects.filter(exported_at__isnull=True).count() == 0


def test_description_only_when_approved(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A})
    approve_tags(note("a.md"), ["x"])
    vault_export(vault=vault)
    assert "description" not in meta(root, "a.md")


def test_second_export_writes_nothing_and_reimport_sees_no_change(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A, "b.md": "plain body\n"})
    approve_tags(note("a.md"), ["x"])
    approve_related(note("a.md"), ["b.md"])
    first = vault_export(vault=vault)
    assert sorted(first.written) == ["a.md", "b.md"]
    stamps = {p: (root / p).stat().st_mtime_ns for p in ("a.md", "b.md")}
    second = vault_export(vault=vault)
    assert second.written == [] and second.ok
    assert {p: (root / p).stat().st_mtime_ns for p in ("a.md", "b.md")} == stamps
    assert ExportRecord.objects.count() == 2
    _, summary = vault_import(root=root, name="v")
    assert summary.unchanged == 2 and summary.updated == 0


def test_rerun_with_nothing_marked_exported_still_writes_nothing(make_vault):
    """Idempotent by content, not only by the exported flag."""
    root, vault = setup_vault(make_vault, {"a.md": A})
    approve_tags(note("a.md"), ["x"])
    vault_export(vault=vault)
    data = (root / "a.md").read_bytes()
    Review.objects.update(exported_at=None)
    again = vault_export(vault=vault)
    assert again.written == [] and again.unchanged == 1
    assert (root / "a.md").read_bytes() == data


def test_user_removing_an_exported_tag_is_respected(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A})
    approve_tags(note("a.md"), ["x"])
    vault_export(vault=vault)
    path = root / "a.md"
    path.write_text(path.read_text().replace(", x]", "]"))
    vault_import(root=root, name="v")
    assert vault_export(vault=vault).written == []
    assert meta(root, "a.md")["tags"] == ["python"]


def test_changed_file_is_a_conflict_then_reimport_reapplies(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A})
    review = approve_tags(note("a.md"), ["x"])
    edited = A.replace("Body of A.", "Body of A, edited in Obsidian.")
    (root / "a.md").write_text(edited)
    summary = vault_export(vault=vault)
    assert summary.written == [] and summary.conflicts[0][0] == "a.md"
    assert "run import_vault, then export again" in summary.conflicts[0][1]
    assert (root / "a.md").read_text() == edited
    review.refresh_from_db()
    assert review.exported_at is None and not ExportRecord.objects.exists()

    vault_import(root=root, name="v")
    summary = vault_export(vault=vault)
    assert summary.written == ["a.md"]
    text = (root / "a.md").read_text()
    assert "tags: [python, x]" in text and "edited in Obsidian" in text
    review.refresh_from_db()
    assert review.exported_at is not None


def test_file_changed_between_read_and_replace_is_a_conflict(make_vault, monkeypatch):
    root, vault = setup_vault(make_vault, {"a.md": A})
    approve_tags(note("a.md"), ["x"])
    real_mkstemp = files.tempfile.mkstemp

    def racing_mkstemp(*args, **kwargs):
        (root / "a.md").write_text(A + "typed meanwhile\n")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", racing_mkstemp)
    summary = vault_export(vault=vault)
    assert summary.conflicts and (root / "a.md").read_text().endswith("typed meanwhile\n")
    assert [p.name for p in root.iterdir()] == ["a.md"]  # the temp file is gone


def test_failed_write_leaves_the_file_and_no_temp_file(make_vault, monkeypatch):
    root, vault = setup_vault(make_vault, {"a.md": A})
    approve_tags(note("a.md"), ["x"])

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    summary = vault_export(vault=vault)
    assert summary.errors == [("a.md", "cannot write: No space left on device")]
    assert (root / "a.md").read_text() == A
    assert [p.name for p in root.iterdir()] == ["a.md"]
    assert Review.objects.get().exported_at is None


def test_a_name_near_the_file_name_limit_is_written_with_its_links(make_vault):
    """A 250-byte name (Arabic: two bytes a letter) leaves no room for the temp file's name to
    repeat it whole: the write still goes through, on both ends of its link."""
    long = "ملاحظة " * 18 + "x" * 12 + ".md"
    assert 240 < len(long.encode()) <= 255
    root, vault = setup_vault(make_vault, {long: "long\n", "b.md": "b\n"})
    approve_related(note("b.md"), [long])
    summary = vault_export(vault=vault)
    assert summary.ok and sorted(summary.written) == sorted(["b.md", long])
    assert meta(root, "b.md")["related"] == [f"[[{long[:-3]}]]"]
    assert meta(root, long)["related"] == ["[[b]]"]
    assert sorted(p.name for p in root.iterdir()) == sorted(["b.md", long])


def test_a_read_only_folder_holds_back_the_link_on_both_notes(make_vault, monkeypatch):
    """Found before anything is written (the temp file could not be made beside the note), so
    the partner note does not get a link that cannot come back."""
    root, vault = setup_vault(make_vault, {"locked/a.md": "a\n", "b.md": "b\n"})
    approve_related(note("b.md"), ["locked/a.md"])
    locked, real_access = os.path.realpath(root / "locked"), os.access
    if os.geteuid() == 0:  # root may write anywhere: the folder answers as it would to a user
        monkeypatch.setattr(files.os, "access", lambda p, mode: p != locked and real_access(p, mode))
    os.chmod(root / "locked", 0o555)
    try:
        summary = vault_export(vault=vault)
    finally:
        os.chmod(root / "locked", 0o755)
    assert summary.errors == [("locked/a.md", "the note's folder is read-only; export writes "
                               "beside the note")]  # fmt: skip
    assert [pair[:2] for pair in summary.held] == [("b.md", "locked/a.md")]
    assert (root / "b.md").read_text() == "b\n"


def test_permissions_are_kept(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A})
    os.chmod(root / "a.md", 0o640)
    approve_tags(note("a.md"), ["x"])
    assert vault_export(vault=vault).written == ["a.md"]
    assert stat.S_IMODE((root / "a.md").stat().st_mode) == 0o640


@pytest.mark.parametrize("bad", ["../outside.md", "/tmp/outside.md", "a/../../outside.md"])
def test_paths_leading_out_of_the_vault_are_refused(make_vault, tmp_path, bad):
    root, vault = setup_vault(make_vault, {"a.md": A})
    outside = tmp_path / "outside.md"
    outside.write_text(A)
    row = Note.objects.create(
        vault=vault, path=bad, title="x", content_hash=notes.content_hash(outside.read_bytes())
    )
    approve_tags(row, ["x"])
    summary = vault_export(vault=vault)
    assert [path for path, _ in summary.errors] == [bad]
    assert "refused" in summary.errors[0][1] or "out of the vault" in summary.errors[0][1]
    assert outside.read_text() == A


def test_symlinks_out_of_the_vault_are_not_followed(make_vault, tmp_path):
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    (outside_dir / "secret.md").write_text(A)
    root = make_vault({"a.md": A})
    os.symlink(outside_dir / "secret.md", root / "link.md")
    os.symlink(outside_dir, root / "linked-folder")
    vault, _ = vault_import(root=root, name="v")
    digest = notes.content_hash(A.encode())
    for rel in ("link.md", "linked-folder/secret.md"):
        row, _ = Note.objects.update_or_create(
            vault=vault, path=rel,
            defaults={"state": Note.State.OK, "content_hash": digest, "title": rel},
        )  # fmt: skip
        approve_tags(row, ["x"])
    summary = vault_export(vault=vault)
    assert sorted(p for p, _ in summary.errors) == ["link.md", "linked-folder/secret.md"]
    assert (outside_dir / "secret.md").read_text() == A
    assert os.path.islink(root / "link.md")


def test_safe_path_accepts_normal_paths(tmp_path):
    (tmp_path / "f").mkdir()
    assert safe_path(str(tmp_path), "f/n.md") == str(tmp_path.resolve() / "f" / "n.md")
    assert safe_path(str(tmp_path), "🚀 emoji.md").endswith("🚀 emoji.md")


def test_related_links_go_on_both_notes(make_vault):
    root, vault = setup_vault(
        make_vault,
        {
            "a.md": A,
            "x/B.md": "---\nrelated:\n  - \"[[Old]]\"\n---\nB body\n",
            "C.md": "C body\n",
            "C# tricks.md": "sharp\n",
            "x/Same.md": "one\n",
            "y/Same.md": "two\n",
        },
    )
    review = approve_related(
        note("a.md"),
        ["x/B.md", "C.md", "a.md", "missing.md", "C# tricks.md", "x/Same.md"],
    )
    summary = vault_export(vault=vault)
    assert summary.ok
    assert sorted(summary.written) == ["C.md", "a.md", "x/B.md", "x/Same.md"]
    assert meta(root, "a.md")["related"] == ["[[B]]", "[[C]]", "[[x/Same]]"]
    assert meta(root, "x/B.md")["related"] == ["[[Old]]", "[[a]]"]
    assert meta(root, "C.md")["related"] == ["[[a]]"]
    assert meta(root, "x/Same.md")["related"] == ["[[a]]"]
    assert (root / "C# tricks.md").read_text() == "sharp\n"
    assert (root / "C.md").read_text() == '---\nrelated:\n  - "[[a]]"\n---\nC body\n'
    review.refresh_from_db()
    assert review.exported_at is not None
    assert vault_export(vault=vault).written == []


def test_existing_links_in_any_spelling_are_not_duplicated(make_vault):
    root, vault = setup_vault(
        make_vault,
        {
            "a.md": '---\nrelated: ["[[notes/B|Bee]]", "[[c.md]]", "[[D#Heading]]"]\n---\nA\n',
            "notes/B.md": "---\nrelated:\n  - [[a]]\n---\nB\n",
            "c.md": "C\n",
            "D.md": "D\n",
        },
    )
    approve_related(note("a.md"), ["notes/B.md", "c.md", "D.md"])
    before_a = (root / "a.md").read_bytes()
    summary = vault_export(vault=vault)
    assert (root / "a.md").read_bytes() == before_a
    assert (root / "notes/B.md").read_text() == "---\nrelated:\n  - [[a]]\n---\nB\n"
    assert sorted(summary.written) == ["D.md", "c.md"]


def test_embeds_and_markdown_links_in_the_body_count_as_links(make_vault):
    """Obsidian lists embeds and markdown links among a note's links: related does not repeat
    them (nor links written in code, which are not links)."""
    body = ("![[Target embed]] ![[Sub/Deep#Section]] [see](Target%20mdlink.md) "
            "[here](<./Angle one.md>) [site](https://x.y/Web.md) `[[Coded]]`\n")  # fmt: skip
    root, vault = setup_vault(make_vault, {
        "a.md": body, "Target embed.md": "e\n", "Sub/Deep.md": "d\n", "Target mdlink.md": "m\n",
        "Angle one.md": "o\n", "Web.md": "w\n", "Coded.md": "c\n",
    })  # fmt: skip
    others = ["Target embed.md", "Sub/Deep.md", "Target mdlink.md", "Angle one.md", "Web.md",
              "Coded.md"]  # fmt: skip
    approve_related(note("a.md"), others)
    assert vault_export(vault=vault).ok
    assert meta(root, "a.md")["related"] == ["[[Web]]", "[[Coded]]"]
    assert (root / "a.md").read_text().endswith(body)
    assert notes.body_links(body) == ["Target embed", "Sub/Deep", "Target mdlink.md",
                                      "Angle one.md"]  # fmt: skip


def test_name_breaking_characters_never_become_link_targets(make_vault):
    root, vault = setup_vault(
        make_vault, {"a^b.md": "x\n", "p|q.md": "y\n", "[r].md": "z\n", "ok.md": "ok\n"}
    )
    approve_related(note("ok.md"), ["a^b.md", "p|q.md", "[r].md"])
    approve_related(note("a^b.md"), ["ok.md"])
    summary = vault_export(vault=vault)
    # a^b.md cannot be linked back, so it links to nothing: a link is on both notes or neither.
    assert summary.written == [] and summary.ok
    assert (root / "a^b.md").read_text() == "x\n"
    assert (root / "ok.md").read_text() == "ok\n"


def test_a_note_whose_name_ends_in_md_is_no_link_target_and_holds_back_no_one(make_vault):
    """`bake.md.md`: the link `[[bake.md]]` is read as naming `bake.md`, so no note could
    link to it; it gets no links, and the links between the other notes are written."""
    root, vault = setup_vault(make_vault, {"bake.md.md": "x\n", "Loaf.md": "L\n", "Starter.md": "S\n"})
    approve_related(note("Loaf.md"), ["bake.md.md", "Starter.md"])
    approve_related(note("bake.md.md"), ["Starter.md"])
    summary = vault_export(vault=vault)
    assert summary.ok and summary.held == [], (summary.errors, summary.held)
    assert meta(root, "Loaf.md")["related"] == ["[[Starter]]"]
    assert meta(root, "Starter.md")["related"] == ["[[Loaf]]"]
    assert (root / "bake.md.md").read_text() == "x\n"


@pytest.mark.parametrize("key", ["tag", "Tags"])
def test_tags_under_an_older_or_capitalised_key_stay_the_notes_after_export(make_vault, key):
    """`tag: baking` (Obsidian's older key) or `Tags:`: export adds only the new tags under
    `tags`, and the next import reads the note's tags from both keys, losing none."""
    root, vault = setup_vault(make_vault, {"a.md": f"---\n{key}: baking\n---\nA\n"})
    assert note("a.md").tags == ["baking"]
    approve_tags(note("a.md"), ["baking", "bread/sourdough"])
    assert vault_export(vault=vault).written == ["a.md"]
    assert (root / "a.md").read_text() == (
        f"---\n{key}: baking\ntags:\n  - bread/sourdough\n---\nA\n")
    vault_import(root=root, name="v")
    assert note("a.md").tags == ["bread/sourdough", "baking"]
    assert vault_export(vault=vault).written == []


def test_selected_notes_only_plus_both_ends_of_their_links(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A, "b.md": "B\n", "c.md": "C\n"})
    approve_tags(note("a.md"), ["x"])
    approve_tags(note("c.md"), ["y"])
    approve_related(note("b.md"), ["a.md"])
    summary = vault_export(vault=vault, note_ids=[note("a.md").id])
    assert sorted(summary.written) == ["a.md", "b.md"]
    assert (root / "c.md").read_text() == "C\n"


def test_dry_run_writes_nothing(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A, "n.md": "no frontmatter\r\n"})
    approve_tags(note("a.md"), ["x"])
    approve_tags(note("n.md"), ["y"])
    before = {p: (root / p).read_bytes() for p in ("a.md", "n.md")}
    summary = vault_export(vault=vault, dry_run=True)
    assert summary.line().startswith("would write 2")
    diffs = dict(summary.diffs)
    assert "-tags: [python]  # mine\n+tags: [python, x]  # mine\n" in diffs["a.md"]
    assert diffs["n.md"].startswith("--- a/n.md\n+++ b/n.md\n")
    assert {p: (root / p).read_bytes() for p in ("a.md", "n.md")} == before
    assert not ExportRecord.objects.exists()
    assert Review.objects.filter(exported_at__isnull=False).count() == 0


def test_tag_renames_merges_and_removals(make_vault):
    root, vault = setup_vault(
        make_vault,
        {
            "a.md": "---\ntags:\n  - Project\n  - project/sub\n  - keep\n---\nA\n",
            "b.md": "---\ntags: [old, merged, stays]\n---\nB\n",
            "c.md": "---\ntags: [untouched]\n---\nC\n",
        },
    )
    rename_tag(note("a.md"), "project", "work/project")
    rename_tag(note("a.md"), "old", "merged")
    rename_tag(note("a.md"), "stays", "")
    approve_tags(note("c.md"), ["project/new"])
    summary = vault_export(vault=vault)
    assert sorted(summary.written) == ["a.md", "b.md", "c.md"]
    assert (root / "a.md").read_text() == (
        "---\ntags:\n  - work/project\n  - work/project/sub\n  - keep\n---\nA\n"
    )
    assert meta(root, "b.md")["tags"] == ["merged"]
    assert meta(root, "c.md")["tags"] == ["untouched", "work/project/new"]
    assert vault_export(vault=vault).written == []


def test_skipped_or_missing_notes_are_reported_not_written(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A, "broken.md": "---\nx: [\n---\nb\n"})
    approve_tags(note("broken.md"), ["x"])
    tags = approve_tags(note("a.md"), ["x"])
    (root / "a.md").unlink()
    vault_import(root=root, name="v")
    summary = vault_export(vault=vault)
    # A note the user broke is an error to fix; one deleted (and imported as deleted) is not.
    assert dict(summary.errors).keys() == {"broken.md"}
    assert summary.missing == ["a.md"] and "deleted from the vault 1" in summary.line()
    assert not (root / "a.md").exists()
    # Its approval waits: if the note comes back, the next export writes it.
    (root / "a.md").write_text(A)
    vault_import(root=root, name="v")
    assert vault_export(vault=vault).written == ["a.md"] and meta(root, "a.md")["tags"] == [
        "python", "x"]
    assert Review.objects.get(id=tags.id).exported_at is not None


@pytest.mark.parametrize("spoil", ["edited", "deleted", "refused"])
def test_a_link_is_held_back_on_both_notes_when_one_cannot_be_written(make_vault, spoil):
    """The link's other note changed on disk, was deleted without a new import, or holds
    frontmatter export refuses: neither note gets the link this run, and the review waits."""
    root, vault = setup_vault(make_vault, {"a.md": A, "b.md": "B\n", "c.md": "C\n"})
    review = approve_related(note("a.md"), ["b.md", "c.md"])
    approve_tags(note("b.md"), ["x"])
    if spoil == "edited":
        (root / "b.md").write_text("B, edited by its author\n")
    elif spoil == "deleted":
        (root / "b.md").unlink()
    else:
        (root / "b.md").write_text("---\ntags: {outdoor: 1}\n---\nB\n")
        vault_import(root=root, name="v")
    summary = vault_export(vault=vault)
    assert [path for path, _ in summary.conflicts + summary.errors] == ["b.md"]
    assert [pair[:2] for pair in summary.held] == [("a.md", "b.md")]
    assert summary.held[0][2].startswith("b.md: ") and "links held back 1" in summary.line()
    assert meta(root, "a.md")["related"] == ["[[c]]"] and meta(root, "c.md")["related"] == [
        "[[a]]"]
    assert review.exported_at is None and Review.objects.get(id=review.id).exported_at is None
    if spoil == "deleted":
        return
    # Once b.md can be written, the next export writes the rest of the link, on both notes.
    (root / "b.md").write_text("B, edited by its author\n")
    vault_import(root=root, name="v")
    again = vault_export(vault=vault)
    assert again.ok and again.held == []
    assert meta(root, "a.md")["related"] == ["[[c]]", "[[b]]"]
    assert meta(root, "b.md")["related"] == ["[[a]]"]
    assert (root / "b.md").read_text().endswith("---\nB, edited by its author\n")
    assert Review.objects.get(id=review.id).exported_at is not None


def test_flow_mapping_frontmatter_gets_its_keys_inside_its_braces(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": "---\n{title: flow, tags: [a]}\n---\nA\n"})
    approve_tags(note("a.md"), ["x"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert (root / "a.md").read_text() == "---\n{title: flow, tags: [a, x]}\n---\nA\n"


def test_progress_reports_every_file(make_vault):
    _, vault = setup_vault(make_vault, {"a.md": A, "b.md": "B\n"})
    approve_tags(note("a.md"), ["x"])
    approve_tags(note("b.md"), ["y"])
    calls = []
    vault_export(vault=vault, progress=lambda done, total, path: calls.append((done, total, path)))
    assert calls == [(1, 2, "a.md"), (2, 2, "b.md")]


def test_a_concurrent_export_that_wrote_the_same_bytes_is_not_a_conflict(make_vault, monkeypatch):
    root, vault = setup_vault(make_vault, {"a.md": A})
    approve_tags(note("a.md"), ["x"])
    expected = A.replace("tags: [python]", "tags: [python, x]")
    real_mkstemp = files.tempfile.mkstemp

    def other_export_first(*args, **kwargs):
        (root / "a.md").write_text(expected)
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", other_export_first)
    summary = vault_export(vault=vault)
    assert summary.ok and summary.unchanged == 1
    assert (root / "a.md").read_text() == expected


def test_related_values_given_as_names_or_links_are_resolved(make_vault):
    root, vault = setup_vault(make_vault, {"a.md": A, "x/B.md": "B\n", "C.md": "C\n"})
    approve_related(note("a.md"), ["B", "[[C]]", "x/B.md", "nowhere"])
    vault_export(vault=vault)
    assert meta(root, "a.md")["related"] == ["[[B]]", "[[C]]"]


def test_read_only_and_hard_linked_files_are_not_replaced(make_vault):
    root, vault = setup_vault(make_vault, {"ro.md": A, "hl.md": A})
    os.link(root / "hl.md", root.parent / "elsewhere-link.md")
    os.chmod(root / "ro.md", 0o444)
    approve_tags(note("ro.md"), ["x"])
    approve_tags(note("hl.md"), ["x"])
    summary = vault_export(vault=vault)
    errors = dict(summary.errors)
    assert "read-only" in errors["ro.md"] and (root / "ro.md").read_text() == A
    assert "hard links" in errors["hl.md"]
    assert (root.parent / "elsewhere-link.md").read_text() == A


def test_notes_no_link_can_name_alone_get_no_links(make_vault):
    """` Arepa.md` (a link's text is read trimmed) and `Kimchi.md` beside `kimchi.md`
    (Obsidian resolves links without regard to case): approved links to them are not
    written, on either note, and nothing is held back waiting for them."""
    root, vault = setup_vault(make_vault, {"a.md": A, " Arepa.md": "Dough\n", "Kimchi.md": "K\n",
                                           "kimchi.md": "k\n", "c.md": "C\n"})  # fmt: skip
    approve_related(note("a.md"), [" Arepa.md", "Kimchi.md", "kimchi.md", "c.md"])
    approve_related(note("kimchi.md"), ["c.md"])
    summary = vault_export(vault=vault)
    assert summary.ok and summary.held == [] and sorted(summary.written) == ["a.md", "c.md"]
    assert meta(root, "a.md")["related"] == ["[[c]]"] and meta(root, "c.md")["related"] == [
        "[[a]]"]
    for name, text in ((" Arepa.md", "Dough\n"), ("Kimchi.md", "K\n"), ("kimchi.md", "k\n")):
        assert (root / name).read_text() == text


def test_link_names_are_chosen_against_the_files_on_disk_not_only_the_imported(make_vault):
    """A note named as another was added after the import: the name written must still
    mean one note, so it carries the folder."""
    root, vault = setup_vault(make_vault, {"Garden/Compost Heap.md": "Heap\n",
                                           "Garden/Compost Tea.md": "Tea\n"})  # fmt: skip
    approve_related(note("Garden/Compost Tea.md"), ["Garden/Compost Heap.md"])
    (root / "Compost Heap.md").write_text("A new note, not imported yet\n")
    assert vault_export(vault=vault).ok
    assert meta(root, "Garden/Compost Tea.md")["related"] == ["[[Garden/Compost Heap]]"]
    assert meta(root, "Garden/Compost Heap.md")["related"] == ["[[Compost Tea]]"]

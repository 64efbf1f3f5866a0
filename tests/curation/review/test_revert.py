"""Undoing an export: per note (page, admin action), per run (admin action, command)."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from curation.models import Suggestion
from curation.review.decisions import suggestion_decide
from curation.review.export import exports_revert, heads, vault_export
from ingest import notes
from ingest.importer import vault_import
from ingest.models import ExportRecord, Note
from tests.ingest.export_factory import approve_description, approve_tags

pytestmark = pytest.mark.django_db

A = "---\ntitle: A\ntags: [python]  # mine\n---\n# A\n\nBody of A.\n"
B = b"\xef\xbb\xbfno frontmatter here\r\nsecond line\r\n"  # BOM, CRLF, no frontmatter
C = "---\r\ntitle: C\r\n---\r\nC body\r\n"


def setup(make_vault):
    root = make_vault({"a.md": A, "b.md": B, "c.md": C})
    vault, _ = vault_import(root=root, name="v")
    for path in ("a.md", "b.md", "c.md"):
        note = Note.objects.get(path=path)
        approve_tags(note, ["ai/agents", "new"])
        approve_description(note, f"What {path} is about.")
    summary = vault_export(vault=vault)
    assert sorted(summary.written) == ["a.md", "b.md", "c.md"]
    return root, vault, summary.run


def originals():
    return {"a.md": A.encode(), "b.md": B, "c.md": C.encode()}


def test_heads_keep_only_what_differs():
    old, new = b"---\na: 1\n---\nbody\n", b"---\na: 1\nb: 2\n---\nbody\n"
    head, length = heads(old, new)
    assert head + new[length:] == old and len(head) < len(old)


def test_record_keeps_a_small_undo(make_vault):
    root, vault, run = setup(make_vault)
    record = ExportRecord.objects.get(note__path="a.md")
    assert record.run == run and len(bytes(record.old_head)) < len(A)


def test_revert_puts_back_the_exact_old_bytes_and_the_audit_shows_it(make_vault, moderator):
    root, vault, run = setup(make_vault)
    summary = exports_revert(records=ExportRecord.objects.filter(run=run), user=moderator)
    assert sorted(summary.reverted) == ["a.md", "b.md", "c.md"] and summary.ok
    for path, data in originals().items():
        assert (root / path).read_bytes() == data
    for record in ExportRecord.objects.all():
        assert record.reverted_by == moderator and record.reverted_at is not None
    note = Note.objects.get(path="a.md")
    assert note.content_hash == notes.content_hash(A.encode()) and note.tags == ["python"]
    _, imported = vault_import(root=root, name="v")
    assert imported.unchanged == 3 and imported.updated == 0
    # What was reverted is not written again by the next export.
    assert vault_export(vault=vault).written == []


def test_a_file_changed_since_is_a_conflict_and_left_alone(make_vault, moderator):
    root, vault, run = setup(make_vault)
    changed = (root / "a.md").read_bytes() + b"\nmy own line\n"
    time.sleep(0.01)
    (root / "a.md").write_bytes(changed)
    summary = exports_revert(records=ExportRecord.objects.filter(run=run), user=moderator)
    assert [p for p, _ in summary.conflicts] == ["a.md"]
    assert "changed since this export" in summary.conflicts[0][1]
    assert (root / "a.md").read_bytes() == changed
    assert (root / "b.md").read_bytes() == B
    assert ExportRecord.objects.get(note__path="a.md").reverted_at is None


def test_revert_a_later_export_first(make_vault, moderator):
    root, vault, run = setup(make_vault)
    first = ExportRecord.objects.get(note__path="a.md")
    approve_tags(Note.objects.get(path="a.md"), ["later"])
    second_run = vault_export(vault=vault).run
    assert exports_revert(records=[first], user=moderator).conflicts  # the later one is on top
    exports_revert(records=ExportRecord.objects.filter(run=second_run), user=moderator)
    first.refresh_from_db()
    assert exports_revert(records=[first], user=moderator).ok
    assert (root / "a.md").read_bytes() == A.encode()


def test_revert_carries_open_suggestions_back(make_vault, moderator, make_suggestion):
    root = make_vault({"a.md": A})
    vault, _ = vault_import(root=root, name="v")
    note = Note.objects.get(path="a.md")
    tags = make_suggestion(note, "tags", ["x"])
    desc = make_suggestion(note, "description", "About A, in one line.")
    # The hash as the engine records it at creation.
    Suggestion.objects.filter(note=note).update(note_hash=note.content_hash)
    suggestion_decide(suggestion_id=tags.pk, user=moderator, decision="approved")
    vault_export(vault=vault)
    assert Suggestion.objects.get(pk=desc.pk).note_hash != note.content_hash  # carried forward
    exports_revert(records=ExportRecord.objects.all(), user=moderator)
    desc = Suggestion.objects.select_related("note").get(pk=desc.pk)
    assert desc.note_hash == note.content_hash and not desc.is_stale


def test_note_page_button_reverts_the_last_export(client, make_vault, moderator):
    root, vault, run = setup(make_vault)
    note = Note.objects.get(path="b.md")
    client.force_login(moderator)
    page = client.get(reverse("curation:review_note", args=[note.pk])).content.decode()
    assert 'id="revert-export"' in page
    response = client.post(reverse("curation:review_note_revert", args=[note.pk]), follow=True)
    assert "Reverted the export of b.md" in response.content.decode()
    assert (root / "b.md").read_bytes() == B
    again = client.post(reverse("curation:review_note_revert", args=[note.pk]), follow=True)
    assert "has no export to revert" in again.content.decode()


def test_admin_actions_revert_one_record_or_its_whole_run(client, make_vault, moderator, viewer):
    root, vault, run = setup(make_vault)
    url = reverse("admin:ingest_exportrecord_changelist")
    one = ExportRecord.objects.get(note__path="c.md")
    client.force_login(viewer)
    client.post(url, {"action": "revert_exports", "_selected_action": [one.pk]})
    assert (root / "c.md").read_bytes() != C.encode()  # a viewer may not
    client.force_login(moderator)
    response = client.post(
        url, {"action": "revert_exports", "_selected_action": [one.pk]}, follow=True
    )
    assert "Revert: reverted 1, conflicts 0." in response.content.decode()
    assert (root / "c.md").read_bytes() == C.encode()
    a = ExportRecord.objects.get(note__path="a.md")
    response = client.post(
        url, {"action": "revert_export_runs", "_selected_action": [a.pk]}, follow=True
    )
    assert "Revert: reverted 2, conflicts 0." in response.content.decode()
    for path, data in originals().items():
        assert (root / path).read_bytes() == data
    listing = client.get(url, {"reverted_by__id__exact": moderator.pk}).content.decode()
    assert listing.count("mod</td>") == 3


def test_export_vault_revert_command(make_vault, moderator):
    root = make_vault({"a.md": A, "b.md": B})
    vault, _ = vault_import(root=root, name="v")
    for path in ("a.md", "b.md"):
        approve_tags(Note.objects.get(path=path), ["x"])
    out = StringIO()
    call_command("export_vault", "--vault", "v", stdout=out)
    run = ExportRecord.objects.first().run
    assert f"export run {run}" in out.getvalue()
    time.sleep(0.01)
    (root / "b.md").write_bytes((root / "b.md").read_bytes() + b"edit\r\n")
    out = StringIO()
    with pytest.raises(CommandError, match="1 note\\(s\\) not reverted"):
        call_command("export_vault", "--revert", run, "--as", moderator.username, stdout=out)
    assert f"run {run}: reverted 1, conflicts 1" in out.getvalue()
    assert (root / "a.md").read_bytes() == A.encode()
    with pytest.raises(CommandError, match="say who reverts"):
        call_command("export_vault", "--revert", run)

"""A note export cannot process (490 nested lists, a crash in the writer) is reported and
skipped; every other note is exported, and the files written, the ExportRecords and the
reviews marked exported always agree, whatever failed and wherever it stopped."""

import hashlib
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse

from curation import operations
from curation.models import Operation, Review
from curation.review import export as exporter
from curation.review.export import vault_export
from ingest import notes
from ingest.importer import vault_import
from ingest.models import ExportRecord, Note
from tests.curation.review.conftest import role
from tests.ingest.export_factory import approve_tags

pytestmark = pytest.mark.django_db

DEPTH = 490
DEEP = "---\ntitle: Deep\nextra: " + "[" * DEPTH + "]" * DEPTH + "\n---\nDeep body.\n"
PLAIN = "---\ntitle: {0}\n---\n{0} body.\n"


def as_if_imported(note: Note, root: Path) -> None:
    """The row of a note an earlier version imported (before the depth limit), as it was."""
    data = (root / note.path).read_bytes()
    Note.objects.filter(pk=note.pk).update(
        state=Note.State.OK, reason="", content_hash=hashlib.sha256(data).hexdigest()
    )


@pytest.fixture
def vault(make_vault):
    files = {"a.md": PLAIN.format("A"), "deep.md": DEEP, "z.md": PLAIN.format("Z")}
    root = make_vault(files)
    vault, _ = vault_import(root=root, name="v")
    as_if_imported(Note.objects.get(path="deep.md"), root)
    for path in files:
        approve_tags(Note.objects.get(path=path), ["ai/agents"])
    vault.files = files
    return vault


def consistent(vault) -> dict[str, bool]:
    """Per note: was the file changed? Its ExportRecord and its reviews must say the same."""
    changed = {}
    for note in Note.objects.filter(vault=vault):
        data = (Path(vault.root) / note.path).read_text(encoding="utf-8")
        written = data != vault.files[note.path]
        recorded = ExportRecord.objects.filter(note=note).exists()
        exported = Review.objects.filter(suggestion__note=note, exported_at__isnull=False).exists()
        assert written == recorded == exported, (note.path, written, recorded, exported)
        changed[note.path] = written
    return changed


def test_import_refuses_deep_nesting_the_same_way_in_any_stack(make_vault):
    _, summary = vault_import(root=make_vault({"deep.md": DEEP}))
    assert summary.skipped == [("deep.md", "frontmatter nests deeper than 100 levels")]
    with pytest.raises(notes.NoteError, match="nests deeper than 100 levels"):
        notes.load_yaml(DEEP.split("---\n")[1])


def test_shallow_nesting_still_imports(make_vault):
    shallow = "---\nextra: " + "[" * 90 + "]" * 90 + "\n---\nBody.\n"
    _, summary = vault_import(root=make_vault({"ok.md": shallow}))
    assert summary.imported == 1 and not summary.skipped


def test_export_vault_command_skips_the_deep_note_and_exports_the_others(vault):
    out = StringIO()
    with pytest.raises(CommandError, match="1 note\\(s\\) not exported"):
        call_command("export_vault", stdout=out)
    text = out.getvalue()
    assert "error deep.md: frontmatter nests deeper than 100 levels" in text
    assert "vault v: written 2, unchanged 0, conflicts 0, errors 1" in text
    assert consistent(vault) == {"a.md": True, "deep.md": False, "z.md": True}


def test_dry_run_reports_the_deep_note_and_diffs_the_others(vault):
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("export_vault", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "+++ b/a.md" in text and "+++ b/z.md" in text
    assert "error deep.md: frontmatter nests deeper than 100 levels" in text
    assert consistent(vault) == {"a.md": False, "deep.md": False, "z.md": False}


def run_operations(client, *, confirm: bool = False) -> str:
    """Run the queued operation as the workers would and, with `confirm`, press the preview's
    "Export these N notes" and run that export too; the pages shown, one after the other."""
    op = Operation.objects.order_by("-id").first()
    operations.operation_run(operation_id=op.id)
    pages = [client.get(reverse("curation:operation", args=[op.id])).content.decode()]
    if confirm:
        client.post(reverse("curation:operation-confirm", args=[op.id]))
        op = Operation.objects.order_by("-id").first()
        assert op.kind == Operation.Kind.EXPORT
        operations.operation_run(operation_id=op.id)
        pages.append(client.get(reverse("curation:operation", args=[op.id])).content.decode())
    return "\n".join(pages)


@pytest.mark.parametrize("action", ["export_approved_vaults", "preview_export_vaults"])
def test_admin_actions_report_the_deep_note(client, vault, action):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    response = client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": action, "_selected_action": [vault.pk]},
        follow=True,
    )
    assert response.status_code == 200
    html = run_operations(client, confirm=action == "export_approved_vaults")
    assert "deep.md" in html and "nests deeper than 100 levels" in html
    written = action == "export_approved_vaults"
    assert consistent(vault) == {"a.md": written, "deep.md": False, "z.md": written}


def test_viewer_preview_of_the_deep_note_is_no_500(client, vault):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.groups.add(role("Viewer"))
    client.force_login(viewer)
    client.raise_request_exception = False
    response = client.post(
        reverse("admin:ingest_note_changelist"),
        {"action": "preview_export_notes",
         "_selected_action": list(Note.objects.values_list("pk", flat=True))},
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    assert "nests deeper than 100 levels" in run_operations(client)


@pytest.mark.parametrize("error", [RecursionError, RuntimeError, ValueError])
def test_any_failure_of_one_note_is_reported_and_the_rest_exported(vault, monkeypatch, error):
    real = exporter.rewrite

    def failing(data, changes):
        if b"title: A" in data:
            raise error("boom in the writer")
        return real(data, changes)

    monkeypatch.setattr(exporter, "rewrite", failing)
    summary = vault_export(vault=vault)
    assert [p for p, _ in summary.errors] == ["a.md", "deep.md"]
    assert "could not be processed" in dict(summary.errors)["a.md"]
    assert summary.written == ["z.md"]
    assert consistent(vault) == {"a.md": False, "deep.md": False, "z.md": True}


def test_a_crash_mid_export_leaves_files_and_rows_agreeing(vault, monkeypatch):
    """Killed between notes (here: an exception no handler catches, after a.md was written):
    what is on disk has its record and its reviews are marked exported."""
    real = exporter.rewrite

    def crash_on_z(data, changes):
        if b"title: Z" in data:
            raise KeyboardInterrupt
        return real(data, changes)

    monkeypatch.setattr(exporter, "rewrite", crash_on_z)
    with pytest.raises(KeyboardInterrupt):
        vault_export(vault=vault)
    assert consistent(vault) == {"a.md": True, "deep.md": False, "z.md": False}
    monkeypatch.setattr(exporter, "rewrite", real)
    summary = vault_export(vault=vault)  # the next run finishes the job
    assert summary.written == ["z.md"]
    assert consistent(vault) == {"a.md": True, "deep.md": False, "z.md": True}


def test_a_failed_database_write_after_the_file_leaves_no_half_export(vault, monkeypatch):
    """The record cannot be saved: the new file must not stay without it (or the reverse)."""
    real = ExportRecord.objects.create

    def refuse(**kwargs):
        if Note.objects.get(pk=kwargs["note_id"]).path == "a.md":
            from django.db import DatabaseError

            raise DatabaseError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(ExportRecord.objects, "create", refuse)
    summary = vault_export(vault=vault)
    assert "a.md" in dict(summary.errors)
    assert consistent(vault) == {"a.md": False, "deep.md": False, "z.md": True}

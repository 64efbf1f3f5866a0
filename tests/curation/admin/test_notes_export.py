"""The admin doors to export, over HTTP: every action queues a preview (nothing written), the
preview's page shows the diff per note and "Export these N notes", the export's page the
summary with conflicts and their reasons, and "Re-import" of the conflicting notes."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from curation import operations
from curation.models import Operation, Review
from ingest.importer import vault_import
from ingest.models import ExportRecord, Note
from tests.ingest.export_factory import approve_description, approve_tags

pytestmark = pytest.mark.django_db

A = "---\ntitle: A\n---\nBody of A.\n"
VAULTS = reverse("admin:ingest_vault_changelist")
NOTES = reverse("admin:ingest_note_changelist")


@pytest.fixture
def vault(make_vault):
    vault, _ = vault_import(root=make_vault({"a.md": A, "🚀 b.md": "B\n"}), name="v")
    approve_description(Note.objects.get(path="a.md"), "<script>alert(1)</script> & co")
    approve_tags(Note.objects.get(path="🚀 b.md"), ["ai/agents"])
    return vault


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    return client


def note_file(vault, path):
    return (Path(vault.root) / path).read_text(encoding="utf-8")


def act(client, url, action, ids) -> Operation:
    """Post an admin action; it answers with a redirect to its operation, which the test then
    runs as the worker would."""
    response = client.post(url, {"action": action, "_selected_action": ids})
    op = Operation.objects.order_by("-id").first()
    assert response.status_code == 302 and response.url == reverse("curation:operation", args=[op.id])
    assert op.state == Operation.State.PENDING  # nothing done inside the request
    operations.operation_run(operation_id=op.id)
    op.refresh_from_db()
    return op


def page(client, op) -> str:
    response = client.get(reverse("curation:operation", args=[op.id]))
    assert response.status_code == 200
    return response.content.decode()


def confirm(client, preview) -> Operation:
    response = client.post(reverse("curation:operation-confirm", args=[preview.id]))
    export = Operation.objects.order_by("-id").first()
    assert export.kind == Operation.Kind.EXPORT
    assert response.url == reverse("curation:operation", args=[export.id])
    operations.operation_run(operation_id=export.id)
    export.refresh_from_db()
    return export


def test_preview_shows_escaped_diff_and_writes_nothing(admin_client, vault):
    op = act(admin_client, VAULTS, "preview_export_vaults", [vault.pk])
    html = page(admin_client, op)
    assert op.kind == Operation.Kind.PREVIEW and op.state == Operation.State.SUCCEEDED
    assert "Nothing has been written" in html and "Would write: <strong>2</strong>" in html
    assert "Export these 2 notes" in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "🚀 b.md" in html and '<span class="add">+  - ai/agents</span>' in html
    assert note_file(vault, "a.md") == A
    assert not Review.objects.filter(exported_at__isnull=False).exists()


def test_export_action_previews_then_writes_only_after_confirming(admin_client, vault):
    preview = act(admin_client, VAULTS, "export_approved_vaults", [vault.pk])
    assert preview.kind == Operation.Kind.PREVIEW
    assert note_file(vault, "a.md") == A  # nothing written without the confirmation
    export = confirm(admin_client, preview)
    assert export.state == Operation.State.SUCCEEDED and export.result["written"] == 2
    assert "Written: <strong>2</strong>" in page(admin_client, export)
    assert note_file(vault, "a.md") == (
        "---\ntitle: A\ndescription: <script>alert(1)</script> & co\n---\nBody of A.\n"
    )
    assert note_file(vault, "🚀 b.md") == "---\ntags:\n  - ai/agents\n---\nB\n"
    assert ExportRecord.objects.count() == 2


def test_export_selected_notes_only(admin_client, vault):
    b = Note.objects.get(path="🚀 b.md")
    preview = act(admin_client, NOTES, "export_approved_notes", [b.pk])
    assert "Export these 1 note<" in page(admin_client, preview) or "Export these 1 note" in page(
        admin_client, preview
    )
    confirm(admin_client, preview)
    assert note_file(vault, "a.md") == A
    assert "ai/agents" in note_file(vault, "🚀 b.md")


def test_preview_selected_notes(admin_client, vault):
    a = Note.objects.get(path="a.md")
    op = act(admin_client, NOTES, "preview_export_notes", [a.pk])
    html = page(admin_client, op)
    assert "Would write: <strong>1</strong>" in html and "a/a.md" in html and "🚀" not in html


def test_conflicts_listed_with_reasons_and_reimported(admin_client, vault):
    (Path(vault.root) / "a.md").write_text(A + "edited\n")
    preview = act(admin_client, VAULTS, "export_approved_vaults", [vault.pk])
    html = page(admin_client, preview)
    assert "conflicts: 1" in html and "changed on disk" in html
    export = confirm(admin_client, preview)
    assert export.result["conflicts"] == 0  # only the previewed notes (b) were exported
    assert "ai/agents" in note_file(vault, "🚀 b.md")

    # The file changes between the preview and the export: a conflict on the summary.
    approve_tags(Note.objects.get(path="🚀 b.md"), ["ai/more"])
    preview = act(admin_client, VAULTS, "export_approved_vaults", [vault.pk])
    (Path(vault.root) / "🚀 b.md").write_text("B edited\n")
    export = confirm(admin_client, preview)
    html = page(admin_client, export)
    assert export.result["conflicts"] == 1 and "changed on disk" in html
    assert "Re-import the 1 conflicting note" in html
    response = admin_client.post(reverse("curation:operation-reimport", args=[export.id]))
    reimport = Operation.objects.order_by("-id").first()
    assert reimport.kind == Operation.Kind.IMPORT and response.status_code == 302
    assert reimport.params["runs"] == [{"vault": vault.pk, "paths": ["🚀 b.md"]}]
    operations.operation_run(operation_id=reimport.id)
    reimport.refresh_from_db()
    assert reimport.result["vaults"][0]["updated"] == 1
    assert Note.objects.get(path="🚀 b.md").body == "B edited\n"


def test_viewer_can_preview_but_not_export(client, vault):
    viewer = User.objects.create_user("v", password="x", is_staff=True)
    viewer.groups.add(Group.objects.get(name="Viewer"))
    client.force_login(viewer)
    html = client.get(NOTES).content.decode()
    assert "preview_export_notes" in html and "export_approved_notes" not in html
    preview = act(client, NOTES, "preview_export_notes", list(Note.objects.values_list("pk", flat=True)))
    assert "Export these" not in page(client, preview)
    response = client.post(reverse("curation:operation-confirm", args=[preview.id]))
    assert response.status_code == 403
    assert note_file(vault, "a.md") == A


def test_moderator_can_export(client, vault):
    moderator = User.objects.create_user("m", password="x", is_staff=True)
    moderator.groups.add(Group.objects.get(name="Moderator"))
    client.force_login(moderator)
    preview = act(client, VAULTS, "export_approved_vaults", [vault.pk])
    assert confirm(client, preview).result["written"] == 2


def test_export_records_are_listed(admin_client, vault):
    confirm(admin_client, act(admin_client, VAULTS, "export_approved_vaults", [vault.pk]))
    listing = admin_client.get(reverse("admin:ingest_exportrecord_changelist"))
    assert listing.status_code == 200 and "🚀 b.md" in listing.content.decode()


def test_preview_caps_the_number_of_diffs_shown(admin_client, vault, monkeypatch):
    monkeypatch.setattr(operations, "SHOWN_DIFFS", 1)
    op = act(admin_client, VAULTS, "preview_export_vaults", [vault.pk])
    html = page(admin_client, op)
    assert "and 1 more file" in html and html.count('class="export-diff"') == 1
    assert "Export these 2 notes" in html  # the export still covers every previewed note


def test_cancel_a_queued_operation(admin_client, vault):
    admin_client.post(VAULTS, {"action": "preview_export_vaults", "_selected_action": [vault.pk]})
    op = Operation.objects.get()
    admin_client.post(reverse("curation:operation-cancel", args=[op.id]))
    op.refresh_from_db()
    assert op.state == Operation.State.CANCELED
    assert operations.operation_run(operation_id=op.id) == Operation.State.CANCELED  # not run
    assert op.result == {}

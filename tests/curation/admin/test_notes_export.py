"""The admin doors to export: "Export approved to vault" and "Preview export", over HTTP."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from curation.models import Review
from ingest.importer import vault_import
from ingest.models import Note
from tests.ingest.export_factory import approve_description, approve_tags

pytestmark = pytest.mark.django_db

A = "---\ntitle: A\n---\nBody of A.\n"


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
    from pathlib import Path

    return (Path(vault.root) / path).read_text(encoding="utf-8")


def test_preview_shows_escaped_diff_and_writes_nothing(admin_client, vault):
    response = admin_client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "preview_export_vaults", "_selected_action": [vault.pk]},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Nothing has been written" in html and "would write 2" in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "🚀 b.md" in html and '<span class="add">+  - ai/agents</span>' in html
    assert note_file(vault, "a.md") == A
    assert not Review.objects.filter(exported_at__isnull=False).exists()


def test_export_vault_action_writes_and_reports(admin_client, vault):
    response = admin_client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "export_approved_vaults", "_selected_action": [vault.pk]},
        follow=True,
    )
    assert "Vault v: written 2, unchanged 0, conflicts 0, errors 0." in response.content.decode()
    assert note_file(vault, "a.md") == (
        "---\ntitle: A\ndescription: <script>alert(1)</script> & co\n---\nBody of A.\n"
    )
    assert note_file(vault, "🚀 b.md") == "---\ntags:\n  - ai/agents\n---\nB\n"


def test_export_selected_notes_only(admin_client, vault):
    b = Note.objects.get(path="🚀 b.md")
    response = admin_client.post(
        reverse("admin:ingest_note_changelist"),
        {"action": "export_approved_notes", "_selected_action": [b.pk]},
        follow=True,
    )
    assert "written 1" in response.content.decode()
    assert note_file(vault, "a.md") == A
    assert "ai/agents" in note_file(vault, "🚀 b.md")


def test_preview_selected_notes(admin_client, vault):
    a = Note.objects.get(path="a.md")
    response = admin_client.post(
        reverse("admin:ingest_note_changelist"),
        {"action": "preview_export_notes", "_selected_action": [a.pk]},
    )
    html = response.content.decode()
    assert "would write 1" in html and "a/a.md" in html and "🚀" not in html


def test_conflicts_are_reported_as_warnings(admin_client, vault):
    from pathlib import Path

    (Path(vault.root) / "a.md").write_text(A + "edited\n")
    response = admin_client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "export_approved_vaults", "_selected_action": [vault.pk]},
        follow=True,
    )
    html = response.content.decode()
    assert "conflicts 1" in html and "Conflict: a.md: changed on disk" in html


def test_viewer_can_preview_but_not_export(client, vault):
    viewer = User.objects.create_user("v", password="x", is_staff=True)
    group = Group.objects.filter(name="Viewer").first()
    if group is None:
        pytest.skip("the Viewer role is not installed")
    viewer.groups.add(group)
    client.force_login(viewer)
    page = client.get(reverse("admin:ingest_note_changelist")).content.decode()
    assert "preview_export_notes" in page and "export_approved_notes" not in page
    response = client.post(
        reverse("admin:ingest_note_changelist"),
        {"action": "export_approved_notes",
         "_selected_action": list(Note.objects.values_list("pk", flat=True))},
    )  # fmt: skip
    assert response.status_code in (200, 302)
    assert note_file(vault, "a.md") == A


def test_moderator_can_export(client, vault):
    moderator = User.objects.create_user("m", password="x", is_staff=True)
    group = Group.objects.filter(name="Moderator").first()
    if group is None:
        pytest.skip("the Moderator role is not installed")
    moderator.groups.add(group)
    client.force_login(moderator)
    response = client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "export_approved_vaults", "_selected_action": [vault.pk]},
        follow=True,
    )
    assert "written 2" in response.content.decode()


def test_export_records_are_listed(admin_client, vault):
    admin_client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "export_approved_vaults", "_selected_action": [vault.pk]},
    )
    page = admin_client.get(reverse("admin:ingest_exportrecord_changelist"))
    assert page.status_code == 200 and "🚀 b.md" in page.content.decode()


def test_preview_caps_the_number_of_diffs_shown(admin_client, vault, monkeypatch):
    from curation.admin import notes as admin_export

    monkeypatch.setattr(admin_export, "SHOWN_DIFFS", 1)
    response = admin_client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "preview_export_vaults", "_selected_action": [vault.pk]},
    )
    html = response.content.decode()
    assert "and 1 more file" in html and html.count('class="export-diff"') == 1

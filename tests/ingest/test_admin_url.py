"""The admin page "Add from web address": the public door to the URL ingest service."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from ingest.importer import vault_import
from ingest.models import Note

pytestmark = pytest.mark.django_db

URL = reverse("admin:ingest_note_from_url")


@pytest.fixture(autouse=True)
def allow_local(settings):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = True
    settings.VAULTCMS_URL_INGEST_TIMEOUT = 5


@pytest.fixture
def vault(make_vault):
    vault, _ = vault_import(root=make_vault({"Inbox/a.md": "# A\n\ntext\n"}), name="web")
    return vault


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    return client


def test_changelist_links_to_the_form(admin_client, vault):
    page = admin_client.get(reverse("admin:ingest_note_changelist"))
    assert f'href="{URL}"' in page.content.decode()


def test_form_lists_vaults_and_folders(admin_client, vault):
    page = admin_client.get(URL)
    html = page.content.decode()
    assert page.status_code == 200
    assert ">web</option>" in html and '<option value="Inbox">' in html


def test_post_creates_note_and_opens_it(admin_client, vault, web_server, article_html):
    url = web_server.page("/rag", article_html("Vector search"))
    response = admin_client.post(URL, {"url": url, "vault": vault.pk, "folder": "Inbox/Web"})
    note = Note.objects.get(path="Inbox/Web/Vector search.md")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:ingest_note_change", args=[note.pk])
    page = admin_client.get(response["Location"])
    assert f"Added Inbox/Web/Vector search.md from {url}" in page.content.decode()
    assert (Path(vault.root) / note.path).is_file()


def test_duplicate_shows_a_link_to_the_existing_note(admin_client, vault, web_server, article_html):
    url = web_server.page("/rag", article_html("Vector search"))
    admin_client.post(URL, {"url": url, "vault": vault.pk, "folder": ""})
    existing = Note.objects.get(path="Vector search.md")

    page = admin_client.post(URL, {"url": url, "vault": vault.pk, "folder": "Other"})

    html = page.content.decode()
    assert page.status_code == 200
    assert "already in the vault: Vector search.md" in html
    assert reverse("admin:ingest_note_change", args=[existing.pk]) in html
    assert not (Path(vault.root) / "Other").exists()


def test_errors_are_shown_on_the_form(admin_client, vault, web_server):
    url = web_server.raw("/x.pdf", 200, {"Content-Type": "application/pdf"}, b"%PDF")
    page = admin_client.post(URL, {"url": url, "vault": vault.pk, "folder": ""})
    assert "not an HTML page" in page.content.decode()


def test_private_address_refused_message(admin_client, vault, web_server, settings):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = False
    page = admin_client.post(URL, {"url": web_server.base + "/", "vault": vault.pk})
    assert "private, loopback or reserved address" in page.content.decode()
    assert web_server.hits == []


def test_viewer_cannot_use_it(client, vault):
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Viewer"))
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_moderator_can_use_it(client, vault):
    user = User.objects.create_user("mod", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderator"))
    client.force_login(user)
    assert client.get(URL).status_code == 200


def test_anonymous_is_sent_to_login(client, vault):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_viewer_sees_no_link(client, vault):
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Viewer"))
    client.force_login(user)
    page = client.get(reverse("admin:ingest_note_changelist"))
    assert page.status_code == 200 and URL not in page.content.decode()


def test_vault_page_links_to_the_form_with_the_vault_chosen(admin_client, vault):
    page = admin_client.get(reverse("admin:ingest_vault_change", args=[vault.pk]))
    assert f'href="{URL}?vault={vault.pk}"' in page.content.decode()
    form = admin_client.get(f"{URL}?vault={vault.pk}").content.decode()
    assert f'<option value="{vault.pk}" selected>web</option>' in form


@pytest.mark.parametrize(
    "folder, reason",
    [
        ("x" * 300, "is too long"),
        ("Inbox/" + "é" * 200, "is too long"),
        ("Inbox/a.md", "is a file, not a folder"),
        ("Inbox/a.md/deeper", "is a file, not a folder"),
    ],
)
def test_a_folder_the_file_system_refuses_is_a_form_error(
    admin_client, vault, web_server, article_html, folder, reason
):
    url = web_server.page("/page", article_html("Some page"))
    admin_client.raise_request_exception = False
    response = admin_client.post(URL, {"url": url, "vault": vault.pk, "folder": folder})
    assert response.status_code == 200
    assert reason in str(response.context["form"].non_field_errors())
    assert Note.objects.count() == 1


def test_adding_a_page_imports_that_one_file_only(admin_client, vault, web_server, article_html):
    """Another file changed on disk is left for the next import: only the new note is read."""
    other = Path(vault.root) / "Inbox/a.md"
    other.write_text("# A\n\nchanged on disk\n", encoding="utf-8")
    (Path(vault.root) / "new elsewhere.md").write_text("# New\n\nnot imported\n", encoding="utf-8")
    url = web_server.page("/one", article_html("Only this one"))
    admin_client.post(URL, {"url": url, "vault": vault.pk, "folder": "Inbox"})
    assert Note.objects.filter(path="Inbox/Only this one.md", state="ok").exists()
    assert Note.objects.get(path="Inbox/a.md").body == "# A\n\ntext\n"
    assert not Note.objects.filter(path="new elsewhere.md").exists()

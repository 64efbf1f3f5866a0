"""Nothing that comes in (a URL form, note paths in the database) writes outside the vault.

The writers' own tests live with them (tests/ingest/test_url_ingest.py, the export tests);
these go through the public doors: the admin's "Add from web address" form and export_vault.
"""

import io
import os

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from curation.models import Item, Job, Review, Suggestion
from ingest.models import Note, Vault
from tests.ingest.conftest import ARTICLE

pytestmark = pytest.mark.django_db


def snapshot(folder) -> dict:
    """Every file under `folder` with its bytes."""
    found = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                found[path] = fh.read()
    return found


@pytest.fixture
def sandbox(tmp_path):
    """tmp/vault (the vault) beside tmp/outside (a file that must never change)."""
    vault_root = tmp_path / "vault"
    vault_root.mkdir()
    (vault_root / "Inside.md").write_text("---\ntitle: Inside\n---\nBody.\n", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "escaped.md").write_text("---\ntitle: Outside\n---\nMust not change.\n")
    return tmp_path, Vault.objects.create(name="Escape", root=str(vault_root))


@pytest.mark.parametrize(
    "folder", ["../outside", "../../", "/tmp", "Inbox/../../outside", "..\\outside", ".obsidian"]
)
def test_url_form_refuses_a_folder_outside_the_vault(sandbox, folder, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    tmp, vault = sandbox
    before = snapshot(tmp)
    admin = django_user_model.objects.create_superuser("escape-admin", password="x")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/ingest/note/from-url/",
        {"url": "https://example.invalid/page", "vault": vault.pk, "folder": folder},
    )
    assert response.status_code == 200  # the form again, with the reason
    errors = response.context["form"].non_field_errors()
    assert errors  # "/tmp" is read as the vault's own tmp/ folder, then the fetch fails
    if ".." in folder or folder.startswith("."):
        assert "not allowed" in str(errors)
    assert snapshot(tmp) == before
    assert not Note.objects.exists()


def approve_description(note: Note, text: str) -> None:
    job = Job.objects.create(fields=["description"], model="m", state=Job.State.SUCCEEDED)
    item = Item.objects.create(
        job=job, note=note, custom_id=f"esc-{note.pk}", state=Item.State.SUCCEEDED
    )
    suggestion = Suggestion.objects.create(
        item=item, note=note, job=job, field="description", value=text, model="m"
    )
    Review.objects.create(suggestion=suggestion, decision=Review.Decision.APPROVED, value=text)


@pytest.mark.parametrize(
    "path", ["../outside/escaped.md", "/tmp/escaped.md", "a/../../outside/escaped.md"]
)
def test_export_never_follows_a_note_path_out_of_the_vault(sandbox, path):
    tmp, vault = sandbox
    note = Note.objects.create(vault=vault, path=path, title="Escaped", body="x")
    approve_description(note, "Written where it must not be.")
    before = snapshot(tmp)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("export_vault", "--vault", "Escape", stdout=out, stderr=io.StringIO())
    assert snapshot(tmp) == before
    assert "error" in out.getvalue()


def test_export_never_writes_through_a_symlink_out_of_the_vault(sandbox):
    tmp, vault = sandbox
    link = tmp / "vault" / "Linked.md"
    link.symlink_to(tmp / "outside" / "escaped.md")
    note = Note.objects.create(vault=vault, path="Linked.md", title="Linked", body="x")
    approve_description(note, "Written through a link.")
    before = snapshot(tmp)
    with pytest.raises(CommandError):
        call_command("export_vault", "--vault", "Escape", stdout=io.StringIO())
    assert snapshot(tmp) == before


@pytest.mark.parametrize("folder", ["Linked", "Linked/new", "Linked/new/deeper"])
def test_url_form_creates_no_folder_through_a_symlinked_folder(
    sandbox, folder, django_user_model, settings, web_server
):
    """A folder of the vault that is a link to a folder outside: nothing is created there."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = True
    tmp, vault = sandbox
    (tmp / "vault" / "Linked").symlink_to(tmp / "outside")
    url = web_server.page("/page", ARTICLE.format(title="Escaping page"))
    before = snapshot(tmp)
    folders_before = sorted(p for p, _, _ in os.walk(tmp))
    admin = django_user_model.objects.create_superuser("escape-admin", password="x")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/ingest/note/from-url/", {"url": url, "vault": vault.pk, "folder": folder}
    )
    assert response.status_code == 200
    assert "leads outside the vault" in str(response.context["form"].non_field_errors())
    assert sorted(p for p, _, _ in os.walk(tmp)) == folders_before
    assert snapshot(tmp) == before
    assert web_server.hits == []  # refused before anything was fetched

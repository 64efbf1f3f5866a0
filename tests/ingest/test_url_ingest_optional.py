"""URL ingest is optional: when trafilatura cannot be imported the app still starts, and only
the "Add from web address" form says what is wrong."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ingest.importer import vault_import
from ingest.models import Note

ROOT = Path(__file__).resolve().parents[2]
URL = reverse("admin:ingest_note_from_url")

# Run in a fresh interpreter: the blocked module must be missing before anything imports it.
STARTUP = textwrap.dedent(
    """
    import sys
    sys.modules[sys.argv[1]] = None  # what a missing or broken install looks like to import
    try:
        import trafilatura  # noqa: F401
    except ImportError as exc:
        print("trafilatura unavailable:", exc)
    else:
        raise SystemExit("the simulation did not block trafilatura")

    import django
    from django.core.management import call_command
    from django.urls import reverse

    django.setup()
    call_command("check")
    print("from_url page:", reverse("admin:ingest_note_from_url"))

    from ingest.url_ingest import Page, UrlIngestError, extract_page

    try:
        extract_page(Page(url="https://example.org/", content_type="text/html", body=b"<p>x</p>"))
    except UrlIngestError as exc:
        print("form error:", exc)
    """
)


@pytest.mark.parametrize("blocked", ["trafilatura", "lxml_html_clean"])
def test_app_starts_and_checks_without_trafilatura(blocked):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "vaultcms.settings"
    result = subprocess.run(
        [sys.executable, "-c", STARTUP, blocked],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trafilatura unavailable:" in result.stdout
    assert "System check identified no issues" in result.stdout
    assert f"from_url page: {URL}" in result.stdout
    assert (
        "form error: adding notes from web addresses is not available on this server: "
        "the page reader (trafilatura) cannot be loaded" in result.stdout
    )
    if blocked == "lxml_html_clean":  # the real failure of a pip 23 install
        assert "lxml.html.clean module is now a separate project" in result.stdout


@pytest.mark.django_db
def test_form_shows_the_error_and_the_rest_of_the_admin_works(
    client, make_vault, web_server, article_html, settings, monkeypatch
):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = True
    settings.VAULTCMS_URL_INGEST_TIMEOUT = 5
    vault, _ = vault_import(root=make_vault({"Inbox/a.md": "# A\n\ntext\n"}), name="web")
    client.force_login(User.objects.create_superuser("boss", password="x"))
    url = web_server.page("/rag", article_html("Vector search"))
    monkeypatch.setitem(sys.modules, "trafilatura", None)

    page = client.post(URL, {"url": url, "vault": vault.pk, "folder": "Inbox/Web"})

    html = page.content.decode()
    assert page.status_code == 200
    assert "adding notes from web addresses is not available on this server" in html
    assert not (Path(vault.root) / "Inbox/Web").exists()
    assert list(Note.objects.values_list("path", flat=True)) == ["Inbox/a.md"]
    assert client.get(reverse("admin:ingest_note_changelist")).status_code == 200
    assert client.get(URL).status_code == 200

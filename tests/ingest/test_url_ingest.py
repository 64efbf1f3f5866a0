"""URL ingest service: fetched safely from a real local HTTP server, written as a new note."""

import ipaddress
import socket

import pytest
from django.test import override_settings

from ingest import url_ingest
from ingest.importer import vault_import
from ingest.models import Note
from ingest.notes import load_yaml, split
from ingest.url_ingest import UrlIngestError, note_create_from_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def allow_local(settings):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = True
    settings.VAULTCMS_URL_INGEST_TIMEOUT = 5


@pytest.fixture
def vault(make_vault):
    root = make_vault({"Existing.md": "---\ntitle: Existing\n---\nSome text.\n"})
    vault, _ = vault_import(root=root, name="web")
    return vault


def test_page_becomes_an_imported_note_with_frontmatter(web_server, article_html, vault):
    url = web_server.page("/rag.html", article_html())

    note = note_create_from_url(url=url, vault=vault, folder="Inbox/Web")

    assert note.path == "Inbox/Web/Retrieval Augmented Generation, explained.md"
    assert note.state == Note.State.OK and note.folder == "Inbox/Web"
    assert note.title == "Retrieval Augmented Generation, explained"
    assert note.frontmatter["source"] == url
    assert note.frontmatter["title"] == note.title
    assert note.frontmatter["created"].endswith("Z")
    text = (vault_root(vault) / note.path).read_text(encoding="utf-8")
    parts = split(text)
    assert list(load_yaml(parts.yaml)) == ["source", "title", "created"]
    assert parts.body.startswith("# Retrieval Augmented Generation, explained\n")
    assert "**chunking**" in parts.body
    assert "[reranking step](https://example.org/rerank)" in parts.body
    assert "Copyright 2026" not in parts.body  # boilerplate left out
    assert note.body == parts.body


def test_same_url_again_is_refused_and_nothing_is_written(web_server, article_html, vault):
    url = web_server.page("/rag.html", article_html())
    first = note_create_from_url(url=url, vault=vault)
    before = sorted(p.name for p in vault_root(vault).rglob("*.md"))

    with pytest.raises(url_ingest.DuplicateUrl, match="already in the vault: ") as err:
        note_create_from_url(url=url + "#section", vault=vault, folder="Elsewhere")

    assert err.value.note == first
    assert sorted(p.name for p in vault_root(vault).rglob("*.md")) == before
    assert web_server.hits == ["/rag.html"]  # the duplicate was caught before fetching


def test_duplicate_reached_through_a_redirect(web_server, article_html, vault):
    url = web_server.page("/final.html", article_html())
    note_create_from_url(url=url, vault=vault)
    short = web_server.redirect("/short", "/final.html")

    with pytest.raises(url_ingest.DuplicateUrl):
        note_create_from_url(url=short, vault=vault)
    assert Note.objects.filter(vault=vault).count() == 2


def test_same_title_never_overwrites_an_existing_file(web_server, article_html, vault):
    (vault_root(vault) / "Existing.md").write_text("---\ntitle: Existing\n---\nSome text.\n")
    before = (vault_root(vault) / "Existing.md").read_bytes()
    url = web_server.page("/a", article_html("Existing"))

    note = note_create_from_url(url=url, vault=vault)

    assert note.path == "Existing 2.md"
    assert (vault_root(vault) / "Existing.md").read_bytes() == before


@pytest.mark.parametrize(
    "title, expected",
    [
        ("../../etc/passwd", "etc passwd"),
        ("What is C#? [draft] | notes", "What is C draft notes"),
        ("  ...  ", "Web page"),
        ("CON", "Web page CON"),
        ("Émoji 🚀 notes", "Émoji 🚀 notes"),
    ],
)
def test_safe_filename(title, expected):
    assert url_ingest.safe_filename(title) == expected


def test_long_title_is_cut_on_a_character_boundary():
    name = url_ingest.safe_filename("ü" * 200)
    assert len(name.encode("utf-8")) <= url_ingest.MAX_NAME_BYTES and set(name) == {"ü"}


def test_title_with_path_characters_stays_in_the_folder(web_server, article_html, vault):
    url = web_server.page("/t", article_html("../../outside/Escape"))
    note = note_create_from_url(url=url, vault=vault, folder="Inbox")
    assert note.path == "Inbox/outside Escape.md"
    assert not (vault_root(vault).parent / "outside").exists()


@pytest.mark.parametrize("folder", ["../elsewhere", "a/../../b", "..\\up", ".obsidian", "a/.git"])
def test_folder_outside_the_vault_is_refused(web_server, article_html, vault, folder):
    url = web_server.page("/rag.html", article_html())
    with pytest.raises(UrlIngestError, match="not allowed"):
        note_create_from_url(url=url, vault=vault, folder=folder)
    assert web_server.hits == []


def test_folder_through_a_symlink_out_of_the_vault_is_refused(
    web_server, article_html, vault, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    (vault_root(vault) / "link").symlink_to(outside)
    url = web_server.page("/rag.html", article_html())
    with pytest.raises(UrlIngestError, match="outside the vault"):
        note_create_from_url(url=url, vault=vault, folder="link")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.org/file", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("javascript:alert(1)", "only http:// and https://"),
        ("example.org/page", "only http:// and https://"),
        ("http://user:pw@example.org/", "user name or password"),
        ("http:///nohost", "no host name"),
    ],
)
def test_only_plain_http_addresses(url, message, vault):
    with pytest.raises(UrlIngestError, match=message):
        note_create_from_url(url=url, vault=vault)


def test_non_html_content_is_refused(web_server, vault):
    url = web_server.raw("/doc.pdf", 200, {"Content-Type": "application/pdf"}, b"%PDF-1.7")
    with pytest.raises(UrlIngestError, match="not an HTML page: .* is application/pdf"):
        note_create_from_url(url=url, vault=vault)
    assert Note.objects.filter(vault=vault).count() == 1


def test_http_error_is_reported(web_server, vault):
    with pytest.raises(UrlIngestError, match="answered HTTP 404"):
        note_create_from_url(url=web_server.base + "/missing", vault=vault)


def test_unreachable_page_is_reported(vault):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UrlIngestError, match="unreachable"):
        note_create_from_url(url=f"http://127.0.0.1:{port}/", vault=vault)


def test_unknown_host_is_reported(vault):
    with pytest.raises(UrlIngestError, match="cannot find the host"):
        note_create_from_url(url="http://no-such-host.invalid/", vault=vault)


def test_too_large_by_declared_length(web_server, vault, settings):
    settings.VAULTCMS_URL_INGEST_MAX_BYTES = 1000
    url = web_server.raw(
        "/big", 200, {"Content-Type": "text/html", "Content-Length": "5000"}, b"x" * 5000
    )
    with pytest.raises(UrlIngestError, match="too large: 5,000 bytes"):
        note_create_from_url(url=url, vault=vault)


def test_too_large_without_declared_length(web_server, vault, settings):
    settings.VAULTCMS_URL_INGEST_MAX_BYTES = 100_000
    # No Content-Length (the server ends the body by closing): the reader counts and stops.
    url = web_server.raw("/stream", 200, {"Content-Type": "text/html"}, b"x" * 300_000)
    web_server.httpd.unsized.add("/stream")
    with pytest.raises(UrlIngestError, match="too large: over the 100,000 byte limit"):
        note_create_from_url(url=url, vault=vault)


def test_private_addresses_refused_by_default(web_server, article_html, vault, settings):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = False
    url = web_server.page("/rag.html", article_html())
    with pytest.raises(UrlIngestError, match="refused: 127.0.0.1 resolves to 127.0.0.1"):
        note_create_from_url(url=url, vault=vault)
    assert web_server.hits == []


def test_every_resolved_address_is_checked(monkeypatch):
    def fake_getaddrinfo(host, port, type=0):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(UrlIngestError, match="resolves to 10.0.0.5"):
        url_ingest.resolve_host("mixed.example", 80, allow_private=False)
    assert url_ingest.resolve_host("mixed.example", 80, allow_private=True) == [
        "93.184.216.34", "10.0.0.5"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
     "100.64.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_non_public_addresses(address):
    assert not url_ingest.is_public_address(ipaddress.ip_address(address))


def test_public_address():
    assert url_ingest.is_public_address(ipaddress.ip_address("93.184.216.34"))


def test_redirect_to_a_private_address_is_refused(web_server, article_html, vault, monkeypatch):
    """The first hop is allowed (a 'public' host), the redirect to loopback is checked anew."""
    web_server.page("/rag.html", article_html())
    real_resolve = url_ingest.resolve_host
    seen = []

    def resolve(host, port, *, allow_private):
        seen.append(host)
        if host == "public.test":
            return ["127.0.0.1"]  # pretend this one is public, to reach the local server
        return real_resolve(host, port, allow_private=False)

    monkeypatch.setattr(url_ingest, "resolve_host", resolve)
    port = web_server.httpd.server_address[1]
    web_server.redirect("/go", f"http://localhost:{port}/rag.html")
    with pytest.raises(UrlIngestError, match="refused: localhost resolves to"):
        note_create_from_url(url=f"http://public.test:{port}/go", vault=vault)
    assert seen == ["public.test", "localhost"]
    assert web_server.hits == ["/go"]


def test_redirect_to_another_scheme_is_refused(web_server, vault):
    url = web_server.redirect("/go", "file:///etc/passwd")
    with pytest.raises(UrlIngestError, match="only http:// and https://"):
        note_create_from_url(url=url, vault=vault)


def test_redirects_are_followed_and_source_is_the_final_address(
    web_server, article_html, vault
):
    final = web_server.page("/final.html", article_html())
    web_server.redirect("/a", "/b", status=301)
    url = web_server.redirect("/b", "/final.html", status=307)
    note = note_create_from_url(url=web_server.base + "/a", vault=vault)
    assert note.frontmatter["source"] == final
    assert web_server.hits == ["/a", "/b", "/final.html"]
    assert url  # the middle hop


def test_redirect_loop_stops(web_server, vault):
    web_server.redirect("/loop", "/loop")
    with pytest.raises(UrlIngestError, match="too many redirects"):
        note_create_from_url(url=web_server.base + "/loop", vault=vault)
    assert len(web_server.hits) == url_ingest.MAX_REDIRECTS + 1


def test_page_without_readable_text(web_server, vault):
    url = web_server.page("/empty", "<html><head><title>x</title></head><body></body></html>")
    with pytest.raises(UrlIngestError, match="no readable text"):
        note_create_from_url(url=url, vault=vault)


@override_settings(VAULTCMS_URL_INGEST_ALLOW_PRIVATE=True)
def test_non_utf8_page_is_decoded(web_server, vault):
    html = (
        "<html><head><meta charset='iso-8859-1'><title>Café crème</title></head><body><article>"
        "<p>" + "Le café crème est une boisson très appréciée en France le matin. " * 5 + "</p>"
        "</article></body></html>"
    )
    url = web_server.raw(
        "/fr", 200, {"Content-Type": "text/html; charset=iso-8859-1"}, html.encode("latin-1")
    )
    note = note_create_from_url(url=url, vault=vault)
    assert note.title == "Café crème" and "très appréciée" in note.body


def vault_root(vault):
    from pathlib import Path

    return Path(vault.root)

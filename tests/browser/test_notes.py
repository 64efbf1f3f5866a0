"""Browser: find notes in the admin by searching and filtering, and add one from a web page."""

from pathlib import Path

import pytest

from tests.ingest.conftest import ARTICLE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def result_titles(page) -> list[str]:
    return [t.strip() for t in page.locator("#result_list tbody th").all_inner_texts()]


def test_search_and_filter_notes(open_session, users, sample_vault):
    me = open_session("admin")
    me.login("admin")
    page = me.go("/ingest/note/")
    me.shot("all notes")
    assert len(result_titles(page)) == 34  # 33 imported + the broken one, listed as skipped

    page.fill("#searchbar", "batches")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**/ingest/note/?q=batches*")
    me.shot("search batches")
    titles = result_titles(page)
    assert titles and all(titles)
    assert any("Batches" in t for t in titles)
    assert len(titles) < 34

    page.goto(me.base_url + "/ingest/note/")
    page.click("#changelist-filter a:text-is('AI')")
    page.wait_for_url("**folder=AI*")
    me.shot("filter folder AI")
    ai = result_titles(page)
    paths = page.locator("#result_list tbody td.field-path").all_inner_texts()
    assert ai and all(p.startswith("AI/") for p in paths)

    page.goto(me.base_url + "/ingest/note/?state__exact=skipped")
    me.shot("filter skipped")
    assert result_titles(page) == ["Broken frontmatter"]


def test_add_a_note_from_a_web_page(open_session, users, sample_vault, web_server, settings):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = True  # the page is served on 127.0.0.1
    url = web_server.page("/rag.html", ARTICLE.format(title="Hybrid search for RAG"))
    me = open_session("alice")
    me.login("alice")
    page = me.go("/ingest/note/")
    page.click("#add-from-url")
    page.wait_for_selector("#url-ingest-form")
    page.fill("#id_url", url)
    page.select_option("#id_vault", label="Sample vault")
    page.fill("#id_folder", "Inbox/Web")
    me.shot("form filled")
    page.click("#url-ingest-form input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    me.shot("note added")
    assert "Added Inbox/Web/Hybrid search for RAG.md" in page.inner_text(".messagelist")
    written = Path(sample_vault.root) / "Inbox" / "Web" / "Hybrid search for RAG.md"
    assert written.read_text(encoding="utf-8").startswith(f"---\nsource: {url}\n")

    # The same address again: refused with a clear message and a link to the note.
    page = me.go("/ingest/note/from-url/")
    page.fill("#id_url", url)
    page.click("#url-ingest-form input[type=submit]")
    page.wait_for_selector("#url-ingest-error")
    me.shot("duplicate refused")
    assert "already in the vault: Inbox/Web/Hybrid search for RAG.md" in page.inner_text(
        "#url-ingest-error"
    )
    assert sorted(p.name for p in written.parent.iterdir()) == ["Hybrid search for RAG.md"]

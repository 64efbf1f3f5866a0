"""Note and Vault admin: search, filters, paging, read-only frontmatter, sanitized preview."""

import os

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from curation import operations
from curation.models import Operation
from ingest.importer import vault_import
from ingest.models import Note, Vault

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:ingest_note_changelist")
GOOD = "---\ntitle: {title}\ntags: [{tags}]\n---\n{body}\n"


def note_file(title: str, tags: str = "", body: str = "text") -> str:
    return GOOD.format(title=title, tags=tags, body=body)


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    return client


@pytest.fixture
def vaults(make_vault, tmp_path):
    main = make_vault(
        {
            "AI/agents.md": note_file("Agent loops", "ai/agents", "Tool calls in a loop."),
            "AI/Deep/rag.md": note_file("RAG", "ai", "Retrieval then generation."),
            "AIX/other.md": note_file("Other", "", "Nothing about kangaroos."),
            "Cooking/dal.md": note_file("Dal", "", "Red lentils and a tadka of cumin."),
            "root note.md": "# plain\n\nNo frontmatter, mentions kangaroos.\n",
            "broken.md": "---\n[\n---\nx\n",
        },
        root=tmp_path / "main",
    )
    other = make_vault({"x.md": note_file("Elsewhere", "misc")}, root=tmp_path / "other")
    return vault_import(root=main, name="Main")[0], vault_import(root=other, name="Other")[0]


def listed(response) -> set[str]:
    return {note.path for note in response.context["cl"].result_list}


def test_search_covers_title_path_and_body(staff, vaults):
    assert listed(staff.get(CHANGELIST, {"q": "agent loops"})) == {"AI/agents.md"}
    assert listed(staff.get(CHANGELIST, {"q": "Cooking/"})) == {"Cooking/dal.md"}
    assert listed(staff.get(CHANGELIST, {"q": "kangaroos"})) == {"AIX/other.md", "root note.md"}


def test_filters_vault_folder_state_and_tags(staff, vaults):
    main, other = vaults
    assert listed(staff.get(CHANGELIST, {"vault__id__exact": other.id})) == {"x.md"}
    assert listed(staff.get(CHANGELIST, {"folder": "AI"})) == {"AI/agents.md", "AI/Deep/rag.md"}
    assert listed(staff.get(CHANGELIST, {"folder": ""})) == {"root note.md", "broken.md", "x.md"}
    assert listed(staff.get(CHANGELIST, {"state__exact": "skipped"})) == {"broken.md"}
    with_tags = listed(staff.get(CHANGELIST, {"has_tags": "yes", "vault__id__exact": main.id}))
    assert with_tags == {"AI/agents.md", "AI/Deep/rag.md"}
    no_tags = listed(staff.get(CHANGELIST, {"has_tags": "no", "vault__id__exact": main.id}))
    assert no_tags == {"AIX/other.md", "Cooking/dal.md", "root note.md", "broken.md"}
    page = staff.get(CHANGELIST).content.decode()
    assert "By folder" in page and "(vault root)" in page and "By has tags" in page


def test_changelist_pages_and_its_queries_do_not_grow_with_notes(
    staff, make_vault, tmp_path, django_assert_max_num_queries
):
    files = {f"n{i:03}.md": note_file(f"N{i}", "a, b/c") for i in range(130)}
    root = make_vault(dict(list(files.items())[:5]), tmp_path / "v")
    vault_import(root=root, name="Big")
    staff.get(CHANGELIST)  # warm the session and content types
    with django_assert_max_num_queries(12) as small:
        assert staff.get(CHANGELIST).status_code == 200
    make_vault(files, root)
    vault_import(root=root, name="Big")
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = staff.get(CHANGELIST)
    assert len(page.context["cl"].result_list) == 50  # list_per_page
    assert listed(staff.get(CHANGELIST, {"p": "3"})) == {f"n{i:03}.md" for i in range(100, 130)}


def test_frontmatter_is_shown_but_cannot_be_changed(staff, vaults):
    note = Note.objects.get(path="AI/agents.md")
    url = reverse("admin:ingest_note_change", args=[note.id])
    page = staff.get(url).content.decode()
    assert "<pre>title: Agent loops\ntags: [ai/agents]\n</pre>" in page
    assert 'name="frontmatter_raw"' not in page and 'name="body"' not in page
    staff.post(url, {"frontmatter_raw": "title: hacked\n", "title": "hacked", "body": "x"})
    note.refresh_from_db()
    assert note.title == "Agent loops"
    assert note.frontmatter_raw == "title: Agent loops\ntags: [ai/agents]\n"
    assert staff.get(reverse("admin:ingest_note_add")).status_code == 403


def test_preview_renders_markdown_and_nothing_runs(staff, make_vault, tmp_path):
    body = (
        "# Heading\n\n**bold** [ok](https://example.org)\n\n"
        "<script>alert('x')</script>\n\n"
        '<img src="x" onerror="alert(1)">\n\n'
        "[click](javascript:alert(2))\n\n"
        '<a href="javascript:alert(3)" onclick="alert(4)">raw link</a>\n\n'
        '<iframe src="https://evil.example"></iframe>\n'
    )
    text = f"---\ntitle: '<script>alert(5)</script>'\n---\n{body}"
    root = make_vault({"evil.md": text}, tmp_path / "e")
    vault_import(root=root, name="Evil")
    note = Note.objects.get(path="evil.md")
    page = staff.get(reverse("admin:ingest_note_change", args=[note.id])).content.decode()
    preview = page[page.index('class="note-preview"') :]
    preview = preview[: preview.index("</div>")]
    assert "<h1>Heading</h1>" in preview and "<strong>bold</strong>" in preview
    assert 'href="https://example.org"' in preview
    lowered = page.lower()
    assert "<script>alert" not in lowered and "<iframe" not in lowered
    assert "onerror" not in preview and "onclick" not in preview
    assert "javascript:" not in preview
    assert "&lt;script&gt;alert(5)&lt;/script&gt;" in page  # the title and frontmatter escaped


def reimport(client, vault) -> str:
    """The Re-import action answers at once with its operation's page; run it as a worker."""
    response = client.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "reimport_vaults", "_selected_action": [vault.id]},
    )
    op = Operation.objects.order_by("-id").first()
    assert op.kind == Operation.Kind.IMPORT and op.state == Operation.State.PENDING
    assert response.url == reverse("curation:operation", args=[op.id])
    operations.operation_run(operation_id=op.id)
    return client.get(response.url).content.decode()


def test_reimport_action_refreshes_the_vault_and_says_so(staff, vaults):
    main, _ = vaults
    root = main.root
    with open(f"{root}/Cooking/dal.md", "a", encoding="utf-8") as fh:
        fh.write("Serve with rice.\n")
    os.remove(f"{root}/AIX/other.md")
    page = reimport(staff, main)  # the admin's action is carried by the workers
    assert "Vault Main: imported 0, updated 1, unchanged 3, skipped 1, missing 1" in page
    assert Note.objects.get(path="AIX/other.md").state == "missing"
    assert Note.objects.get(path="Cooking/dal.md").body.endswith("Serve with rice.\n")


def test_reimport_action_reports_a_vanished_folder(staff, tmp_path):
    gone = Vault.objects.create(name="Gone", root=str(tmp_path / "nowhere"))
    page = reimport(staff, gone)
    assert f"no such folder: {tmp_path / 'nowhere'}" in page and "Failed" in page


def test_vault_list_counts_notes_with_a_link_to_them(staff, vaults):
    main, _ = vaults
    page = staff.get(reverse("admin:ingest_vault_changelist")).content.decode()
    assert f'href="{CHANGELIST}?vault__id__exact={main.id}">6</a>' in page


def test_a_vault_folder_cannot_be_changed_or_added_in_the_admin(staff, vaults, tmp_path):
    """Re-import would pull any folder of the server into the app: the root is set only by
    `import_vault PATH`."""
    main, _ = vaults
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.md").write_text("# server secret\n")
    url = reverse("admin:ingest_vault_change", args=[main.pk])
    page = staff.get(url).content.decode()
    assert 'name="root"' not in page and str(main.root) in page
    response = staff.post(url, {"name": "Renamed", "root": str(elsewhere)})
    assert response.status_code == 302
    main.refresh_from_db()
    assert (main.name, main.root) == ("Renamed", str(tmp_path / "main"))
    staff.post(
        reverse("admin:ingest_vault_changelist"),
        {"action": "reimport_vaults", "_selected_action": [main.pk]},
    )
    for op in Operation.objects.all():  # the re-import runs on a worker: run it here
        operations.operation_run(operation_id=op.id)
    assert Operation.objects.filter(kind="import", state="succeeded").exists()
    assert not Note.objects.filter(path="secret.md").exists()
    assert staff.get(reverse("admin:ingest_vault_add")).status_code == 403
    assert staff.post(
        reverse("admin:ingest_vault_add"), {"name": "x", "root": str(elsewhere)}
    ).status_code == 403
    assert not Vault.objects.filter(root=str(elsewhere)).exists()


def test_note_page_is_read_only_with_chips_and_wikilinks(staff, make_vault):
    vault, _ = vault_import(
        root=make_vault({
            "A.md": "---\ntags: [ai/agents, python]\n---\n# A\n\nSee [[B]] and [[Gone|a lost note]].\n",
            "sub/B.md": "# B\n\nbody\n",
        }),
        name="links",
    )  # fmt: skip
    a, b = Note.objects.get(path="A.md"), Note.objects.get(path="sub/B.md")
    html = staff.get(reverse("admin:ingest_note_change", args=[a.pk])).content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert '<span class="vc-chip">ai/agents</span>' in html and '"ai/agents"' not in html
    link = reverse("admin:ingest_note_change", args=[b.pk])
    assert f'<a class="vc-wikilink" href="{link}">B</a>' in html
    assert '<span class="vc-wikilink vc-missing" title="no such note">a lost note</span>' in html


def test_wikilinks_are_added_after_the_same_site_rule_and_only_between_tags(staff, make_vault):
    """The note's own links to this site are dropped (ingest.render.points_at_this_site); the
    links the preview adds for [[wikilinks]] are generated, to the note pages only, and never
    written into an attribute (an image's alt text) where they could add markup."""
    vault, _ = vault_import(
        root=make_vault({
            "A.md": '# A\n\n[[B]] [own](/admin/) ![[[B]]" onerror="x](https://example.org/i.png)'
                    "\n\n`[[B]]`\n",
            "B.md": "# B\n",
        }),
        name="attrs",
    )  # fmt: skip
    a, b = Note.objects.get(path="A.md"), Note.objects.get(path="B.md")
    html = staff.get(reverse("admin:ingest_note_change", args=[a.pk])).content.decode()
    preview = html[html.index('class="note-preview"') :]
    link = reverse("admin:ingest_note_change", args=[b.pk])
    assert preview.count(f'<a class="vc-wikilink" href="{link}">B</a>') == 1  # not in alt, code
    assert 'href="/admin/"' not in preview and "<code>[[B]]</code>" in preview
    assert 'alt="[[B]]&quot; onerror=&quot;x"' in preview


def test_skipped_note_shows_its_raw_text_around_the_error(staff, make_vault):
    vault, _ = vault_import(
        root=make_vault({"bad.md": "---\ntitle: x\ntags: [unclosed, list\ncreated: 1\n---\nbody\n"}),
        name="broken",
    )
    note = Note.objects.get(path="bad.md")
    assert note.state == "skipped" and "line 4" in note.reason
    html = staff.get(reverse("admin:ingest_note_change", args=[note.pk])).content.decode()
    assert '<span class="vc-bad"><span class="vc-n">4</span>created: 1</span>' in html
    assert "tags: [unclosed, list" in html

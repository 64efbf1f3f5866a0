"""The per-note review page: lock, decisions through HTTP, concurrent sessions, sanitized output."""

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from curation.models import Review, ReviewLock, Suggestion
from curation.review.decisions import suggestion_decide


def page_url(note):
    return reverse("curation:review_note", args=[note.pk])


def claim_url(note):
    return reverse("curation:review_note_lock", args=[note.pk])


def claim(client, note) -> dict:
    """What the page's script does on load and every minute: POST for the lock (JSON)."""
    response = client.post(claim_url(note), headers={"accept": "application/json"})
    assert response.status_code in (200, 403)
    return response.json()


def decide(client, s, action, expected_state="pending", **extra):
    data = {"suggestion_id": s.pk, "action": action, "expected_state": expected_state, **extra}
    return client.post(page_url(s.note), data, follow=True)


def test_opening_the_page_never_takes_the_lock(client, make_note, make_suggestion, moderator):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(moderator)
    html = client.get(page_url(s.note)).content.decode()
    assert not ReviewLock.objects.exists()
    assert claim_url(s.note) in html  # the page claims it itself, by POST
    assert "data-csrf=" in html  # review_lock.js sends it as X-CSRFToken


def test_moderator_opens_note_and_claims_lock_by_post(
    client, make_note, make_suggestion, moderator, settings
):
    settings.REVIEW_LOCK_SECONDS = 120
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(moderator)
    html = client.get(page_url(s.note)).content.decode()
    assert not ReviewLock.objects.exists()  # a GET never claims
    assert reverse("curation:review_note_lock", args=[s.note.pk]) in html
    state = claim(client, s.note)
    lock = ReviewLock.objects.get(note=s.note)
    assert lock.holder == moderator and state["held"] is True and state["until"].endswith("UTC")
    assert timedelta(seconds=110) < lock.expires_at - timezone.now() <= timedelta(seconds=120)
    assert "You are reviewing this note" in client.get(page_url(s.note)).content.decode()
    first = lock.expires_at
    claim(client, s.note)  # the open page renews
    assert ReviewLock.objects.get(note=s.note).expires_at >= first
    assert client.get(reverse("curation:review_note_lock", args=[s.note.pk])).status_code == 405


def test_claim_without_script_returns_to_the_page(client, make_note, make_suggestion, moderator):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(moderator)
    response = client.post(claim_url(s.note))
    assert response.status_code == 302 and response["Location"] == page_url(s.note)
    assert ReviewLock.objects.get(note=s.note).holder == moderator


def test_claim_refuses_get_and_a_missing_csrf_token(make_note, make_suggestion, moderator):
    s = make_suggestion(make_note(), "description", "x")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(moderator)
    assert strict.get(claim_url(s.note)).status_code == 405
    assert strict.post(claim_url(s.note)).status_code == 403
    assert not ReviewLock.objects.exists()


@pytest.mark.parametrize("who", ["viewer", "curator", "nobody"])
def test_only_moderators_claim(client, make_note, make_suggestion, who, request):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(request.getfixturevalue(who))
    response = client.post(claim_url(s.note), headers={"accept": "application/json"})
    assert response.status_code == 403
    assert client.post(claim_url(s.note)).status_code == 403  # the form, without the script
    assert not ReviewLock.objects.exists()


def test_others_see_who_holds_the_lock_and_cannot_decide(
    client, make_note, make_suggestion, moderator, moderator2, viewer
):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(moderator)
    claim(client, s.note)
    other = Client()
    other.force_login(moderator2)
    html = other.get(page_url(s.note)).content.decode()
    assert "mod is reviewing this note until" in html and "UTC" in html
    assert '<fieldset class="rv-decide" disabled>' in html  # the forms are disabled
    state = claim(other, s.note)
    assert state["held"] is False and state["holder"] == "mod"
    page = decide(other, s, "approve")
    assert "mod is reviewing" in page.content.decode()
    assert Suggestion.objects.get(pk=s.pk).state == "pending"
    third = Client()
    third.force_login(viewer)
    assert "mod is reviewing this note" in third.get(page_url(s.note)).content.decode()
    assert claim(third, s.note)["held"] is False  # a viewer never takes the lock
    assert ReviewLock.objects.get(note=s.note).holder == moderator


def test_expired_lock_is_taken_over(client, make_note, make_suggestion, moderator, moderator2):
    s = make_suggestion(make_note(), "description", "x")
    ReviewLock.objects.create(
        note=s.note, holder=moderator, claimed_at=timezone.now() - timedelta(hours=1),
        expires_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip
    client.force_login(moderator2)
    assert '<fieldset class="rv-decide" disabled>' not in client.get(page_url(s.note)).content.decode()
    assert claim(client, s.note)["held"] is True  # "Take over"
    assert ReviewLock.objects.get(note=s.note).holder == moderator2
    assert "You are reviewing this note" in client.get(page_url(s.note)).content.decode()
    assert "Tags: edited" not in decide(client, s, "approve").content.decode()
    assert Suggestion.objects.get(pk=s.pk).state == "approved"


def test_release_frees_the_note(client, make_note, make_suggestion, moderator):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(moderator)
    claim(client, s.note)
    assert ReviewLock.objects.exists()
    client.post(reverse("curation:review_note_release", args=[s.note.pk]))
    assert not ReviewLock.objects.exists()


@pytest.mark.parametrize("bad", ["abc", "1e3", "", "-1", "99999999999999999999999"])
def test_a_malformed_suggestion_id_is_an_error_message(
    client, make_note, make_suggestion, moderator, bad
):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(moderator)
    client.raise_request_exception = False
    response = client.post(
        page_url(s.note), {"suggestion_id": bad, "action": "approve"}, follow=True
    )
    assert response.status_code == 200
    assert "No such suggestion on this note." in response.content.decode()
    assert Suggestion.objects.get(pk=s.pk).state == "pending"


def test_two_sessions_decide_same_suggestion(client, make_note, make_suggestion, moderator, moderator2):
    s = make_suggestion(make_note(), "description", "x")
    first, second = Client(), Client()
    first.force_login(moderator)
    second.force_login(moderator2)
    # Both pages were rendered while the suggestion was pending (lock expired in between).
    assert decide(first, s, "approve").status_code == 200
    ReviewLock.objects.all().delete()
    html = decide(second, s, "reject").content.decode()
    assert "mod already decided this suggestion (approved" in html.lower()
    assert "was not saved" in html
    assert Review.objects.filter(suggestion=s).count() == 1
    assert Suggestion.objects.get(pk=s.pk).state == "approved"
    assert "<td>Approved</td>" in html  # the first decision is shown in the history


def test_keep_and_drop_tags(client, make_note, make_suggestion, moderator):
    s = make_suggestion(make_note(), "tags", ["ai/agents", "python", "junk"])
    client.force_login(moderator)
    html = decide(client, s, "edit", keep=["ai/agents", "python"], extra="#extra/one").content.decode()
    assert "Tags: edited." in html
    review = Review.objects.get(suggestion=s)
    assert review.value == ["ai/agents", "python", "extra/one"]


def test_edit_description_and_related(client, make_note, make_suggestion, moderator):
    target = make_note("other.md")
    note = make_note("me.md")
    d = make_suggestion(note, "description", "machine")
    r = make_suggestion(note, "related", ["other.md", "gone.md"])
    client.force_login(moderator)
    decide(client, d, "edit", value="Human line.")
    html = decide(client, r, "edit", keep=["other.md", "gone.md"]).content.decode()
    assert "No such note in this vault: gone.md" in html
    decide(client, r, "edit", keep=["other.md"])
    assert Review.objects.get(suggestion=d).value == "Human line."
    assert Review.objects.get(suggestion=r).value == [target.path]


def test_notes_typed_by_name_with_spaces_are_added(client, make_note, make_suggestion, moderator):
    """Obsidian names hold spaces: the words typed are read as the longest paths they spell."""
    garden, dough = make_note("Gardening Note 00.md"), make_note("Sourdough.md")
    deep = make_note("Kitchen/Bread, rye.md")
    note = make_note("me.md")
    make_note("Gardening Note 00 extra.md")
    r = make_suggestion(note, "related", ["Sourdough.md"])
    client.force_login(moderator)
    html = decide(client, r, "edit", keep=[], extra="Gardening Note 0 Sourdough").content.decode()
    assert "No such note in this vault: Gardening Note 0." in html
    decide(client, r, "edit", keep=["Sourdough.md"],
           extra="Gardening Note 00.md, [[Kitchen/Bread, rye]]")  # fmt: skip
    assert Review.objects.get(suggestion=r).value == [dough.path, garden.path, deep.path]


@pytest.mark.parametrize("who", ["viewer", "curator"])
def test_read_only_roles_can_read_but_not_decide(client, make_note, make_suggestion, who, request):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(request.getfixturevalue(who))
    html = client.get(page_url(s.note)).content.decode()
    assert 'name="action"' not in html
    assert not ReviewLock.objects.exists()
    assert decide(client, s, "approve").status_code == 403
    assert not Review.objects.exists()


def test_refused_without_role_or_login(client, make_note, make_suggestion, nobody):
    s = make_suggestion(make_note(), "description", "x")
    assert client.get(page_url(s.note)).status_code == 302  # to the login page
    client.force_login(nobody)
    assert client.get(page_url(s.note)).status_code == 403
    assert decide(client, s, "approve").status_code == 403


def test_superuser_decides(client, make_note, make_suggestion, superuser):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(superuser)
    decide(client, s, "reject")
    assert Suggestion.objects.get(pk=s.pk).state == "rejected"


class _Scan(HTMLParser):
    """Collects what a browser would run: handler attributes, javascript: URLs, inline alerts."""

    def __init__(self):
        super().__init__()
        self.found, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and "alert" in data:
            self.found.append("inline script")


def live_script(html: str) -> list[str]:
    scan = _Scan()
    scan.feed(html)
    return scan.found


PAYLOADS = [
    "<script>alert('xss')</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_render_inert(client, make_note, make_suggestion, moderator, payload):
    note = make_note(
        "evil.md",
        tags=[payload],
        frontmatter={"description": payload, "related": [payload]},
        body=f"# Title\n\n{payload}\n\n[link](javascript:alert(2))\n",
    )
    make_suggestion(note, "tags", [payload, "ok"])
    desc = make_suggestion(note, "description", f"Nice {payload}")
    make_suggestion(note, "related", [payload])
    decided = make_suggestion(make_note(), "description", payload)
    suggestion_decide(suggestion_id=decided.pk, user=moderator, decision="approved", comment=payload)
    client.force_login(moderator)
    urls = [
        page_url(note),
        reverse("admin:curation_suggestion_changelist"),
        reverse("admin:curation_suggestion_changelist") + "?state__exact=all",
        reverse("admin:curation_suggestion_change", args=[desc.pk]),
        reverse("admin:curation_review_changelist"),
        page_url(decided.note),
        reverse("curation:review_taxonomy_vault", args=[note.vault_id]),
    ]
    pages = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        pages.append(response.content.decode())
    assert any("&lt;" in html for html in pages)  # the payloads are there, as text
    for html in pages:
        assert live_script(html) == []


def test_a_note_whose_name_breaks_links_says_why_it_gets_none(
    client, make_note, make_suggestion, moderator
):
    client.force_login(moderator)
    plain = make_suggestion(make_note("notes/Plain.md"), "description", "x")
    assert 'id="no-links"' not in client.get(page_url(plain.note)).content.decode()
    odd = make_suggestion(make_note("notes/What? Why! How#.md"), "description", "x")
    html = client.get(page_url(odd.note)).content.decode()
    assert 'id="no-links"' in html and "breaks a wikilink" in html
    upper = make_suggestion(make_note("notes/Kimchi.md"), "description", "x")
    assert 'id="no-links"' not in client.get(page_url(upper.note)).content.decode()
    make_note("notes/kimchi.md")
    html = client.get(page_url(upper.note)).content.decode()
    assert 'id="no-links"' in html and "<code>notes/kimchi.md</code> has the same path" in html

"""Browser: a note whose body embeds the URL of another note's review page does not lock that
note for the moderator who views it; opening a review page takes its lock by POST."""

import pytest

from curation.models import ReviewLock
from ingest.models import Note, Vault

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_notes(transactional_db, live_server):
    vault = Vault.objects.create(name="Embed", root="/tmp/vault-embed")
    target = Note.objects.create(vault=vault, path="target.md", title="target", body="Target.")
    lock_url = f"/curation/review/note/{target.pk}/"
    body = (
        f"# Bait\n\n![relative]({lock_url})\n\n![absolute]({live_server.url}{lock_url})\n\n"
        f"[a link]({lock_url})\n"
    )
    bait = Note.objects.create(vault=vault, path="bait.md", title="bait", body=body)
    return bait, target


@pytest.mark.parametrize("sanitizer", ["on", "off"])
def test_viewing_a_note_that_embeds_a_lock_url_takes_no_lock(
    open_session, users, two_notes, sanitizer, monkeypatch
):
    bait, target = two_notes
    if sanitizer == "off":  # the page itself must hold even if the sanitizer let the URL by
        monkeypatch.setattr("ingest.render.points_at_this_site", lambda url: False)
    bob = open_session("bob")
    bob.login("bob")
    requests = []
    bob.page.on("request", lambda r: requests.append((r.method, r.url)))
    page = bob.go(f"/curation/review/note/{bait.pk}/")
    page.wait_for_selector("#lock.mine")  # the page he opened: claimed by its script (POST)
    page.wait_for_load_state("networkidle")
    bob.shot(f"bait viewed, sanitizer {sanitizer}")
    lock_gets = [u for m, u in requests if m == "GET" and f"/review/note/{target.pk}/" in u]
    assert bool(lock_gets) == (sanitizer == "off")  # the browser did fetch it when allowed
    assert not ReviewLock.objects.filter(note=target).exists()
    assert ReviewLock.objects.get(note=bait).holder.username == "bob"
    claims = [(m, u) for m, u in requests if u.endswith(f"/review/note/{bait.pk}/lock/")]
    assert claims == [("POST", claims[0][1])]

    alice = open_session("alice")
    alice.login("alice")
    alice_page = alice.go(f"/curation/review/note/{target.pk}/")
    alice_page.wait_for_selector("#lock.mine")
    alice.shot("alice reviews the target undisturbed")
    assert ReviewLock.objects.get(note=target).holder.username == "alice"

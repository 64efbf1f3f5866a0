"""Browser: another moderator's lock disables the review forms and says whose it is and until
when (with the time zone); the holder's page renews the lock; a lapsed lock can be taken over."""

import pytest
from django.utils import timezone

from curation.models import ReviewLock, Suggestion
from ingest.models import Note
from tests.browser.test_pages_fit import assert_fits, fitted

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_lock_disables_forms_renews_and_takes_over(open_session, users, sample_vault, curated):
    note = Note.objects.filter(vault=sample_vault, folder="AI", state=Note.State.OK).first()
    curated([note.id])
    assert Suggestion.objects.filter(note=note, state=Suggestion.State.PENDING).exists()
    url = f"/curation/review/note/{note.pk}/"

    alice = fitted(open_session("alice"))
    alice.login("alice")
    page = alice.go(url)
    page.wait_for_selector("#lock.mine")
    assert page.locator("fieldset.rv-decide[disabled]").count() == 0
    assert_fits(alice, "alice holds the lock")
    lock = ReviewLock.objects.get(note=note)
    assert lock.holder == users["alice"]

    bob = fitted(open_session("bob"))
    bob.login("bob")
    bob_page = bob.go(url)
    bob_page.wait_for_selector("#lock.other")
    assert_fits(bob, "bob sees the forms disabled")
    text = bob_page.inner_text("#lock")
    assert "alice is reviewing this note until" in text and "UTC" in text
    assert bob_page.locator("fieldset.rv-decide").count() > 0
    assert bob_page.locator("fieldset.rv-decide:not([disabled])").count() == 0
    assert bob_page.locator("#lock-takeover").is_hidden()
    assert bob_page.locator("#lock-release").is_hidden()  # not his to release

    # Alice's claim lapses (her page closed): bob is offered the lock, takes it over.
    alice.close()
    ReviewLock.objects.filter(note=note).update(expires_at=timezone.now() + timezone.timedelta(seconds=1))
    bob_page.reload()
    bob_page.wait_for_selector("#lock-takeover:visible", timeout=10_000)
    bob.shot("take over offered")
    bob_page.click("#lock-takeover")
    bob_page.wait_for_selector("#lock.mine")
    assert bob_page.locator("fieldset.rv-decide[disabled]").count() == 0
    assert ReviewLock.objects.get(note=note).holder == users["bob"]
    bob.shot("bob took over")


def test_the_open_page_renews_the_lock(open_session, users, sample_vault, curated, settings):
    settings.REVIEW_LOCK_SECONDS = 15  # renewals every 5 s
    note = Note.objects.filter(vault=sample_vault, folder="AI", state=Note.State.OK).first()
    curated([note.id])
    alice = fitted(open_session("alice"))
    alice.login("alice")
    page = alice.go(f"/curation/review/note/{note.pk}/")
    page.wait_for_selector("#lock.mine")
    first = ReviewLock.objects.get(note=note).expires_at
    page.wait_for_timeout(6500)
    assert ReviewLock.objects.get(note=note).expires_at > first

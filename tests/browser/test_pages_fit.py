"""Browser, 1366×768 with the sidebar open: every page people live in fits the screen (no
horizontal scroll, the change lists' tables included), the note page is read-only with tags as
chips and wikilinks as links, and a skipped note shows its raw text around the broken line."""

import pytest
from django.utils import timezone

from curation.models import Job, ReviewLock, Suggestion
from curation.review.decisions import suggestion_decide
from ingest.models import Note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 1366, 768
# The page's own width, and every box in it that scrolls sideways (Django wraps each change
# list's table in one: a table wider than its box hides columns behind a scroll bar).
OVERFLOW = """() => {
  const boxes = Array.from(document.querySelectorAll('#content *')).filter(
    b => ['auto', 'scroll'].includes(getComputedStyle(b).overflowX));
  return {
    page: document.documentElement.scrollWidth, window: window.innerWidth,
    boxes: boxes.filter(b => b.scrollWidth > b.clientWidth + 1)
                .map(b => (b.id || b.className) + ' ' + b.scrollWidth + '>' + b.clientWidth),
    sidebar: !!document.querySelector('#nav-sidebar') &&
             getComputedStyle(document.querySelector('#nav-sidebar')).display !== 'none',
  };
}"""


def fitted(session):
    session.page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    return session


def assert_fits(session, name: str, *, sidebar: bool = True):
    session.shot(name)
    found = session.page.evaluate(OVERFLOW)
    assert found["page"] <= found["window"], (name, found)
    assert not found["boxes"], (name, found)
    if sidebar:
        assert found["sidebar"], f"{name}: the sidebar is not open"


def test_pages_fit_1366(open_session, users, sample_vault, curated):
    notes = Note.objects.filter(vault=sample_vault, state=Note.State.OK).order_by("path")
    job = curated(notes.values_list("id", flat=True)[:12])
    admin = users["admin"]
    for s in Suggestion.objects.filter(job=job, field="description")[:4]:
        suggestion_decide(suggestion_id=s.pk, user=admin, decision="approved", comment="fine " * 20)
    first = Suggestion.objects.filter(job=job, state=Suggestion.State.PENDING).first()
    ReviewLock.objects.create(
        note_id=first.note_id, holder=users["bob"], claimed_at=timezone.now(),
        expires_at=timezone.now() + timezone.timedelta(minutes=10),
    )  # fmt: skip
    me = fitted(open_session("admin"))
    me.login("admin")
    pages = {
        "dashboard": "/",
        "notes": "/ingest/note/",
        "review queue": "/curation/suggestion/",
        "review queue all": "/curation/suggestion/?state__exact=all",
        "audit": "/curation/review/",
        "items": "/curation/item/",
        "jobs": "/curation/job/",
        "job page": f"/curation/jobs/{job.id}/",
        "review note": f"/curation/review/note/{first.note_id}/",
    }
    for name, path in pages.items():
        me.go(path)
        # Django's home page lists the apps itself, without the sidebar.
        assert_fits(me, name, sidebar=name != "dashboard")

    # The note page: read-only (no Save buttons), tags as chips, wikilinks as links.
    linked = Note.objects.filter(vault=sample_vault, body__contains="[[").exclude(tags=[]).first()
    page = me.go(f"/ingest/note/{linked.pk}/change/")
    assert_fits(me, "note page")
    assert page.locator("input[name=_save], input[name=_continue]").count() == 0
    assert page.locator(".field-tag_chips .vc-chip").count() == len(linked.tags)
    assert page.locator(".note-preview a.vc-wikilink").count() >= 1
    href = page.locator(".note-preview a.vc-wikilink").first.get_attribute("href")
    assert href.startswith("/ingest/note/") and href.endswith("/change/")

    # A skipped note: its raw text around the broken line, the line marked.
    broken = Note.objects.get(vault=sample_vault, state=Note.State.SKIPPED)
    page = me.go(f"/ingest/note/{broken.pk}/change/")
    assert_fits(me, "skipped note page")
    assert page.locator(".vc-raw .vc-bad").count() == 1
    assert "line" in page.inner_text(".field-reason")

    assert Job.objects.count() == 1

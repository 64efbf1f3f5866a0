"""Curate now: a pasted page (or one note) curated in real time through the emulator, its
suggestions on the page that follows, failures with their reason, and who may do it."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from curation import operations
from curation.curate_now import note_curate_now
from curation.models import Job, Operation, ReviewLock, Suggestion
from ingest.importer import vault_import
from ingest.models import Note
from tests.ingest.conftest import ARTICLE

pytestmark = pytest.mark.django_db

FROM_URL = reverse("admin:ingest_note_from_url")
FIELDS = {"tags", "description", "related"}


@pytest.fixture(autouse=True)
def allow_local(settings):
    settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE = True  # the page is served on 127.0.0.1
    settings.VAULTCMS_URL_INGEST_TIMEOUT = 5


@pytest.fixture
def vault(make_vault):
    root = make_vault({
        "Inbox/Embeddings.md": "# Embeddings\n\nVectors for retrieval and search of chunks.\n",
        "Inbox/Reranking.md": "# Reranking\n\nOrdering retrieved passages before generation.\n",
    })  # fmt: skip
    vault, _ = vault_import(root=root, name="web")
    return vault


def user_in(*groups: str, name: str | None = None) -> User:
    user = User.objects.create_user(name or "-".join(groups).lower(), password="x", is_staff=True)
    for group in groups:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def curator():
    return user_in("Curator")


def worker_turn(callbacks, capture):
    """Run what the request queued once it committed: django-q2 runs each task right here
    (sync mode), and what those tasks queue in turn runs too."""
    with capture(execute=True):
        for callback in callbacks:
            callback()


def curate_page(client, op):
    return client.get(reverse("curation:curate-now", args=[op.id])).content.decode()


def status_of(client, op) -> dict:
    response = client.get(reverse("curation:curate-now-status", args=[op.id]))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    return response.json()


# --- the pasted page, end to end ------------------------------------------------------------


def test_a_pasted_page_is_curated_in_real_time_and_its_suggestions_shown(
    client, vault, web_server, emulator, django_capture_on_commit_callbacks
):
    editor = user_in("Curator", "Moderator", name="editor")
    client.force_login(editor)
    url = web_server.page("/vector", ARTICLE.format(title="Vector search"))
    form = client.get(FROM_URL).content.decode()
    assert 'name="curate_now"' in form and "Maximum cost $10" in form

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            FROM_URL, {"url": url, "vault": vault.pk, "folder": "Inbox", "curate_now": "on"}
        )
    note = Note.objects.get(path="Inbox/Vector search.md")
    op = Operation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("curation:curate-now", args=[op.id])
    # The web request called no API (not even count_tokens): the worker does all of it.
    assert emulator.stats()["requests"] == 0 and not Job.objects.exists()
    waiting = status_of(client, op)
    assert waiting["state"] == "queued" and waiting["final"] is False
    assert waiting["suggestions"] == []
    page = client.get(response["Location"]).content.decode()
    assert f"Added Inbox/Vector search.md from {url}; curating it now." in page
    assert "Waiting for the model" in page

    worker_turn(callbacks, django_capture_on_commit_callbacks)

    job = Job.objects.get()
    assert job.mode == "sync" and job.requested_mode == "auto"  # the router's pick for one note
    assert job.state == Job.State.SUCCEEDED and job.selection == "curate now"
    assert list(job.items.values_list("note_id", flat=True)) == [note.id]
    assert emulator.stats()["messages"] == 1
    suggestions = Suggestion.objects.filter(job=job, note=note)
    assert set(suggestions.values_list("field", flat=True)) == FIELDS

    status = status_of(client, op)
    assert status["final"] is True and status["state"] == "succeeded" and status["error"] == ""
    assert status["job_id"] == job.id and status["mode"] == "sync"
    assert [s["field"] for s in status["suggestions"]] == ["tags", "description", "related"]
    assert all(s["state"] == "pending" for s in status["suggestions"])
    page = curate_page(client, op)
    description = suggestions.get(field="description").value
    assert description and description in page
    for tag in suggestions.get(field="tags").value:
        assert f'<span class="vc-chip">{tag}</span>' in page
    assert reverse("curation:review_note", args=[note.pk]) in page  # ready to review
    assert page.count('class="vc-approve">Approve</button>') == 3

    # Approve one straight from that page: back on it, decided.
    tags = suggestions.get(field="tags")
    decide = (
        reverse("curation:review_decide") + "?next=" + reverse("curation:curate-now", args=[op.id])
    )
    response = client.post(decide, {"decide": f"{tags.id}:pending:approve"})
    assert response["Location"] == reverse("curation:curate-now", args=[op.id])
    tags.refresh_from_db()
    assert tags.state == Suggestion.State.APPROVED
    assert [s["state"] for s in status_of(client, op)["suggestions"]] == [
        "approved", "pending", "pending"
    ]  # fmt: skip


def test_without_curate_now_the_note_is_only_added(client, curator, vault, web_server):
    client.force_login(curator)
    url = web_server.page("/plain", ARTICLE.format(title="Plain add"))
    response = client.post(FROM_URL, {"url": url, "vault": vault.pk, "folder": "Inbox"})
    note = Note.objects.get(path="Inbox/Plain add.md")
    assert response["Location"] == reverse("admin:ingest_note_change", args=[note.pk])
    assert not Operation.objects.exists()


def test_a_fetch_error_is_shown_on_the_form_and_nothing_is_queued(
    client, curator, vault, web_server
):
    client.force_login(curator)
    url = web_server.raw("/doc.pdf", 200, {"Content-Type": "application/pdf"}, b"%PDF")
    page = client.post(FROM_URL, {"url": url, "vault": vault.pk, "curate_now": "on"})
    assert page.status_code == 200 and "not an HTML page" in page.content.decode()
    assert not Operation.objects.exists() and Note.objects.count() == 2


# --- failures, with their reason on the page ---------------------------------------------------


def curate_via_note_page(client, note, capture, **post):
    with capture() as callbacks:
        response = client.post(reverse("curation:note-curate-now", args=[note.pk]), post)
    assert response.status_code == 302, response.content.decode()[:500]
    op = Operation.objects.order_by("-id").first()
    assert response["Location"] == reverse("curation:curate-now", args=[op.id])
    worker_turn(callbacks, capture)
    op.refresh_from_db()
    return op


def test_over_the_job_budget_is_refused_with_the_reason(
    client, curator, vault, emulator, settings, django_capture_on_commit_callbacks
):
    settings.CURATION_MAX_JOB_COST = "0.000001"
    client.force_login(curator)
    note = Note.objects.get(path="Inbox/Embeddings.md")
    op = curate_via_note_page(client, note, django_capture_on_commit_callbacks)
    assert op.state == Operation.State.FAILED and not Job.objects.exists()
    assert emulator.stats()["messages"] == 0  # refused before anything was sent
    status = status_of(client, op)
    assert status["final"] is True and status["state"] == "failed"
    assert "is over the maximum of $0.000001" in status["error"]
    assert "is over the maximum of $0.000001" in curate_page(client, op)


def test_a_refused_key_is_shown_with_its_reason(
    client, curator, vault, emulator, django_capture_on_commit_callbacks
):
    emulator.configure(api_key="sk-ant-the-only-good-key")  # ours is refused
    client.force_login(curator)
    note = Note.objects.get(path="Inbox/Embeddings.md")
    op = curate_via_note_page(client, note, django_capture_on_commit_callbacks)
    assert op.job.state == Job.State.FAILED
    status = status_of(client, op)
    assert status["final"] is True and status["suggestions"] == []
    assert "refused the key" in status["error"] and "request-id req_" in status["error"]
    page = curate_page(client, op)
    assert "refused the key" in page and "sk-ant-test-emulator" not in page


def test_an_api_error_is_shown_with_its_reason(
    client, curator, vault, emulator, settings, django_capture_on_commit_callbacks
):
    settings.CURATION_MAX_ATTEMPTS = 1
    settings.CURATION_SDK_MAX_RETRIES = 0
    emulator.configure(script=[{"endpoint": "messages", "status": 500, "times": 5}])
    client.force_login(curator)
    note = Note.objects.get(path="Inbox/Embeddings.md")
    op = curate_via_note_page(client, note, django_capture_on_commit_callbacks)
    assert op.job.state == Job.State.FAILED
    status = status_of(client, op)
    assert "Internal server error (scripted fault)" in status["error"]
    assert "Internal server error (scripted fault)" in curate_page(client, op)


# --- from a note's page: pending suggestions, the lock, the note's state ------------------------


def test_note_page_and_review_page_offer_curate_now_to_curators(client, curator, vault):
    note = Note.objects.get(path="Inbox/Embeddings.md")
    action = reverse("curation:note-curate-now", args=[note.pk])
    client.force_login(curator)
    change = client.get(reverse("admin:ingest_note_change", args=[note.pk])).content.decode()
    review = client.get(reverse("curation:review_note", args=[note.pk])).content.decode()
    assert f'action="{action}"' in change and 'id="curate-now-button"' in change
    assert f'action="{action}"' in review and 'name="from" value="review"' in review

    for role in ("Viewer", "Moderator"):
        client.force_login(user_in(role))
        change = client.get(reverse("admin:ingest_note_change", args=[note.pk])).content.decode()
        review = client.get(reverse("curation:review_note", args=[note.pk])).content.decode()
        assert action not in change and action not in review, role


def test_pending_suggestions_ask_first_then_replace(
    client, curator, vault, emulator, django_capture_on_commit_callbacks
):
    note = Note.objects.get(path="Inbox/Embeddings.md")
    client.force_login(curator)
    first = curate_via_note_page(client, note, django_capture_on_commit_callbacks)
    old = set(Suggestion.objects.filter(job=first.job).values_list("id", flat=True))
    assert len(old) == 3

    page = client.post(reverse("curation:note-curate-now", args=[note.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and Operation.objects.count() == 1  # nothing queued
    assert "already has 3 suggestions awaiting review" in html
    assert 'name="pending" value="replace"' in html
    assert reverse("curation:review_note", args=[note.pk]) in html

    again = curate_via_note_page(
        client, note, django_capture_on_commit_callbacks, pending="replace"
    )
    assert again.job.state == Job.State.SUCCEEDED and again.job_id != first.job_id
    assert set(Suggestion.objects.filter(id__in=old).values_list("state", flat=True)) == {
        Suggestion.State.SUPERSEDED
    }
    assert Suggestion.objects.filter(note=note, state="pending", job=again.job).count() == 3


def test_pending_that_arrived_meanwhile_is_kept_unless_replace_was_chosen(curator, vault):
    """The worker checks again: suggestions stored between the click and the worker stay."""
    note = Note.objects.get(path="Inbox/Embeddings.md")
    op = note_curate_now(note=note, user=curator)
    job = Job.objects.create(model="m", fields=["tags"], state=Job.State.SUCCEEDED)
    item = job.items.create(note=note)
    Suggestion.objects.create(item=item, note=note, job=job, field="tags", value=["x"], model="m")
    assert operations.operation_run(operation_id=op.id) == Operation.State.FAILED
    op.refresh_from_db()
    assert "already has suggestions awaiting review" in op.error


def test_someone_else_s_review_lock_refuses_it(client, curator, vault):
    note = Note.objects.get(path="Inbox/Embeddings.md")
    holder = user_in("Moderator", name="mia")
    ReviewLock.objects.create(
        note=note, holder=holder, claimed_at=timezone.now(),
        expires_at=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    client.force_login(curator)
    response = client.post(
        reverse("curation:note-curate-now", args=[note.pk]), {"from": "review"}, follow=True
    )
    assert response.redirect_chain[0][0] == reverse("curation:review_note", args=[note.pk])
    # (the admin's message list capitalizes the first letter)
    assert "Mia is reviewing Inbox/Embeddings.md until" in response.content.decode()
    assert not Operation.objects.exists()


def test_a_skipped_note_cannot_be_curated_now(client, curator, vault):
    note = Note.objects.get(path="Inbox/Embeddings.md")
    Note.objects.filter(pk=note.pk).update(state=Note.State.MISSING)
    client.force_login(curator)
    response = client.post(reverse("curation:note-curate-now", args=[note.pk]), follow=True)
    assert "is missing from disk; it cannot be curated" in response.content.decode()
    assert not Operation.objects.exists()


# --- who may ----------------------------------------------------------------------------------


def test_only_curators_may_curate_now(client, vault, web_server):
    note = Note.objects.get(path="Inbox/Embeddings.md")
    action = reverse("curation:note-curate-now", args=[note.pk])
    for role in ("Viewer", "Moderator"):
        client.force_login(user_in(role))
        assert client.post(action).status_code == 403, role
    assert not Operation.objects.exists()

    # A moderator may add pages but gets no "Curate now" choice: posting it only adds the note.
    moderator = User.objects.get(username="moderator")
    client.force_login(moderator)
    assert 'name="curate_now"' not in client.get(FROM_URL).content.decode()
    url = web_server.page("/forged", ARTICLE.format(title="Forged choice"))
    response = client.post(FROM_URL, {"url": url, "vault": vault.pk, "curate_now": "on"})
    added = Note.objects.get(path="Forged choice.md")
    assert response["Location"] == reverse("admin:ingest_note_change", args=[added.pk])
    assert not Operation.objects.exists()

    client.logout()
    response = client.post(action)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_curate_now_needs_the_csrf_token(curator, vault):
    note = Note.objects.get(path="Inbox/Embeddings.md")
    client = Client(enforce_csrf_checks=True)
    client.force_login(curator)
    assert client.post(reverse("curation:note-curate-now", args=[note.pk])).status_code == 403
    assert client.get(reverse("curation:note-curate-now", args=[note.pk])).status_code == 405
    assert not Operation.objects.exists()


def test_the_page_is_for_readers_and_for_curate_now_operations_only(client, curator, vault):
    note = Note.objects.get(path="Inbox/Embeddings.md")
    op = note_curate_now(note=note, user=curator)
    url = reverse("curation:curate-now", args=[op.id])
    client.force_login(user_in("Viewer"))
    assert client.get(url).status_code == 200
    client.force_login(User.objects.create_user("nobody", password="x", is_staff=True))
    assert client.get(url).status_code == 403
    assert client.get(reverse("curation:curate-now-status", args=[op.id])).status_code == 403

    other = operations.operation_create(
        kind=Operation.Kind.CURATE, user=curator,
        params={"notes": operations.selection_of(Note.objects.all()), "pending": "skip"},
    )  # fmt: skip
    client.force_login(curator)
    assert client.get(reverse("curation:curate-now", args=[other.id])).status_code == 403
    assert (
        json.loads(client.get(reverse("curation:curate-now-status", args=[op.id])).content)["state"]
        == "queued"
    )

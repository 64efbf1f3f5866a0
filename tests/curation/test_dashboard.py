"""The admin home page dashboard: counts, money saved by batching, next step, bounded queries."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from curation.dashboard import dashboard_counts, saved_by_batching
from curation.models import Batch, Item, Job, Review, ReviewLock, Suggestion
from ingest.models import Note, Vault

pytestmark = pytest.mark.django_db


def make_notes(vault, n, state=Note.State.OK, prefix="n"):
    return Note.objects.bulk_create(
        [Note(vault=vault, path=f"{prefix}{i}.md", title=f"{prefix}{i}", state=state) for i in range(n)]
    )


def make_job(notes, *, state, mode, cost_each, batched):
    job = Job.objects.create(model="m", state=state, mode=mode, cost=cost_each * len(notes))
    batch = Batch.objects.create(job=job, state=Batch.State.APPLIED) if batched else None
    items = [
        Item.objects.create(
            job=job, note=note, batch=batch, state=Item.State.SUCCEEDED, cost=cost_each,
            batch_cost=cost_each if batched else Decimal("0"),
            custom_id=f"j{job.pk}-{note.pk}",
        )
        for note in notes
    ]  # fmt: skip
    return job, items


@pytest.fixture
def world():
    vault = Vault.objects.create(name="v", root="/tmp/v")
    ok = make_notes(vault, 5)
    make_notes(vault, 2, state=Note.State.SKIPPED, prefix="bad")
    done, items = make_job(
        ok[:3], state=Job.State.SUCCEEDED, mode="batch", cost_each=Decimal("0.01"), batched=True
    )
    make_job(ok[3:4], state=Job.State.SUCCEEDED, mode="sync", cost_each=Decimal("0.05"), batched=False)
    Job.objects.create(model="m", state=Job.State.RUNNING, mode="batch")
    suggestions = [
        Suggestion.objects.create(item=item, note=item.note, job=done, field="tags", value=["a"], model="m")
        for item in items
    ]  # fmt: skip
    Suggestion.objects.filter(pk=suggestions[0].pk).update(state=Suggestion.State.APPROVED)
    Review.objects.create(suggestion=suggestions[0], decision="approved", value=["a"])
    return vault


def test_counts(world):
    d = dashboard_counts()
    assert (d.vaults, d.notes_ok, d.notes_skipped, d.notes_missing) == (1, 5, 2, 0)
    assert (d.jobs_total, d.jobs_running) == (3, 1)
    assert (d.items_total, d.items_done) == (4, 4)
    assert d.suggestions_pending == 2
    assert d.reviews_to_export == 1
    assert d.cost == Decimal("0.08")
    # Three batched items cost 0.03 at half price: real time would have cost 0.06.
    assert d.batch_cost == Decimal("0.03")
    assert d.saved == Decimal("0.03")


def test_saved_is_zero_without_batches():
    assert saved_by_batching(Decimal("0")) == 0


def test_next_step_moves_along_the_story(world):
    assert [s.key for s in dashboard_counts().steps if s.next] == ["curate"]  # a job is running
    Job.objects.filter(state=Job.State.RUNNING).update(state=Job.State.SUCCEEDED)
    assert [s.key for s in dashboard_counts().steps if s.next] == ["review"]
    Suggestion.objects.update(state=Suggestion.State.APPROVED)
    assert [s.key for s in dashboard_counts().steps if s.next] == ["export"]


def test_empty_app_says_import_first():
    steps = dashboard_counts().steps
    assert [s.key for s in steps if s.next] == ["import"]
    assert "import_vault" in steps[0].text


def test_query_count_does_not_grow_with_data(world):
    with CaptureQueriesContext(connection) as small:
        dashboard_counts()
    vault = Vault.objects.get()
    more = make_notes(vault, 40, prefix="more")
    make_job(more, state=Job.State.SUCCEEDED, mode="batch", cost_each=Decimal("0.001"), batched=True)
    with CaptureQueriesContext(connection) as large:
        dashboard_counts()
    assert len(small) == len(large) <= 7


def test_admin_home_shows_the_dashboard(world, client, django_assert_max_num_queries):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    with django_assert_max_num_queries(14):
        page = client.get(reverse("admin:index"))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="vaultcms-dashboard"' in html
    assert "notes imported" in html and "suggestions awaiting review" in html
    assert "$0.03<" in html  # saved by batching
    assert 'class="vc-next" id="step-curate"' in html
    assert reverse("admin:ingest_note_from_url") in html
    assert "Site administration" in html or 'id="content-main"' in html  # Django's list stays


def test_moderator_sees_what_awaits_them(world, client):
    other = User.objects.create_user("other", password="x", is_staff=True)
    note = Suggestion.objects.filter(state=Suggestion.State.PENDING).first().note
    ReviewLock.objects.create(
        note=note, holder=other, claimed_at=timezone.now(),
        expires_at=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    mod = User.objects.create_user("mod", password="x", is_staff=True)
    mod.groups.add(Group.objects.get_or_create(name="Moderator")[0])
    mod.user_permissions.add(Permission.objects.get(codename="review_suggestion"))
    client.force_login(mod)
    html = client.get(reverse("admin:index")).content.decode()
    assert '<span id="dash-awaiting-you">1 awaiting you</span>' in html


def test_the_dashboard_says_when_suggestions_come_from_the_emulator(world, client, monkeypatch):
    client.force_login(User.objects.create_superuser("boss2", password="x"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="dash-emulated"' in html and "built-in emulator" in html
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-shown")
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="dash-emulated"' not in html and "sk-ant-test-not-shown" not in html

"""The Vault admin's "Propose tag consolidation": a small form (mode, maximum cost, estimate),
then the job is queued and its live page opens; when it ends the page lists the merges."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import Job, TagConsolidation
from ingest.importer import vault_import
from ingest.models import Vault

pytestmark = pytest.mark.django_db
VAULTS = reverse("admin:ingest_vault_changelist")
FILES = {
    "a.md": "---\ntags: [Python, agents]\n---\nA body.\n",
    "b.md": "---\ntags:\n  - python\n  - js\n---\nB body\n",
    "c.md": "---\ntags: [python, agent, coding/languages/javascript]\n---\nC.\n",
    "d.md": "---\ntags: [agents, cooking]\n---\nD.\n",
}


def user_in(group: str) -> User:
    user = User.objects.create_user(group.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def vault(emulator, make_vault, fast_polls):
    vault, _ = vault_import(root=make_vault(FILES), name="v")
    return vault


def action(vault, **extra):
    return {"action": "consolidate_vault_tags", ACTION_CHECKBOX_NAME: [vault.pk], **extra}


def test_form_then_job_then_its_page_lists_the_merges(
    vault, client, emulator, django_capture_on_commit_callbacks
):
    client.force_login(user_in("Curator"))
    form = client.post(VAULTS, action(vault, index="0"))
    body = form.content.decode()
    assert form.status_code == 200 and "v has 7 tags" in body and "in 1 request," in body
    assert 'name="mode"' in body and 'name="max_cost"' in body and "Estimated cost: <strong" in body
    assert "Real time, one by one" in body  # auto picks real time for one request
    assert not Job.objects.exists() and emulator.stats()["messages"] == 0

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        done = client.post(VAULTS, action(vault, apply="1", mode="auto", max_cost="1"))
    job = Job.objects.get()
    assert done.status_code == 302 and done.url == reverse("curation:job", args=[job.id])
    assert job.kind == Job.Kind.CONSOLIDATE and job.state == Job.State.PENDING
    assert job.max_cost == 1 and job.created_by.username == "curator"
    assert emulator.stats()["messages"] == 0  # the model is asked by a worker, not the request
    page = client.get(done.url).content.decode()
    assert 'data-reload-when-final="1"' in page and "tag consolidation of v" in page
    assert "Review the proposed merges" in page and 'id="job-merge-list"' not in page

    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()  # the commit: the worker's task runs inline (django-q2 sync)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    page = client.get(done.url).content.decode()
    review = reverse("admin:curation_tagconsolidation_changelist") + f"?job__id__exact={job.id}"
    assert f'href="{review}"' in page and "3 proposed" in page
    assert "<td>js</td><td>coding/languages/javascript</td><td>1</td>" in page
    assert 'data-reload-when-final' not in page
    progress = client.get(reverse("curation:job-progress", args=[job.id])).json()
    assert progress["kind"] == "consolidate" and progress["merges"] == progress["pending"] == 3
    assert progress["items"][0]["note"] == "tag list (7 tags)"
    listed = client.get(review).content.decode()
    assert "agent" in listed and "Python" in listed


def test_over_the_maximum_cost_the_form_says_so_and_nothing_is_queued(vault, client):
    client.force_login(user_in("Curator"))
    page = client.post(VAULTS, action(vault, apply="1", mode="batch", max_cost="0.000001"))
    body = page.content.decode()
    assert page.status_code == 200 and "is over the maximum of $0.000001" in body
    assert not Job.objects.exists()


def test_only_curators_and_one_vault_at_a_time(vault, client, make_vault):
    client.force_login(user_in("Moderator"))
    page = client.post(VAULTS, action(vault), follow=True).content.decode()
    assert "not allowed to start jobs" in page and not Job.objects.exists()
    other = Vault.objects.create(name="w", root=str(make_vault({}, root=None)))
    client.force_login(User.objects.create_superuser("root", password=None))
    both = {"action": "consolidate_vault_tags", ACTION_CHECKBOX_NAME: [vault.pk, other.pk]}
    page = client.post(VAULTS, both, follow=True).content.decode()
    assert "Choose one vault" in page and not Job.objects.exists()
    page = client.post(VAULTS, action(other), follow=True).content.decode()
    assert "fewer than two tags" in page


def page_queries(client, job) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("curation:job", args=[job.id])).status_code == 200
    return len(queries)


def test_the_job_page_queries_stay_flat_with_many_merges(
    vault, client, django_capture_on_commit_callbacks
):
    client.force_login(User.objects.create_superuser("root", password=None))
    with django_capture_on_commit_callbacks(execute=True):  # the task runs inline at commit
        client.post(VAULTS, action(vault, apply="1", mode="sync", max_cost="0"))
    job = Job.objects.get()
    assert job.state == Job.State.SUCCEEDED
    few = page_queries(client, job)
    TagConsolidation.objects.bulk_create(
        TagConsolidation(job=job, vault=vault, old=f"t{i}", new="x", notes=i) for i in range(300)
    )
    many = page_queries(client, job)
    body = client.get(reverse("curation:job", args=[job.id])).content.decode()
    assert body.count("<tr data-merge-state=") == 200 and "(the 200 touching most notes)" in body
    assert many == few, (few, many)

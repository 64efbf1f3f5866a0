"""Admin doors of parallel mode: "Cancel selected items" and the job's "Switch to parallel"."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from curation.engine import jobs
from curation.models import Batch, Item, Job

pytestmark = pytest.mark.django_db
ITEMS = reverse("admin:curation_item_changelist")
JOBS = reverse("admin:curation_job_changelist")


def test_cancel_selected_items_leaves_ended_items_alone(admin_client, make_notes):
    job = jobs.job_create(notes=[n.id for n in make_notes(4)], mode="parallel")
    a, b, c, d = Item.objects.filter(job=job).order_by("id")
    Item.objects.filter(id=a.id).update(state=Item.State.SUBMITTED)
    Item.objects.filter(id=d.id).update(state=Item.State.SUCCEEDED)
    response = admin_client.post(
        ITEMS, {"action": "cancel_selected_items", ACTION_CHECKBOX_NAME: [a.id, b.id, d.id]},
        follow=True,
    )
    assert "Canceled 2 items" in response.content.decode()
    states = dict(Item.objects.filter(job=job).values_list("id", "state"))
    assert states == {a.id: "canceled", b.id: "canceled", c.id: "pending", d.id: "succeeded"}


def test_cancel_selected_items_needs_the_change_job_permission(client, make_notes):
    job = jobs.job_create(notes=[n.id for n in make_notes(2)], mode="parallel")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_item"))
    client.force_login(viewer)
    page = client.get(ITEMS)
    assert page.status_code == 200 and "cancel_selected_items" not in page.content.decode()
    ids = list(Item.objects.filter(job=job).values_list("id", flat=True))
    client.post(ITEMS, {"action": "cancel_selected_items", ACTION_CHECKBOX_NAME: ids})
    assert set(Item.objects.filter(job=job).values_list("state", flat=True)) == {"pending"}


def test_switch_to_parallel_action(admin_client, make_notes, emulator, fast_polls):
    emulator.configure(batch_seconds=60)
    batch_job = jobs.job_create(notes=[n.id for n in make_notes(3)], mode="batch")
    jobs.job_step(job_id=batch_job.id)  # submitted, the batch runs for a minute
    sync_job = jobs.job_create(notes=[n.id for n in make_notes(1)], mode="sync")
    response = admin_client.post(
        JOBS,
        {"action": "switch_to_parallel", ACTION_CHECKBOX_NAME: [batch_job.id, sync_job.id]},
        follow=True,
    )
    assert "Switched 1 job to parallel (3 unfinished items)" in response.content.decode()
    batch_job.refresh_from_db()
    sync_job.refresh_from_db()
    assert batch_job.mode == "parallel" and sync_job.mode == "sync"
    assert Batch.objects.get(job=batch_job).state == Batch.State.CANCELING
    # The job's worker carries on in parallel mode.
    assert jobs.job_run(job_id=batch_job.id, sleep=lambda s: None) is True
    batch_job.refresh_from_db()
    assert batch_job.state == Job.State.SUCCEEDED
    assert emulator.stats()["messages"] == 3


def test_job_page_shows_items_finishing_one_by_one_with_the_cost_so_far(
    admin_client, make_notes, emulator, fast_polls, settings, monkeypatch
):
    from curation.engine import parallel

    settings.CURATION_CONCURRENCY = 3
    emulator.configure(latency=0.03)
    job = jobs.job_create(notes=[n.id for n in make_notes(6)], mode="parallel")
    json_url = reverse("curation:job-progress", args=[job.id])
    seen = []
    finish = parallel.ParallelRun.finish

    def finish_then_look(self, item, outcome):
        applied = finish(self, item, outcome)
        seen.append((item.id, admin_client.get(json_url).json()))
        return applied

    monkeypatch.setattr(parallel.ParallelRun, "finish", finish_then_look)
    jobs.job_run(job_id=job.id, sleep=lambda s: None)

    assert [data["done"] for _, data in seen] == [1, 2, 3, 4, 5, 6]
    costs = [float(data["cost"]) for _, data in seen]
    assert costs == sorted(costs) and costs[0] > 0
    for item_id, data in seen:
        latest = data["items"][0]  # the item that just ended heads the list
        assert latest["id"] == item_id and latest["state"] == "succeeded"
        assert latest["note"].endswith(".md") and float(latest["cost"]) > 0
    page = admin_client.get(reverse("curation:job", args=[job.id])).content.decode()
    assert 'id="job-items"' in page and page.count('data-item-state="succeeded"') == 6

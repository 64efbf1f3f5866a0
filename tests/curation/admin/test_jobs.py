"""The admin doors: "Curate selected notes" across pages, the Job admin, the live job page."""

import json
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from curation import operations
from curation.engine import jobs
from curation.models import Item, Job, Operation
from curation.templatetags.vaultcms_money import money
from ingest.models import Note

pytestmark = pytest.mark.django_db
NOTES = reverse("admin:ingest_note_changelist")


def first_page_ids(admin_client, query=""):
    page = admin_client.get(NOTES + query)
    assert page.status_code == 200
    return [str(obj.pk) for obj in page.context["cl"].result_list]


def test_curate_action_select_all_across_pages(
    admin_client, make_notes, django_assert_max_num_queries
):
    make_notes(120)  # the Note admin shows 50 per page
    selected = first_page_ids(admin_client)
    assert len(selected) == 50
    base = {"action": "curate_selected_notes", "select_across": "1", ACTION_CHECKBOX_NAME: selected}

    form = admin_client.post(NOTES, {**base, "index": "0"})
    assert form.status_code == 200
    body = form.content.decode()
    assert "120 notes selected" in body and 'name="select_across" value="1"' in body
    assert body.count(f'name="{ACTION_CHECKBOX_NAME}"') == 50

    # The selection is stored, no item is made; the ids and a sample are read for the cost
    # estimate the maximum cost is checked against before queueing (issue 14b).
    with django_assert_max_num_queries(14):
        done = admin_client.post(
            NOTES, {**base, "apply": "1", "curate_fields": ["tags", "description"], "mode": "auto"}
        )
    op = Operation.objects.get()
    assert done.status_code == 302 and done.url == reverse("curation:operation", args=[op.id])
    assert not Job.objects.exists() and op.state == Operation.State.PENDING
    assert operations.selection_ids(op.params["notes"]) == sorted(
        Note.objects.values_list("id", flat=True)
    )
    assert "120 notes" in admin_client.get(done.url).content.decode()

    assert operations.operation_run(operation_id=op.id) == Operation.State.SUCCEEDED  # the worker
    job = Job.objects.get()
    assert job.items.count() == 120 and job.mode == "batch"
    assert job.fields == ["tags", "description"] and job.created_by.is_superuser
    assert "all matching" in job.selection
    page = admin_client.get(done.url).content.decode()
    assert f"Job {job.id} created: 120 notes" in page
    assert reverse("curation:job", args=[job.id]) in page


def test_curate_action_respects_filters_and_plain_selection(admin_client, make_notes):
    make_notes(3, vault="work")
    home = make_notes(4, vault="home")
    vault_id = home[0].vault_id
    query = f"?vault__id__exact={vault_id}"
    ids = first_page_ids(admin_client, query)
    post = {"action": "curate_selected_notes", "apply": "1", "curate_fields": ["tags"],
            "mode": "sync", ACTION_CHECKBOX_NAME: ids[:2]}  # fmt: skip
    admin_client.post(NOTES + query, post)
    operations.operation_run(operation_id=Operation.objects.get().id)
    job = Job.objects.get()
    assert job.items.count() == 2 and job.mode == "sync"
    admin_client.post(NOTES + query, {**post, "select_across": "1"})
    operations.operation_run(operation_id=Operation.objects.order_by("-id").first().id)
    assert Job.objects.order_by("-id").first().items.count() == 4


def test_curate_action_form_errors_and_skipped_notes(admin_client, make_notes):
    notes = make_notes(2)
    Note.objects.filter(id__in=[n.id for n in notes]).update(state="skipped")
    post = {"action": "curate_selected_notes", ACTION_CHECKBOX_NAME: [str(notes[0].id)]}
    page = admin_client.post(NOTES, {**post, "apply": "1", "mode": "auto"})  # no fields ticked
    assert page.status_code == 200 and "This field is required" in page.content.decode()
    ticked = {**post, "apply": "1", "mode": "auto", "curate_fields": ["tags"]}
    done = admin_client.post(NOTES, ticked, follow=True)
    assert "None of the selected notes can be curated" in done.content.decode()
    assert not Job.objects.exists()


def test_curate_action_needs_the_add_job_permission(client, make_notes):
    notes = make_notes(1)
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_note"))
    client.force_login(user)
    post = {"action": "curate_selected_notes", "apply": "1", "curate_fields": ["tags"],
            "mode": "auto", ACTION_CHECKBOX_NAME: [str(notes[0].id)]}  # fmt: skip
    client.post(NOTES, post)
    assert not Job.objects.exists() and not Operation.objects.exists()


def make_job(make_notes, n=3, **states):
    notes = make_notes(n)
    job = jobs.job_create(notes=[x.id for x in notes], fields=["tags"])
    for state, count in states.items():
        ids = list(job.items.filter(state="pending").values_list("id", flat=True)[:count])
        Item.objects.filter(id__in=ids).update(state=state, error=f"{state} because <b>x</b>")
    return job


def test_job_changelist_counts_with_one_query_for_the_page(
    admin_client, make_notes, django_assert_max_num_queries
):
    url = reverse("admin:curation_job_changelist")
    make_job(make_notes, 3, succeeded=2, failed=1)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(url)
    for _ in range(6):
        make_job(make_notes, 2, succeeded=1)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = admin_client.get(url)
    body = page.content.decode()
    assert "Succeeded 2" in body and "Failed 1" in body and "live progress" in body


def test_job_admin_actions_retry_and_cancel(
    admin_client, make_notes, django_capture_on_commit_callbacks
):
    url = reverse("admin:curation_job_changelist")
    done = make_job(make_notes, 2, succeeded=1, failed=1)
    Job.objects.filter(id=done.id).update(state=Job.State.FAILED)
    running = make_job(make_notes, 2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client.post(url, {"action": "retry_failed_items", ACTION_CHECKBOX_NAME: [done.id]})
    assert len(callbacks) == 1
    assert Item.objects.filter(job=done, state="pending").count() == 1
    admin_client.post(url, {"action": "cancel_jobs", ACTION_CHECKBOX_NAME: [running.id]})
    running.refresh_from_db()
    assert running.state == Job.State.CANCELED
    assert set(running.items.values_list("state", flat=True)) == {"canceled"}


def test_item_admin_filters_by_state_and_searches(admin_client, make_notes):
    job = make_job(make_notes, 3, failed=1)
    url = reverse("admin:curation_item_changelist")
    page = admin_client.get(url, {"job__id__exact": job.id, "state__exact": "failed"})
    assert len(page.context["cl"].result_list) == 1
    assert "failed because &lt;b&gt;x&lt;/b&gt;" in page.content.decode()
    found = admin_client.get(url, {"q": "because"})
    assert len(found.context["cl"].result_list) == 1
    path = job.items.first().note.path
    assert len(admin_client.get(url, {"q": path}).context["cl"].result_list) == 1


def test_job_page_and_progress_json(admin_client, client, make_notes):
    job = make_job(make_notes, 4, succeeded=2, failed=1)
    Job.objects.filter(id=job.id).update(selection='<script>alert("x")</script>')
    page_url = reverse("curation:job", args=[job.id])
    json_url = reverse("curation:job-progress", args=[job.id])

    assert client.get(page_url).status_code == 302  # login first
    assert client.get(json_url).status_code == 302
    nobody = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(nobody)
    assert client.get(page_url).status_code == 403
    assert client.get(json_url).status_code == 403

    page = admin_client.get(page_url)
    body = page.content.decode()
    assert page.status_code == 200 and 'id="job-bar"' in body and "job_progress.js" in body
    assert "<script>alert" not in body and "&lt;script&gt;alert" in body
    assert f'data-progress-url="{json_url}"' in body

    data = json.loads(admin_client.get(json_url).content)
    assert data["counts"]["succeeded"] == 2 and data["counts"]["failed"] == 1
    assert data["counts"]["pending"] == 1 and data["total"] == 4 and data["done"] == 3
    assert data["final"] is False and data["cost"] == "0.000000"
    assert admin_client.get(reverse("curation:job-progress", args=[999])).status_code == 404


def test_job_page_cancel_and_retry_buttons(
    admin_client, make_notes, django_capture_on_commit_callbacks
):
    job = make_job(make_notes, 2, failed=1)
    assert admin_client.get(reverse("curation:job-cancel", args=[job.id])).status_code == 405
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(reverse("curation:job-retry", args=[job.id]))
    assert job.items.filter(state="pending").count() == 2  # the failed one back, and the other
    admin_client.post(reverse("curation:job-cancel", args=[job.id]))
    job.refresh_from_db()
    assert job.state == Job.State.CANCELED
    Item.objects.filter(id=job.items.first().id).update(state="failed")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client.post(reverse("curation:job-retry", args=[job.id]))
    job.refresh_from_db()
    assert job.state == Job.State.CANCELED and not callbacks  # a canceled job stays canceled
    assert job.items.filter(state="failed").count() == 1


def test_curate_form_has_a_maximum_cost_and_shows_why_a_job_is_refused(
        admin_client, make_notes, settings):
    notes = make_notes(3)
    post = {"action": "curate_selected_notes", ACTION_CHECKBOX_NAME: [str(n.id) for n in notes]}
    form = admin_client.post(NOTES, post)
    assert 'name="max_cost" value="10"' in form.content.decode()  # CURATION_MAX_JOB_COST
    ticked = {**post, "apply": "1", "mode": "sync", "curate_fields": ["tags"]}
    refused = admin_client.post(NOTES, {**ticked, "max_cost": "0.000001"})
    body = refused.content.decode()
    assert refused.status_code == 200 and "over the maximum of $0.000001" in body
    assert 'class="errornote"' in body and not Job.objects.exists()
    settings.CURATION_MODEL = "claude-mystery-9"
    unknown = admin_client.post(NOTES, {**ticked, "max_cost": "5"}).content.decode()
    assert "no price is known for model &#x27;claude-mystery-9&#x27;" in unknown
    assert not Job.objects.exists()
    settings.CURATION_MODEL = "claude-haiku-4-5"
    done = admin_client.post(NOTES, {**ticked, "max_cost": "2"})
    op = Operation.objects.get()  # the job is created by a worker: run it here
    assert done.status_code == 302 and done.url == reverse("curation:operation", args=[op.id])
    assert operations.operation_run(operation_id=op.id) == Operation.State.SUCCEEDED
    job = Job.objects.get()
    assert job.max_cost == Decimal("2")
    page = admin_client.get(reverse("curation:job", args=[job.id])).content.decode()
    assert f"(estimated {money(job.cost_estimate)}, maximum $2.00)" in page

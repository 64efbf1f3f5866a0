"""The curate form's estimate and re-curation warning, operations (run, cancel, progress), the
job page's live mode, costs with "$", and the favicon."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from curation import operations
from curation.engine import jobs, parallel
from curation.models import Job, Operation, Suggestion
from curation.templatetags.vaultcms_money import money
from ingest.models import Note

pytestmark = pytest.mark.django_db
NOTES = reverse("admin:ingest_note_changelist")


def pending_for(note, job):
    item = job.items.get(note=note)
    return Suggestion.objects.create(
        item=item, note=note, job=job, field="tags", value=["x"], model="m"
    )


def test_curate_form_shows_estimate_and_pending_warning(admin_client, make_notes):
    notes = make_notes(4)
    job = jobs.job_create(notes=[n.id for n in notes[:3]], fields=["tags"])
    for note in notes[:3]:
        pending_for(note, job)
    ids = [str(n.id) for n in notes]
    html = admin_client.post(
        NOTES, {"action": "curate_selected_notes", ACTION_CHECKBOX_NAME: ids}
    ).content.decode()
    estimate = operations.curate_estimate(notes=Note.objects.filter(id__in=[n.id for n in notes]))
    assert f'<strong id="estimate-cost">{money(estimate["batch"])}</strong>' in html
    assert "Message Batches" in html
    assert "3 of the selected notes already have suggestions awaiting review" in html
    assert 'value="skip"' in html and 'value="replace"' in html
    assert estimate["realtime"] > estimate["batch"] > 0  # batch is half price


def test_skip_leaves_out_notes_with_pending_suggestions(admin_client, make_notes):
    notes = make_notes(4)
    old = jobs.job_create(notes=[n.id for n in notes[:3]], fields=["tags"])
    for note in notes[:3]:
        pending_for(note, old)
    ids = [str(n.id) for n in notes]
    post = {"action": "curate_selected_notes", "apply": "1", "curate_fields": ["tags"],
            "mode": "auto", ACTION_CHECKBOX_NAME: ids}  # fmt: skip
    admin_client.post(NOTES, {**post, "pending": "skip"})
    op = Operation.objects.get()
    assert operations.operation_run(operation_id=op.id) == Operation.State.SUCCEEDED
    op.refresh_from_db()
    assert op.result["left_out_pending"] == 3
    assert list(op.job.items.values_list("note_id", flat=True)) == [notes[3].id]

    admin_client.post(NOTES, {**post, "pending": "replace"})
    op = Operation.objects.order_by("-id").first()
    operations.operation_run(operation_id=op.id)
    op.refresh_from_db()
    assert op.job.items.count() == 4


def test_cancel_stops_a_running_operation_at_its_next_progress(make_notes, monkeypatch):
    notes = make_notes(3)
    op = operations.operation_create(
        kind=Operation.Kind.CURATE, user=None,
        params={"notes": operations.selection_of(Note.objects.all()), "pending": "skip"},
    )  # fmt: skip

    def cancel_then_create(**kwargs):
        raise AssertionError("the job must not be created after a cancel")

    real_check = operations.Progress.check

    def check(self):
        operations.operation_cancel(operation_id=op.id)  # someone presses Cancel now
        return real_check(self)

    monkeypatch.setattr(operations.Progress, "check", check)
    monkeypatch.setattr(jobs, "job_create", cancel_then_create)
    assert operations.operation_run(operation_id=op.id) == Operation.State.CANCELED
    op.refresh_from_db()
    assert op.state == Operation.State.CANCELED and not Job.objects.exists()
    assert len(notes) == 3


def test_operation_page_and_progress(admin_client, make_notes):
    make_notes(2)
    op = operations.operation_create(
        kind=Operation.Kind.CURATE, user=None,
        params={"notes": operations.selection_of(Note.objects.all()), "fields": ["tags"]},
        description="curate 2 notes", total=2,
    )  # fmt: skip
    page = admin_client.get(reverse("curation:operation", args=[op.id])).content.decode()
    assert "Queued" in page and 'id="op-cancel"' in page
    data = admin_client.get(reverse("curation:operation-progress", args=[op.id])).json()
    assert data["state"] == "pending" and data["total"] == 2 and not data["final"]
    operations.operation_run(operation_id=op.id)
    data = admin_client.get(reverse("curation:operation-progress", args=[op.id])).json()
    assert data["final"] and data["job_url"] == reverse("curation:job", args=[data["job_id"]])
    listing = admin_client.get(reverse("admin:curation_operation_changelist"))
    assert listing.status_code == 200 and "curate 2 notes" in listing.content.decode()


def test_job_page_follows_the_mode_after_switch_to_parallel(admin_client, make_notes):
    notes = make_notes(3)
    job = jobs.job_create(notes=[n.id for n in notes], fields=["tags"], mode="batch")
    Job.objects.filter(id=job.id).update(state=Job.State.RUNNING)
    url = reverse("curation:job-progress", args=[job.id])
    assert admin_client.get(url).json()["mode_label"] == "Message Batches (half price)"
    assert parallel.job_hedge(job_id=job.id) == 3
    data = admin_client.get(url).json()
    assert data["mode_label"] == "Real time, in parallel" and data["cost_text"] == "$0"
    page = admin_client.get(reverse("curation:job", args=[job.id])).content.decode()
    assert '<span id="job-mode">Real time, in parallel</span>' in page


@pytest.mark.parametrize(
    "amount, shown",
    [("0", "$0"), ("0.012247", "$0.0122"), ("0.000184", "$0.000184"), ("12.3456", "$12.35"),
     ("1234.5", "$1,234.50"), ("0.1", "$0.10"), ("0.05", "$0.05"), ("-0.0005", "-$0.0005"),
     ("0.00050", "$0.0005")],
)  # fmt: skip
def test_money(amount, shown):
    assert money(amount) == shown


def test_favicon_is_named_and_served(admin_client):
    assert 'rel="icon"' in admin_client.get(reverse("admin:index")).content.decode()
    response = admin_client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


def test_the_task_path_resolves_and_runs(make_notes):
    from django.utils.module_loading import import_string

    make_notes(1)
    op = operations.operation_create(
        kind=Operation.Kind.CURATE, user=None,
        params={"notes": operations.selection_of(Note.objects.all()), "fields": ["tags"]},
    )  # fmt: skip
    task = import_string(operations.RUN_OPERATION)
    assert task(op.id) == Operation.State.SUCCEEDED
    assert task(op.id) == Operation.State.SUCCEEDED  # delivered twice: done once
    assert Job.objects.count() == 1

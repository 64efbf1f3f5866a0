"""Operations under a lease: a run lost with its worker is queued again by the sweep, runs are
counted, the third lost run fails the operation with its reason; older selections are refused."""

import base64
import pickle
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string

from curation import operations
from curation.models import Job, Operation
from ingest.models import Note

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Operations handed to the queue (none is run: the test runs them)."""
    sent = []
    monkeypatch.setattr(operations, "operation_enqueue", lambda *, operation_id: sent.append(
        operation_id))  # fmt: skip
    return sent


def curate_op(notes) -> Operation:
    return operations.operation_create(
        kind=Operation.Kind.CURATE, user=None, description="curate",
        params={"notes": operations.selection_of(Note.objects.filter(id__in=[n.id for n in notes])),
                "fields": ["tags"]},
    )  # fmt: skip


def lose_worker(op: Operation, *, runs: int) -> None:
    """As a run whose worker was killed leaves it: running, its lease lapsed."""
    Operation.objects.filter(id=op.id).update(
        state=Operation.State.RUNNING, lease_owner="host:1:dead", runs=runs,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip


def test_a_run_holds_the_lease_and_counts_itself(make_notes):
    op = curate_op(make_notes(2))
    assert op.lease_owner == "" and op.lease_expires_at > timezone.now()  # reserved for its task
    lease = operations.OperationLease(row_id=op.id)
    assert lease.claim()
    op.refresh_from_db()
    assert op.state == Operation.State.RUNNING and op.runs == 1 and op.lease_owner == lease.owner
    # Another delivery of the task finds the lease held and does nothing.
    assert operations.operation_run(operation_id=op.id) == Operation.State.RUNNING
    assert not Job.objects.exists()
    assert not operations.OperationLease(row_id=op.id).claim()


def test_the_sweep_leaves_live_operations_alone(make_notes, queued):
    op = curate_op(make_notes(1))  # its task is queued: reserved
    running = curate_op(make_notes(1))
    operations.OperationLease(row_id=running.id).claim()  # a live run
    assert operations.operations_sweep() == [] and queued == []
    Operation.objects.filter(id=op.id).update(lease_expires_at=timezone.now())  # task lost
    assert operations.operations_sweep() == [op.id] and queued == [op.id]
    assert operations.operations_sweep() == []  # reserved again for its new task
    assert queued == [op.id]


def test_a_lost_run_is_queued_again_by_the_sweep_and_completes(make_notes, queued):
    notes = make_notes(3)
    op = curate_op(notes)
    lose_worker(op, runs=1)
    assert operations.operations_sweep() == [op.id] and queued == [op.id]
    op.refresh_from_db()
    assert op.lease_owner == "" and op.lease_expires_at > timezone.now()
    assert operations.operation_run(operation_id=op.id) == Operation.State.SUCCEEDED
    op.refresh_from_db()
    assert op.runs == 2 and op.lease_owner == "" and op.job.items.count() == 3


def test_a_curate_run_lost_after_creating_its_job_goes_on_with_that_job(make_notes, queued):
    op = curate_op(make_notes(2))
    assert operations.operation_run(operation_id=op.id) == Operation.State.SUCCEEDED
    job = Operation.objects.get(id=op.id).job
    lose_worker(op, runs=1)  # as if killed after the job was committed, before the end
    assert operations.operation_run(operation_id=op.id) == Operation.State.SUCCEEDED
    op.refresh_from_db()
    assert Job.objects.count() == 1 and op.result["job_id"] == job.id and op.runs == 2


def test_after_three_lost_runs_the_operation_fails_with_the_reason(make_notes, queued):
    op = curate_op(make_notes(1))
    lose_worker(op, runs=operations.MAX_RUNS - 1)
    assert operations.operations_sweep() == [op.id]  # a third run may still try
    lose_worker(op, runs=operations.MAX_RUNS)
    assert operations.operations_sweep() == []
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED and op.finished_at is not None
    assert f"after {operations.MAX_RUNS} runs" in op.error and "lost" in op.error
    assert not Job.objects.exists()


def test_a_late_task_of_an_operation_whose_runs_were_lost_fails_it_too(make_notes):
    op = curate_op(make_notes(1))
    lose_worker(op, runs=operations.MAX_RUNS)
    assert operations.operation_run(operation_id=op.id) == Operation.State.FAILED
    assert "runs" in Operation.objects.get(id=op.id).error and not Job.objects.exists()


def test_an_operation_stored_with_a_pickled_query_fails_clearly(make_notes):
    make_notes(2)
    query = base64.b64encode(pickle.dumps(Note.objects.all().query)).decode()
    op = operations.operation_create(
        kind=Operation.Kind.CURATE, user=None, params={"notes": {"query": query}}
    )
    assert operations.operation_run(operation_id=op.id) == Operation.State.FAILED
    op.refresh_from_db()
    assert "older version" in op.error and "run the action again" in op.error
    assert not Job.objects.exists()


def test_an_unknown_selection_format_fails_clearly(make_notes):
    notes = make_notes(2)
    op = operations.operation_create(
        kind=Operation.Kind.DECIDE, user=None,
        params={"suggestions": [n.id for n in notes], "decision": "approved"},
    )  # fmt: skip
    assert operations.operation_run(operation_id=op.id) == Operation.State.FAILED
    assert "not in a format" in Operation.objects.get(id=op.id).error


def test_the_sweep_task_and_its_schedule(make_notes, queued):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name=operations.SWEEP_NAME)  # made by the migration
    assert schedule.func == operations.SWEEP_FUNC
    op = curate_op(make_notes(1))
    lose_worker(op, runs=1)
    assert import_string(operations.SWEEP_FUNC)() == "1 operation(s) queued again"
    assert queued == [op.id]
    Schedule.objects.filter(name=operations.SWEEP_NAME).delete()
    operations.on_worker_spawn(sender=None)  # a worker starting repairs it
    assert Schedule.objects.filter(name=operations.SWEEP_NAME, func=operations.SWEEP_FUNC).exists()


def test_the_operation_page_says_a_run_was_lost(admin_client, make_notes, queued):
    from django.urls import reverse

    op = curate_op(make_notes(1))
    url = reverse("curation:operation", args=[op.id])
    assert 'id="op-runs"' not in admin_client.get(url).content.decode()
    lose_worker(op, runs=1)
    operations.operation_run(operation_id=op.id)
    page = admin_client.get(url).content.decode()
    assert "run 2: 1 earlier run lost its worker" in page

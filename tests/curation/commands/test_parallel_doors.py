"""Parallel mode through its doors: curate --mode parallel --wait, urgent auto, worker task."""

from io import StringIO

import pytest
from django.core.management import call_command

from curation.engine import jobs, tasks
from curation.models import Item, Job, Suggestion

pytestmark = pytest.mark.django_db


def test_curate_mode_parallel_wait(emulator, make_notes, fast_polls, settings):
    settings.CURATION_CONCURRENCY = 4
    emulator.configure(latency=0.02)
    make_notes(9)
    out = StringIO()
    call_command("curate", "--all", "--mode", "parallel", "--fields", "tags", "--wait", stdout=out)
    job = Job.objects.get()
    assert job.mode == "parallel" and job.state == Job.State.SUCCEEDED
    assert out.getvalue().strip().splitlines()[-1] == (
        f"job {job.id} succeeded: succeeded 9; cost ${job.cost}"
    )
    stats = emulator.stats()
    assert stats["messages"] == 9 and stats["batches"] == 0 and stats["max_in_flight"] <= 4
    assert Suggestion.objects.filter(job=job, field="tags").count() == 9


def test_urgent_auto_job_runs_in_parallel_through_the_worker_task(
    emulator, make_notes, fast_polls
):
    notes = make_notes(5)
    job = jobs.job_create(notes=[n.id for n in notes], mode="auto", urgent=True)
    assert job.mode == "parallel"
    assert tasks.run_job(job.id) == Job.State.SUCCEEDED
    assert set(Item.objects.filter(job=job).values_list("state", flat=True)) == {"succeeded"}
    assert emulator.stats()["messages"] == 5


def test_a_spent_time_budget_hands_over_and_the_next_pass_finishes(
    emulator, make_notes, fast_polls, settings, monkeypatch
):
    from curation.engine import parallel

    settings.CURATION_CONCURRENCY = 2
    emulator.configure(latency=0.05)
    notes = make_notes(8)
    job = jobs.job_create(notes=[n.id for n in notes], mode="parallel")
    claim = parallel.ParallelRun.claim
    claims = []

    def claim_then_run_out_of_time(self, item_id):
        claimed = claim(self, item_id)
        if claimed is not None:
            claims.append(item_id)
        if len(claims) == 3:
            self.deadline = 0  # the task's time budget is spent from here on
        return claimed

    monkeypatch.setattr(parallel.ParallelRun, "claim", claim_then_run_out_of_time)
    Job.objects.filter(id=job.id).update(state=Job.State.RUNNING)
    job.refresh_from_db()
    assert parallel.parallel_run(job=job, deadline=10**12) == 0.0  # more to do: come back
    # The calls in flight were awaited and saved; nothing is left half-done.
    assert not Item.objects.filter(job=job, state=Item.State.SUBMITTED).exists()
    done = Item.objects.filter(job=job, state=Item.State.SUCCEEDED).count()
    assert 3 <= done <= 4 and done == len(claims)
    monkeypatch.setattr(parallel.ParallelRun, "claim", claim)
    assert jobs.job_run(job_id=job.id) is True
    assert set(emulator.stats()["notes"].values()) == {1}  # nothing sent twice

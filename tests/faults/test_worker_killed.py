"""kill -9 of a whole qcluster while it submits a batch, polls it, applies its results, or is
mid real-time call; a new qcluster finishes the job with nothing sent or applied twice."""

import time

import pytest

pytestmark = pytest.mark.slow

FIELDS = ["tags", "description"]
N = 12


def finish(site, job_id, *, n=N, timeout=90):
    state = site.wait_final(job_id, timeout=timeout)
    assert state == "succeeded", f"{site.item_states(job_id)}\n{site.worker_logs()[-6000:]}"
    assert site.item_states(job_id) == {"succeeded": n}
    site.check_every_note_has_its_own_suggestions(job_id, fields=FIELDS)


def test_baseline_curate_qcluster_and_jobs_wait(site):
    """The operator's path, no fault: `curate` (no --wait), `qcluster`, `jobs ID --wait`."""
    s = site()
    s.make_vault(N)
    job_id = s.curate("--fields", ",".join(FIELDS), "--mode", "batch")
    s.start_worker()
    result = s.wait_job(job_id, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr + s.worker_logs()[-4000:]
    assert f"job {job_id}  succeeded" in result.stdout
    finish(s, job_id)
    stats = s.check_sent_once()
    assert stats["batches"] == 1


# (phase, emulator settings, SQL whose first column turns true at the moment to kill)
PHASES = {
    "submitting a batch": (
        {"latency": 2.0, "batch_seconds": 0},
        "SELECT COUNT(*) FROM curation_batch WHERE state='submitting'",
    ),
    "polling a batch": (
        {"latency": 0.2, "batch_seconds": 4},
        "SELECT COUNT(*) FROM curation_batch WHERE state='in_progress'",
    ),
    "applying results": (
        {"latency": 1.5, "batch_seconds": 0.5},
        "SELECT COUNT(*) FROM curation_batch WHERE state='ended'",
    ),
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_kill9_during_batch_phase_then_restart(site, phase):
    config, moment = PHASES[phase]
    s = site()
    s.emulator.configure(**config)
    job_id = s.make_job(N, fields=FIELDS, mode="batch")
    first = s.start_worker()
    s.wait_for(moment, timeout=60, what=phase)
    time.sleep(0.3)  # inside the call, not at its edge
    s.kill9(first)
    s.emulator.configure(latency=0.05)
    s.start_worker()
    finish(s, job_id)
    s.check_sent_once()  # the submitted batch was adopted, never sent again
    rows = s.query("SELECT COUNT(*) FROM curation_batch WHERE job_id=%s AND state='applied'", job_id)
    assert rows[0][0] >= 1


@pytest.mark.parametrize(("mode", "in_flight"), [("sync", 1), ("parallel", 3)])
def test_kill9_mid_realtime_calls_then_restart(site, mode, in_flight):
    s = site(CURATION_CONCURRENCY=in_flight)
    s.emulator.configure(latency=0.6)
    job_id = s.make_job(6 * in_flight, fields=FIELDS, mode=mode)
    first = s.start_worker()
    s.wait_for(
        "SELECT COUNT(*) FROM curation_item WHERE state='succeeded'", timeout=60, what="two calls done"
    )
    s.wait_for("SELECT COUNT(*) FROM curation_item WHERE state='submitted'", timeout=30)
    time.sleep(0.2)
    s.kill9(first)
    s.emulator.configure(latency=0.05)
    s.start_worker()
    finish(s, job_id, n=6 * in_flight)
    # Calls in flight when the worker died had no answer saved: those notes alone go again.
    resent = {
        path for path, attempts in s.query(
            "SELECT n.path, i.attempts FROM curation_item i JOIN ingest_note n ON n.id=i.note_id"
        ) if attempts > 1
    }
    assert len(resent) <= in_flight
    s.check_sent_once(allow_resend=resent)

"""kill -9 of every worker at submit, at poll, at apply and mid real-time call, then a fresh
qcluster, on the DEFAULT timers (vaultcms.settings as shipped, nothing shortened): the job
moves again within 60 s of the new qcluster's start and completes, with no batch submitted
twice and every note with its own suggestions.

SQLite + the ORM broker by default; PostgreSQL + Redis when DATABASE_URL / REDIS_URL point
there (CI runs both). Nothing here waits for django-q2 to hand the dead worker's task out
again (that takes the task timeout + 60 s): the lease lapses and the sweep queues the job.
"""

import time

import pytest

from tests.faults.test_worker_killed import FIELDS, PHASES, N, finish

pytestmark = pytest.mark.slow

DEFAULT_TIMERS = {"DJANGO_SETTINGS_MODULE": "vaultcms.settings"}
RESUME_WITHIN = 60.0


def kill_and_restart(s, job_id: int, worker, *, pause: float = 0, within=RESUME_WITHIN) -> float:
    """kill -9 the worker's whole qcluster, start a fresh one (`pause` seconds later); seconds
    from the new start until the job moved."""
    dead = s.query("SELECT lease_owner FROM curation_job WHERE id=%s", job_id)[0][0]
    assert dead, "the killed worker held no lease: the kill came at the wrong moment"
    s.kill9(worker)
    killed = time.monotonic()
    s.emulator.configure(latency=0.05)
    time.sleep(pause)
    s.start_worker()
    started = time.monotonic()
    s.wait_for(
        "SELECT lease_owner NOT IN ('', %s) OR state IN ('succeeded', 'failed', 'canceled') "
        "FROM curation_job WHERE id=%s", dead, job_id,
        timeout=within + 60, what="a new run to take the job",
    )  # fmt: skip
    moved = time.monotonic() - started
    print(f"job {job_id} moved again {moved:.1f}s after the new qcluster started "
          f"({time.monotonic() - killed:.1f}s after kill -9)")  # fmt: skip
    assert moved <= within, s.worker_logs()[-4000:]
    return moved


@pytest.mark.parametrize("phase", list(PHASES))
def test_kill9_during_batch_phase_default_timers(site, phase):
    config, moment = PHASES[phase]
    s = site(**DEFAULT_TIMERS)
    s.emulator.configure(**config)
    job_id = s.make_job(N, fields=FIELDS, mode="batch")
    first = s.start_worker()
    s.wait_for(moment, timeout=90, what=phase)
    time.sleep(0.3)  # inside the call, not at its edge
    kill_and_restart(s, job_id, first)
    finish(s, job_id, timeout=120)
    stats = s.check_sent_once()
    assert stats["batches"] == 1  # adopted or polled again, never submitted twice


def test_kill9_mid_real_time_call_default_timers(site):
    n = 6
    s = site(**DEFAULT_TIMERS)
    s.emulator.configure(latency=0.6)
    job_id = s.make_job(n, fields=FIELDS, mode="sync")
    first = s.start_worker()
    s.wait_for("SELECT COUNT(*) FROM curation_item WHERE state='succeeded'", timeout=90)
    s.wait_for("SELECT COUNT(*) FROM curation_item WHERE state='submitted'", timeout=30)
    time.sleep(0.2)
    kill_and_restart(s, job_id, first)
    finish(s, job_id, n=n, timeout=120)
    # The call in flight at the kill went again at once (not after the task timeout).
    resent = {path for (path,) in s.query(
        "SELECT n.path FROM curation_item i JOIN ingest_note n ON n.id=i.note_id "
        "WHERE i.attempts > 1"
    )}  # fmt: skip
    assert len(resent) <= 1
    s.check_sent_once(allow_resend=resent)


def test_the_operator_s_commands_survive_kill9_default_timers(site):
    """`curate` (no --wait), `qcluster`, kill -9 while submitting, a new `qcluster`, and
    `jobs ID --wait` exits 0."""
    s = site(**DEFAULT_TIMERS)
    s.make_vault(N)
    s.emulator.configure(latency=2.0)
    job_id = s.curate("--fields", ",".join(FIELDS), "--mode", "batch")
    first = s.start_worker()
    s.wait_for("SELECT COUNT(*) FROM curation_batch WHERE state='submitting'", timeout=90)
    time.sleep(0.3)
    kill_and_restart(s, job_id, first)
    result = s.wait_job(job_id, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr + s.worker_logs()[-4000:]
    assert f"job {job_id}  succeeded" in result.stdout
    finish(s, job_id)
    assert s.check_sent_once()["batches"] == 1


def test_a_qcluster_started_after_the_lease_lapsed_resumes_at_once(site):
    """Workers sweep as they start: no wait for the scheduler's first look."""
    config, moment = PHASES["polling a batch"]
    s = site(**DEFAULT_TIMERS)
    lease = float(s.manage("shell", "-c", "from django.conf import settings; "
                           "print(settings.CURATION_LEASE_SECONDS)").stdout.split()[-1])
    s.emulator.configure(**config)
    job_id = s.make_job(N, fields=FIELDS, mode="batch")
    first = s.start_worker()
    s.wait_for(moment, timeout=90, what="polling")
    kill_and_restart(s, job_id, first, pause=lease + 1, within=25)
    finish(s, job_id, timeout=120)
    assert s.check_sent_once()["batches"] == 1


def test_the_sweep_runs_at_every_look_of_the_scheduler(site):
    """django-q2 repeats a schedule at most once a minute; the sweep makes itself due again so
    that it runs at every look of the scheduler (about every 30 s), which the 60 s above rely on."""
    s = site(**DEFAULT_TIMERS)
    s.start_worker()
    created = "from schedule [curation: wake jobs whose lease lapsed]"

    def seen(n: int, within: float) -> float:
        deadline = time.monotonic() + within
        while s.worker_logs().count(created) < n:
            assert time.monotonic() < deadline, s.worker_logs()[-3000:]
            time.sleep(0.2)
        return time.monotonic()

    first = seen(1, 90)
    gap = seen(2, 60) - first
    print(f"the sweep ran again {gap:.1f}s after its first run")
    assert gap < 45  # once a minute would be 60 s or more

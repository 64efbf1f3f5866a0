"""The database connection dropped under a running job (PostgreSQL: every backend terminated)
and the Redis broker restarted mid-job: the job recovers, or says why and is resumed."""

import os
import signal
import socket
import subprocess
import time

import pytest

from tests.faults.site import postgres_url
from tests.faults.test_worker_killed import FIELDS, N, finish

pytestmark = pytest.mark.slow


def terminate_backends(s) -> int:
    """Cut every connection to the site's database but our own, as a failover or restart would."""
    rows = s.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return len(rows)


@pytest.mark.skipif(not postgres_url(), reason="needs DATABASE_URL pointing at PostgreSQL")
@pytest.mark.parametrize("phase", ["polling", "realtime"])
def test_database_connections_dropped_mid_job(site, phase):
    s = site()
    if phase == "polling":
        s.emulator.configure(latency=0.1, batch_seconds=3)
        job_id = s.make_job(N, fields=FIELDS, mode="batch")
        moment = "SELECT COUNT(*) FROM curation_batch WHERE state='in_progress'"
    else:
        s.emulator.configure(latency=0.4)
        job_id = s.make_job(8, fields=FIELDS, mode="sync")
        moment = "SELECT COUNT(*) FROM curation_item WHERE state='succeeded'"
    s.start_worker()
    s.wait_for(moment, timeout=60, what=phase)
    time.sleep(0.2)
    assert terminate_backends(s) >= 1
    finish(s, job_id, n=N if phase == "polling" else 8, timeout=90)
    s.check_sent_once(allow_resend=set(dict(s.query(
        "SELECT n.path, i.attempts FROM curation_item i JOIN ingest_note n ON n.id=i.note_id "
        "WHERE i.attempts > 1"
    ))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, workdir) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("redis-server did not start")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the Redis broker)")
def test_redis_restarted_mid_job(site, tmp_path):
    """A private redis-server (not the shared one) killed and started empty while a batch runs:
    the same qcluster finishes the job."""
    port = free_port()
    redis = start_redis(port, tmp_path)
    try:
        s = site(REDIS_URL=f"redis://127.0.0.1:{port}/0")
        s.emulator.configure(latency=0.1, batch_seconds=4)
        job_id = s.make_job(N, fields=FIELDS, mode="batch")
        s.start_worker()
        s.wait_for("SELECT COUNT(*) FROM curation_batch WHERE state='in_progress'", timeout=60)
        os.killpg(redis.pid, signal.SIGKILL)
        redis.wait(timeout=10)
        time.sleep(1.0)
        redis = start_redis(port, tmp_path)  # empty: every queued task is gone
        # Recovered in place, no restart: a task lost with the queue leaves the job's lease to
        # lapse, and the sweep (its Schedule lives in the database) queues the job again.
        state = s.wait_final(job_id, timeout=90)
        assert state == "succeeded", s.worker_logs()[-5000:]
        finish(s, job_id)
        s.check_sent_once()
    finally:
        os.killpg(redis.pid, signal.SIGKILL)
        redis.wait(timeout=10)

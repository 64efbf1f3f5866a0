"""A real `manage.py qcluster` carries a queued job to its end (ORM broker; Redis when set).

Everything the workers see goes through separate processes and a database they can open:
a temporary SQLite file, or on PostgreSQL the test database itself (transaction=True, so
the rows are committed and visible to the other processes).
"""

import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]


def database_url(tmp_path) -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{tmp_path / 'qcluster.sqlite3'}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def cluster_env(tmp_path, emulator):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(tmp_path),
        "ANTHROPIC_BASE_URL": emulator.url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CURATION_POLL_SECONDS": "1",
        "VAULTCMS_Q_NAME": f"vaultcms-test-{uuid.uuid4().hex[:8]}",
        "VAULTCMS_CACHE_PREFIX": f"vaultcms-test-{uuid.uuid4().hex[:8]}",
        "VAULTCMS_WORKERS": "1",
        "VAULTCMS_Q_SYNC": "0",
        "PYTHONIOENCODING": "utf-8",
    }
    return env


def manage(env, *args, timeout=120):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


@contextmanager
def running_qcluster(env, log_path):
    """A `manage.py qcluster` in its own process group, stopped (TERM, then KILL) on exit."""
    with open(log_path, "w") as log:
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield cluster
        finally:
            os.killpg(cluster.pid, signal.SIGTERM)
            try:
                cluster.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(cluster.pid, signal.SIGKILL)
                cluster.wait(timeout=5)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_a_real_qcluster_runs_a_job_to_the_end(broker, cluster_env, emulator, make_vault, tmp_path):
    env = dict(cluster_env)
    if broker == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("REDIS_URL is not set: the Redis broker runs in the PostgreSQL+Redis suite")
    else:
        env.pop("REDIS_URL", None)
    emulator.configure(batch_seconds=1)
    root = make_vault(
        {f"topic {i}.md": f"# Topic {i}\n\nThe qcluster{i}word note body.\n" for i in range(3)}
    )
    assert manage(env, "migrate", "--noinput").returncode == 0
    imported = manage(env, "import_vault", str(root), "--name", f"qc-{broker}")
    assert imported.returncode == 0, imported.stderr
    queued = manage(env, "curate", "--vault", f"qc-{broker}", "--fields", "tags,description")
    assert queued.returncode == 0, queued.stderr
    last = queued.stdout.strip().splitlines()[-1]
    assert last.startswith("job ") and last.endswith(" queued")
    job_id = last.split()[1]

    with running_qcluster(env, tmp_path / "qcluster.log"):
        waited = manage(env, "jobs", job_id, "--wait", "--timeout", "90", "--interval", "0.5")
        output = (tmp_path / "qcluster.log").read_text(errors="replace")
        assert waited.returncode == 0, waited.stdout + waited.stderr + output[-3000:]
        assert f"job {job_id}  succeeded  batch  succeeded 3" in waited.stdout
        stats = emulator.stats()
        assert stats["batches"] == 1 and stats["batch_requests"] == 3

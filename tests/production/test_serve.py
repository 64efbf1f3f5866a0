"""`make serve` (scripts/serve.sh): refuses an unsafe config; runs the Procfile's web and workers."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.production.test_gunicorn import fetch, free_port, production_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_refuses_debug_off_without_secret_key(tmp_path):
    env = production_env(tmp_path)
    env.pop("VAULTCMS_SECRET_KEY")
    result = subprocess.run(
        ["bash", "scripts/serve.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "serve: refusing to start: VAULTCMS_DEBUG is off and VAULTCMS_SECRET_KEY is not set"
    ]


def test_procfile_names_web_and_worker():
    processes = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    assert set(processes) == {"web", "worker"}
    assert "gunicorn vaultcms.wsgi" in processes["web"]
    assert processes["worker"].strip() == "python manage.py qcluster"


def test_serve_starts_web_and_two_qclusters(tmp_path):
    port = free_port()
    env = production_env(
        tmp_path, PORT=str(port), VAULTCMS_QCLUSTERS="2", VAULTCMS_WORKERS="1",
        VAULTCMS_STATIC_ROOT=str(tmp_path / "static"),
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["bash", "scripts/serve.sh"], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _, body = fetch(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serve did not come up:\n{log_path.read_text()}")
                time.sleep(0.3)
        assert (status, body) == (200, b'{"status": "ok"}')
        status, _, _ = fetch(
            f"http://127.0.0.1:{port}/static/admin/js/core.js",
            headers={"X-Forwarded-Proto": "https"},
        )
        assert status == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = log_path.read_text()
            if "worker.1 started" in text and "worker.2 started" in text:
                break
            time.sleep(0.3)
        assert "worker.1 started" in text and "worker.2 started" in text
        assert "web.1 started" in text
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

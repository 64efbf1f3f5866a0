"""The production web process: gunicorn with DEBUG off serves /healthz and admin static files."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def fetch(url: str, *, headers: dict | None = None, timeout: float = 5.0):
    """(status, headers, body) without following redirects."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def production_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTCMS_")}
    env.pop("DATABASE_URL", None)  # a throwaway SQLite file: the page needs no data
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite3'}",
        VAULTCMS_DEBUG="0",
        VAULTCMS_SECRET_KEY="test-only-" + "k" * 50,
        VAULTCMS_ALLOWED_HOSTS="127.0.0.1,localhost",
        VAULTCMS_WEB_WORKERS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def gunicorn_server(tmp_path):
    port = free_port()
    static_root = tmp_path / "static"
    env = production_env(tmp_path, PORT=str(port), VAULTCMS_STATIC_ROOT=str(static_root))
    for command in (["collectstatic", "--noinput", "-v", "0"], ["migrate", "--noinput", "-v", "0"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=120
        )
    log = (tmp_path / "gunicorn.log").open("w+")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "vaultcms.wsgi:application",
         "--config", "python:vaultcms.gunicorn_conf"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            fetch(base + "/healthz", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.seek(0)
                pytest.fail(f"gunicorn did not start:\n{log.read()}")
            time.sleep(0.2)
    yield base, log
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    log.close()


def test_healthz_and_admin_static_with_debug_off(gunicorn_server):
    base, log = gunicorn_server
    status, headers, body = fetch(base + "/healthz")
    assert status == 200
    assert body == b'{"status": "ok"}'
    assert headers["Cache-Control"] == "no-store"

    # Behind the TLS proxy (SECURE_SSL_REDIRECT is on when DEBUG is off).
    https = {"X-Forwarded-Proto": "https"}
    status, headers, body = fetch(base + "/static/admin/css/base.css", headers=https)
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert b"body" in body
    # A missing static file falls through to the app, which asks an anonymous visitor to log in.
    status, headers, body = fetch(base + "/static/admin/css/does-not-exist.css", headers=https)
    assert status == 302
    assert b"Traceback" not in body

    # Plain http to the app is sent to https; the health check (above) is exempt.
    status, headers, _ = fetch(base + "/login/")
    assert status == 301
    assert headers["Location"].startswith("https://")
    log.flush()
    log.seek(0)
    lines = log.read().splitlines()
    assert any('"GET /healthz" 200' in line for line in lines)


def test_login_page_and_404_with_debug_off(gunicorn_server):
    base, _ = gunicorn_server
    https = {"X-Forwarded-Proto": "https"}
    status, headers, body = fetch(base + "/login/", headers=https)
    assert status == 200
    assert b"csrfmiddlewaretoken" in body
    assert headers.get("X-Frame-Options") == "DENY"
    assert "Strict-Transport-Security" in headers
    # The admin's catch-all sends an anonymous visitor to log in, never a stack trace.
    status, headers, body = fetch(base + "/no/such/page/", headers=https)
    assert status == 302
    assert "/login/" in headers["Location"]
    assert b"Traceback" not in body and b"SECRET_KEY" not in body

"""The login throttle against a live gunicorn: simultaneous attempts and look-alike usernames.

Real threads post to two gunicorn worker processes (threaded) with the production password
hasher, so the attempts overlap the way an attacker's do: the count must be taken before the
password is checked, and both processes must share it (the database cache, or Redis when
REDIS_URL is set).
"""

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSWORD = "right-password-123"
ATTEMPTS = 5  # the default VAULTCMS_LOGIN_ATTEMPTS

pytestmark = pytest.mark.slow


def server_env(tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTCMS_")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'throttle.sqlite3'}",
        VAULTCMS_DEBUG="0",
        VAULTCMS_SECRET_KEY="test-only-" + "k" * 50,
        VAULTCMS_ALLOWED_HOSTS="127.0.0.1",
        VAULTCMS_SSL_REDIRECT="0",
        VAULTCMS_SECURE_COOKIES="0",
        VAULTCMS_STATIC_ROOT=str(tmp / "static"),
        # Counters of this server only, even on a Redis other test runs share.
        VAULTCMS_CACHE_PREFIX=f"throttle-test-{uuid.uuid4().hex[:8]}",
        VAULTCMS_WEB_WORKERS="2",
        VAULTCMS_WEB_THREADS="8",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(host, port, usernames) of a gunicorn on a socket this test bound to port 0."""
    tmp = tmp_path_factory.mktemp("throttle")
    env = server_env(tmp)
    users = {"victim": f"victim{uuid.uuid4().hex[:6]}", "other": f"other{uuid.uuid4().hex[:6]}"}
    manage = [sys.executable, "manage.py"]
    for command in (["collectstatic", "--noinput", "-v", "0"], ["migrate", "--noinput", "-v", "0"]):
        subprocess.run([*manage, *command], cwd=ROOT, env=env, check=True, timeout=180)
    for name in users.values():
        subprocess.run(
            [*manage, "createsuperuser", "--noinput", "--username", name, "--email", ""],
            cwd=ROOT, env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}, check=True,
            timeout=60,
        )  # fmt: skip
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    log = (tmp / "gunicorn.log").open("w+")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "vaultcms.wsgi:application",
         "--config", "python:vaultcms.gunicorn_conf"],
        cwd=ROOT, env={**env, "VAULTCMS_BIND": f"fd://{sock.fileno()}"},
        pass_fds=[sock.fileno()], stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    sock.close()
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.seek(0)
            pytest.fail(f"gunicorn did not start:\n{log.read()}")
        time.sleep(0.2)
    yield "127.0.0.1", port, users
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    log.close()


class LoginPage:
    """A CSRF cookie and token from one GET of the login page, reusable for many POSTs."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/login/")
        response = conn.getresponse()
        html = response.read().decode()
        self.cookie = response.getheader("Set-Cookie").split(";")[0]
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    def post(self, username: str, password: str) -> int:
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": self.token, "username": username, "password": password,
             "next": "/"}
        )  # fmt: skip
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        conn.request(
            "POST", "/login/", body,
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie},
        )  # fmt: skip
        status = conn.getresponse().status
        conn.close()
        return status


def test_simultaneous_wrong_passwords_are_throttled_before_the_check(server):
    host, port, users = server
    page = LoginPage(host, port)
    n = 16
    start = threading.Barrier(n)
    statuses: list[int] = []

    def attempt():
        start.wait()
        statuses.append(page.post(users["victim"], "wrong"))

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(statuses) == n
    checked = [s for s in statuses if s != 429]
    # Only the first ATTEMPTS reached the password check; every other one was refused.
    assert len(checked) == ATTEMPTS, sorted(statuses)
    assert set(checked) == {200}
    # The right password is refused too, now, whichever process answers.
    assert {page.post(users["victim"], PASSWORD) for _ in range(4)} == {429}


def test_look_alike_username_shares_the_allowance(server):
    host, port, users = server
    page = LoginPage(host, port)
    name = users["other"]
    # NFKC turns full-width letters into ASCII: Django's login form resolves this to `name`.
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in name)
    for _ in range(ATTEMPTS):
        assert page.post(name, "wrong") == 200
    assert page.post(full_width, PASSWORD) == 429
    assert page.post(f"  {name.upper()} ", PASSWORD) == 429

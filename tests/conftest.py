"""Shared fixtures: django-q2 runs tasks inline in unit tests; vaults are built in tmp folders."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def index_dir(settings, tmp_path_factory):
    """Each test keeps its vaults' related-notes indexes apart (tests make notes whose content
    hash is made up, which the kept index is looked up by)."""
    settings.CURATION_INDEX_DIR = str(tmp_path_factory.mktemp("index"))
    return settings.CURATION_INDEX_DIR


@pytest.fixture(autouse=True)
def q_sync(monkeypatch):
    """Run enqueued tasks in-process (the integration tests start a real qcluster instead)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def make_vault(tmp_path):
    """Write {relative path: text or bytes} into a fresh vault folder and return its root."""

    def build(files: dict[str, str | bytes], root: Path | None = None) -> Path:
        root = root or tmp_path / "vault"
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                content = content.encode("utf-8")
            path.write_bytes(content)
        return root

    return build


@pytest.fixture
def emulator(monkeypatch):
    """An in-process Anthropic API emulator on a free port; the client layer talks to it.

    Yields `curation.emulator.Emulator`: `.configure(latency=, batch_seconds=, fault_429=, ...,
    rpm=, rate_window=)` at runtime, `.stats()` for counters, `.reset()`, `.url`. Starts fast:
    no latency, batches end at once, injected faults ask for a 10 ms retry-after.
    """
    from curation.api import client
    from curation.emulator import Emulator

    emu = Emulator(
        host="127.0.0.1", port=0, latency=0, batch_seconds=0, cancel_seconds=0, retry_after=0.01
    ).start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-emulator")
    client.reset_clients()
    try:
        yield emu
    finally:
        client.reset_clients()
        emu.stop()


@pytest.fixture
def web_server():
    """A local HTTP server; set its routes with .page(), .raw(), .redirect()."""
    from tests.webserver import WebServer

    server = WebServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)

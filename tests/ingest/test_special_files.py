"""Files that are not regular files (a FIFO named x.md) are skipped, and reading never blocks.

A FIFO opened for reading waits for a writer for ever; each door that imports (the command,
the admin's "Re-import") must finish in bounded time and report the file instead.
"""

import contextlib
import os
import signal
import time
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from curation import operations
from curation.models import Operation
from ingest import notes
from ingest.importer import vault_import
from ingest.models import Note, Vault

pytestmark = pytest.mark.django_db

GOOD = "---\ntitle: Good\n---\nBody.\n"


class Blocked(BaseException):
    """Raised by the alarm: not an OSError, so no `except OSError` can swallow it."""


@contextlib.contextmanager
def bounded(seconds: int = 5):
    """Fail the test (instead of hanging it) when the block takes longer than `seconds`."""

    def expire(signum, frame):
        raise Blocked(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - started < seconds


@pytest.fixture
def fifo_vault(make_vault):
    root = make_vault({"good.md": GOOD})
    os.mkfifo(root / "x.md")
    return root


def test_read_file_refuses_a_fifo_without_blocking(fifo_vault):
    with bounded():
        result = notes.read_file(
            str(fifo_vault / "x.md"), rel="x.md", max_bytes=1000, known_digest=None
        )
    assert result.kind == "bad"
    assert result.reason == "not a regular file (a named pipe)"


def test_import_command_skips_a_fifo(fifo_vault):
    out = StringIO()
    with bounded():
        call_command("import_vault", str(fifo_vault), stdout=out)
    assert "skipped x.md: not a regular file (a named pipe)" in out.getvalue()
    assert Note.objects.get(path="good.md").state == Note.State.OK
    assert Note.objects.get(path="x.md").state == Note.State.SKIPPED


def test_admin_reimport_skips_a_fifo(fifo_vault, client):
    vault = Vault.objects.create(name="pipes", root=str(fifo_vault))
    client.force_login(User.objects.create_superuser("boss", password="x"))
    with bounded():
        response = client.post(
            reverse("admin:ingest_vault_changelist"),
            {"action": "reimport_vaults", "_selected_action": [vault.pk]},
            follow=True,
        )
    assert response.status_code == 200
    op = Operation.objects.get(kind="import")  # the re-import runs on a worker: run it here
    with bounded():
        operations.operation_run(operation_id=op.id)
    page = client.get(reverse("curation:operation", args=[op.id])).content.decode()
    assert "pipes" in page and "Re-import" in page
    assert Note.objects.get(path="x.md").reason == "not a regular file (a named pipe)"


def test_a_file_replaced_by_a_fifo_after_the_walk_does_not_block(make_vault, monkeypatch):
    """stat() saw a regular file; by the time it is opened it is a FIFO (the race)."""
    root = make_vault({"good.md": GOOD, "x.md": GOOD})
    real_stat = os.stat

    def stat_then_swap(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if str(path).endswith("x.md") and not os.path.exists(f"{root}/swapped"):
            os.unlink(path)
            os.mkfifo(path)
            (root / "swapped").touch()
        return result

    monkeypatch.setattr("ingest.importer.os.stat", stat_then_swap)
    with bounded():
        _, summary = vault_import(root=root)
    assert ("x.md", "not a regular file (a named pipe)") in summary.skipped


def test_a_folder_named_like_a_note_is_not_read(make_vault):
    root = make_vault({"good.md": GOOD})
    (root / "folder.md").mkdir()
    with bounded():
        _, summary = vault_import(root=root)
    assert summary.imported == 1 and not summary.skipped

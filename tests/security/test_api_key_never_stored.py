"""The API key never reaches the database, a log line, an admin page or an item's error text.

Runs real jobs (sync and batch, with API faults and an unreachable server) through the real
client against the emulator with a unique key, then greps a full `dumpdata`, every row's
values, the console log (at DEBUG, SDK and HTTP loggers included) and every admin page.
"""

import io
import logging
import uuid

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client

from curation.api import client as api_client
from curation.engine import jobs
from curation.models import Item, Job
from tests.security.crawl import all_urls

pytestmark = pytest.mark.django_db

KEY = f"sk-ant-api03-NEVERSTORE-{uuid.uuid4().hex}"


@pytest.fixture
def keyed(emulator, monkeypatch, settings):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    api_client.reset_clients()
    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield emulator
    api_client.reset_clients()


@pytest.fixture
def console():
    """The configured console handler at DEBUG for every logger, into a buffer."""
    root = logging.getLogger()
    handler = next(h for h in root.handlers if type(h).__name__ == "SafeStreamHandler")
    buffer = io.StringIO()
    old_stream = handler.setStream(buffer)
    names = ["", "anthropic", "httpx", "httpcore", "curation", "django", "django-q", "ingest"]
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    yield buffer
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)
    handler.setStream(old_stream)


def make_notes(n: int) -> list:
    from ingest.models import Note, Vault

    vault = Vault.objects.create(name="keyed", root="/tmp/keyed-vault")
    return [
        Note.objects.create(
            vault=vault, path=f"topic {i}.md", title=f"Topic {i}",
            body=f"Notes on gardening variant {i}: compost, seedlings and watering.\n",
            size=60,
        )
        for i in range(n)
    ]


def run(note_ids, **kwargs):
    job = jobs.job_create(notes=note_ids, **kwargs)
    jobs.job_run(job_id=job.id, sleep=lambda s: None, budget=60)
    return Job.objects.get(id=job.id)


def every_value_in_the_database() -> str:
    """repr of every field of every row: pickled and binary columns are read as Python values."""
    chunks = []
    for model in apps.get_models():
        for row in model._default_manager.all().iterator():
            chunks.extend(repr(getattr(row, f.attname)) for f in model._meta.concrete_fields)
    return "\n".join(chunks)


def test_key_is_nowhere_after_real_jobs(keyed, console, tmp_path, monkeypatch,
                                        django_user_model):
    notes = make_notes(6)
    ids = [n.id for n in notes]
    # Batch mode with errored and expired items, then sync with 429/529/500 answers.
    keyed.configure(fault_errored=0.3, fault_expired=0.2)
    batch_job = run(ids[:4], fields=["tags", "description", "related"])
    keyed.configure(fault_errored=0, fault_expired=0, fault_429=0.5, fault_500=0.5)
    sync_job = run(ids[4:5], fields=["tags", "description"], mode="sync")
    assert batch_job.mode == "batch" and sync_job.mode == "sync"
    assert keyed.stats()["requests"] > 0
    # A server that is not there: transport errors end in items' error text.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    api_client.reset_clients()
    dead_job = run(ids[5:6], fields=["description"], mode="sync")
    assert Item.objects.filter(job=dead_job).exclude(error="").exists()

    dump = tmp_path / "dump.json"
    call_command("dumpdata", output=str(dump), verbosity=0)
    assert dump.stat().st_size > 1000
    assert KEY not in dump.read_text(encoding="utf-8")
    assert KEY not in every_value_in_the_database()

    admin = django_user_model.objects.create_superuser("key-admin", password="x")
    browser = Client(raise_request_exception=False)
    browser.force_login(admin)
    pages = 0
    for url in all_urls():
        if url.name == "admin:logout":
            continue
        response = browser.get(url.path)
        pages += response.status_code == 200
        assert KEY not in response.content.decode("utf-8", "replace"), url.path
    assert pages > 10

    log = console.getvalue()
    assert "job=" in log  # the run did log
    assert KEY not in log


def test_client_errors_never_carry_the_key(keyed, monkeypatch):
    """The client's own exception text, for the failures most likely to echo a header."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    api_client.reset_clients()
    with pytest.raises(api_client.ApiError) as caught:
        api_client.get_batch("msgbatch_nothing")
    assert KEY not in str(caught.value) and KEY not in repr(caught.value.args)

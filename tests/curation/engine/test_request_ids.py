"""Per-item errors keep the API's request-id (the id its support asks for): a refused real-time
call (sync and parallel, the `request-id` header of the answer) and an errored batch result
(its `request_id`), through the real SDK over HTTP against the emulator."""

import re

import pytest

from curation.emulator import server
from curation.engine import jobs
from curation.models import Item, Job

pytestmark = pytest.mark.django_db

FIELDS = ["tags", "description"]
REQUEST_ID = re.compile(r"\(request-id (req_\S+)\)")


@pytest.fixture
def sent_ids(monkeypatch):
    """The request ids the emulator sent: `request-id` headers of error answers, and every id
    it made (an errored batch result carries one in its body)."""
    seen = {"headers": [], "made": []}
    send, next_id = server.EmulatorHandler._send, server.Emulator._next_id

    def recording_send(self, status, payload, headers=None):
        if status >= 400 and headers and "request-id" in headers:
            seen["headers"].append(headers["request-id"])
        return send(self, status, payload, headers)

    def recording_next_id(self, prefix):
        made = next_id(self, prefix)
        if prefix == "req_emu_":
            seen["made"].append(made)
        return made

    monkeypatch.setattr(server.EmulatorHandler, "_send", recording_send)
    monkeypatch.setattr(server.Emulator, "_next_id", recording_next_id)
    return seen


def run(make_notes, n, *, mode):
    notes = make_notes(n)
    job = jobs.job_create(notes=[note.id for note in notes], fields=FIELDS, mode=mode)
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    job.refresh_from_db()
    return job


def item_request_ids(job) -> list[str]:
    ids = []
    for item in Item.objects.filter(job=job):
        found = REQUEST_ID.search(item.error)
        assert found, item.error
        ids.append(found.group(1))
    return ids


@pytest.mark.parametrize("mode", ["sync", "parallel"])
def test_a_failed_real_time_call_keeps_its_request_id(
    emulator, make_notes, fast_polls, settings, sent_ids, mode
):
    settings.CURATION_MAX_ATTEMPTS = 1
    settings.CURATION_SDK_MAX_RETRIES = 0  # sync: the SDK would retry a 500 itself
    settings.CURATION_PARALLEL_RETRIES = 0
    emulator.configure(fault_500=1.0, fault_attempts=0)
    job = run(make_notes, 3, mode=mode)
    assert job.state == Job.State.FAILED
    ids = item_request_ids(job)
    for item in Item.objects.filter(job=job):
        assert item.state == Item.State.FAILED and "HTTP 500 api_error" in item.error
    assert len(set(ids)) == 3  # one call each, each with its own id
    assert set(ids) <= set(sent_ids["headers"])  # as the emulator's `request-id` header said


def test_an_errored_batch_result_keeps_its_request_id(
    emulator, make_notes, fast_polls, settings, sent_ids
):
    settings.CURATION_MAX_ATTEMPTS = 1
    emulator.configure(fault_errored=1.0, fault_attempts=0)
    job = run(make_notes, 3, mode="batch")
    assert job.state == Job.State.FAILED
    ids = item_request_ids(job)
    for item in Item.objects.filter(job=job):
        assert item.state == Item.State.FAILED and item.error.startswith("api_error: ")
    assert len(set(ids)) == 3 and set(ids) <= set(sent_ids["made"])
    assert not sent_ids["headers"]  # no call failed: the ids came with the results


def test_a_fatal_batch_result_puts_its_request_id_on_the_job(
    emulator, make_notes, fast_polls, settings, sent_ids
):
    settings.CURATION_MODEL = "claude-nonexistent-9"
    settings.CURATION_PRICES = {"claude-nonexistent-9": {"input": 1, "output": 5}}
    job = run(make_notes, 2, mode="batch")
    assert job.state == Job.State.FAILED and "model: claude-nonexistent-9" in job.error
    assert job.request_id in sent_ids["made"]
    assert "(request-id" not in job.error  # kept apart, as for a refused call

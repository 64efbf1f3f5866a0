"""The API refusing calls, with real workers (`qcluster`) and the operator's doors: refused batch
creates are waited out without using attempts; a refused key ends the job within a minute."""

import time

import pytest

from tests.faults.test_worker_killed import FIELDS

pytestmark = pytest.mark.slow

N = 150  # two batches at the shipped CURATION_BATCH_SIZE (100)


def test_ten_refused_creates_then_every_item_succeeds(site):
    s = site()
    s.emulator.configure(script=[
        {"endpoint": "batch_create", "status": status, "times": 1,
         "retry_after": 1 if status == 429 else None}
        for status in [429, 529] * 5
    ])
    job_id = s.make_job(N, fields=FIELDS, mode="batch")
    s.start_worker()
    result = s.wait_job(job_id, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr + s.worker_logs()[-6000:]
    assert s.item_states(job_id) == {"succeeded": N}
    assert s.query("SELECT DISTINCT attempts FROM curation_item WHERE job_id=%s", job_id) == [(1,)]
    stats = s.emulator.stats()
    assert stats["scripted"] == {"batch_create": 10}
    assert stats["batches"] == 2 and stats["batch_requests"] == N  # each request sent once
    s.check_every_note_has_its_own_suggestions(job_id, fields=FIELDS)


def test_a_refused_key_ends_the_job_within_a_minute(site):
    s = site()
    s.emulator.configure(api_key="sk-ant-another-key")  # the site's key is now refused
    s.make_vault(20)
    job_id = s.curate("--fields", ",".join(FIELDS), "--mode", "batch")
    s.start_worker()
    started = time.monotonic()
    result = s.wait_job(job_id, timeout=60)
    elapsed = time.monotonic() - started
    out = result.stdout + result.stderr
    assert result.returncode == 1, out + s.worker_logs()[-4000:]
    assert elapsed < 60
    assert "refused the key" in out and "ANTHROPIC_API_KEY" in out and "request-id req_" in out
    assert "sk-ant-fault-suite" not in out
    assert s.item_states(job_id) == {"failed": 20}
    assert s.query("SELECT COUNT(*) FROM curation_batch WHERE job_id=%s AND state "
                   "NOT IN ('failed')", job_id) == [(0,)]
    error, request_id = s.query("SELECT error, request_id FROM curation_job WHERE id=%s",
                                job_id)[0]
    assert "authentication_error" in error and "sk-ant-fault-suite" not in error
    assert request_id.startswith("req_")

"""The API answering errored/expired items and 429/529/500: every item ends succeeded within
CURATION_MAX_ATTEMPTS or failed with its reason, and "Retry failed items" finishes them."""

import pytest

from tests.faults.test_worker_killed import FIELDS, finish

pytestmark = pytest.mark.slow

N = 20


def resent_notes(s) -> dict[str, int]:
    return dict(s.query(
        "SELECT n.path, i.attempts FROM curation_item i JOIN ingest_note n ON n.id=i.note_id "
        "WHERE i.attempts > 1"
    ))


def test_realtime_429_529_500_are_retried_within_max_attempts(site):
    s = site(CURATION_MAX_ATTEMPTS=3)
    s.emulator.configure(fault_429=0.15, fault_529=0.15, fault_500=0.15, fault_attempts=1,
                         latency=0.02)
    job_id = s.make_job(N, fields=FIELDS, mode="sync")
    s.start_worker()
    finish(s, job_id, n=N)
    stats = s.emulator.stats()
    assert stats["status_429"] and stats["status_529"] and stats["status_500"]
    again = resent_notes(s)
    assert again and set(again.values()) == {2}  # one fault, one retry, no more
    s.check_sent_once(allow_resend=set(again))
    assert all(stats["notes"][path] == 2 for path in again)


def test_batch_errored_and_expired_fail_with_reason_then_retry_finishes(site):
    s = site(CURATION_MAX_ATTEMPTS=2)
    # Faulty notes fail on every attempt until the API recovers.
    s.emulator.configure(fault_errored=0.1, fault_expired=0.1, fault_attempts=0,
                         batch_seconds=0.3, latency=0.02)
    job_id = s.make_job(N, fields=FIELDS, mode="batch")
    s.start_worker()
    assert s.wait_final(job_id, timeout=90) == "failed"
    states = s.item_states(job_id)
    failed = s.query(
        "SELECT n.path, i.attempts, i.error FROM curation_item i JOIN ingest_note n "
        "ON n.id=i.note_id WHERE i.job_id=%s AND i.state='failed'", job_id
    )
    assert failed and states == {"succeeded": N - len(failed), "failed": len(failed)}
    for path, attempts, error in failed:
        assert attempts == 2, path
        assert ("errored" in error or "expired" in error or "error" in error.lower()), error
        if error.startswith("api_error:"):  # an errored result names the request the API ran
            assert "(request-id req_" in error, error
    assert s.query(
        "SELECT COUNT(*) FROM curation_suggestion s JOIN curation_item i ON i.id=s.item_id "
        "WHERE i.state='failed'"
    )[0][0] == 0

    s.emulator.configure(fault_errored=0, fault_expired=0)
    assert s.retry_failed(job_id) == len(failed)
    finish(s, job_id, n=N)
    stats = s.emulator.stats()
    again = {path for path, *_ in failed}
    assert all(stats["notes"][path] == 3 for path in again)  # two failures, then the retry
    s.check_sent_once(allow_resend=again)

"""The engine against the API's refusals (the emulator's refusals.py): transient ones are waited
out and never use an item's attempt; fatal ones end the job at once with the reason and the
API's request-id; an unanswered create is adopted only when its results are certainly ours."""

import time
from io import StringIO

import anthropic
import pytest
from django.core.management import CommandError, call_command

from curation.engine import batch as batch_mode
from curation.engine import jobs
from curation.models import Batch, Item, Job, Suggestion

pytestmark = pytest.mark.django_db

FIELDS = ["tags", "description"]
KEY = "sk-ant-test-emulator"  # the key the `emulator` fixture puts in the environment


def create(make_notes, n, **kwargs):
    notes = make_notes(n)
    kwargs.setdefault("fields", FIELDS)
    return jobs.job_create(notes=[note.id for note in notes], **kwargs)


def run(job):
    assert jobs.job_run(job_id=job.id) is True
    job.refresh_from_db()
    return job


def attempts(job) -> set[int]:
    return set(Item.objects.filter(job=job).values_list("attempts", flat=True))


def refuse(endpoint, *statuses, retry_after=None, only_429=True):
    return [{"endpoint": endpoint, "status": s, "times": 1,
             "retry_after": retry_after if s == 429 or not only_429 else None}
            for s in statuses]


# --- transient refusals: waited out, no attempt used ---------------------------------------


def test_ten_refused_creates_with_the_shipped_timers(emulator, make_notes, settings):
    """429 (retry-after: 1 s) and 529 (no retry-after) alternating, 10 creates in a row."""
    assert settings.CURATION_POLL_SECONDS == 30 and settings.CURATION_MAX_ATTEMPTS == 3
    assert settings.CURATION_BATCH_SIZE == 100 and settings.CURATION_POLL_MIN_SECONDS == 2
    emulator.configure(script=refuse("batch_create", *[429, 529] * 5, retry_after=1))
    job = create(make_notes, 150, mode="batch")
    started = time.monotonic()
    job = run(job)
    elapsed = time.monotonic() - started
    assert job.state == Job.State.SUCCEEDED
    assert set(job.items.values_list("state", flat=True)) == {Item.State.SUCCEEDED}
    assert attempts(job) == {1}  # ten refusals, none of them an item's attempt
    stats = emulator.stats()
    assert stats["scripted"] == {"batch_create": 10}
    assert stats["batches"] == 2 and stats["batch_requests"] == 150  # each sent once
    assert elapsed >= 5  # five retry-after: 1 s honoured (and the 529s backed off)
    assert Suggestion.objects.filter(job=job).count() == 300


def test_refused_creates_of_every_kind(emulator, make_notes, fast_polls, settings, monkeypatch):
    """429, 529, 500 (maybe made: looked for first), a dropped connection, a timeout."""
    settings.CURATION_TIMEOUT_SECONDS = 0.5
    monkeypatch.setattr(batch_mode, "UNANSWERED_WAIT", 0.5)  # (the default: next tests)
    emulator.configure(script=[
        *refuse("batch_create", "drop"),
        {"endpoint": "batch_create", "status": 529, "delay": 1.0},  # held past the timeout
        *refuse("batch_create", 429, 529, 500, retry_after=0.2, only_429=False),
    ])
    job = run(create(make_notes, 12, mode="batch"))
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}
    stats = emulator.stats()
    assert stats["scripted"] == {"batch_create": 5} and stats["batches"] == 1
    (only,) = Batch.objects.filter(job=job)
    assert only.state == Batch.State.APPLIED and not only.adopted


def test_refused_polls_results_and_lists_are_waited_out(emulator, make_notes, fast_polls):
    emulator.configure(batch_seconds=0.2, script=[
        *refuse("batch_retrieve", 429, 429, 429, 529, 500, "drop", retry_after=0.3),
        *refuse("batch_results", 529, 500, "drop", 429, retry_after=0.3),
    ])
    job = run(create(make_notes, 8, mode="batch"))
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}
    stats = emulator.stats()["scripted"]
    assert stats["batch_retrieve"] == 6 and stats["batch_results"] == 4


def test_refused_lists_while_looking_for_an_unanswered_create(
    emulator, make_notes, fast_polls, monkeypatch
):
    monkeypatch.setattr(batch_mode, "UNANSWERED_WAIT", 0.2)
    emulator.configure(script=[
        *refuse("batch_create", "drop"),
        *refuse("batch_list", 529, 429, 500, retry_after=0.2, only_429=False),
    ])
    job = run(create(make_notes, 5, mode="batch"))
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}
    assert emulator.stats()["scripted"] == {"batch_create": 1, "batch_list": 3}
    assert emulator.stats()["batches"] == 1


def test_the_batch_create_limit_is_waited_out(emulator, make_notes, fast_polls, settings):
    settings.CURATION_BATCH_SIZE = 4
    emulator.configure(batch_create_rpm=1, rate_window=1.0)
    job = run(create(make_notes, 10, mode="batch"))  # three creates, one a second allowed
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}
    stats = emulator.stats()
    assert stats["batches"] == 3 and stats["status_429"] >= 1


def test_the_output_token_limit_paces_parallel_mode(emulator, make_notes, fast_polls, settings):
    settings.CURATION_CONCURRENCY = 4
    emulator.configure(otpm=300, rate_window=1.0)  # a few answers a second
    job = create(make_notes, 10, mode="parallel")
    started = time.monotonic()
    job = run(job)
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}
    output = sum(item.usage["output_tokens"] for item in job.items.all())
    assert output > 300  # more than one window's worth...
    assert time.monotonic() - started >= 1.0  # ...so the run waited for the window to pass


def test_refused_cancels_are_asked_again(emulator, make_notes, fast_polls):
    emulator.configure(batch_seconds=30, cancel_seconds=0.05)
    job = create(make_notes, 4, mode="batch")
    jobs.job_step(job_id=job.id)
    emulator.configure(script=refuse("batch_cancel", 529, 529, 529, 529))  # past SDK retries
    jobs.job_cancel(job_id=job.id)
    assert Batch.objects.get(job=job).state == Batch.State.IN_PROGRESS  # refused: not canceling
    emulator.configure(script=[])
    jobs.job_run(job_id=job.id)
    assert Batch.objects.get(job=job).state == Batch.State.APPLIED
    assert emulator.stats()["batches_canceled"] == 1


def test_results_gone_after_the_retention_period_are_asked_for_again(
    emulator, make_notes, fast_polls
):
    emulator.configure(batch_seconds=0.3)
    job = create(make_notes, 5, mode="batch")
    jobs.job_step(job_id=job.id)  # submits
    time.sleep(0.35)  # the batch has ended...
    emulator.configure(retention_seconds=0)  # ...and its results are gone before we read them
    batch = Batch.objects.get(job=job)
    batch_mode.batch_poll(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.state == Batch.State.APPLIED and "no longer available" in batch.error
    assert attempts(job) == {0}  # sent again, the lost results used no attempt
    emulator.configure(retention_seconds=29 * 24 * 3600)
    job = run(job)
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}


def test_an_expired_batch_uses_an_attempt_and_the_retry_succeeds(
    emulator, make_notes, fast_polls
):
    emulator.configure(batch_seconds=5, expire_seconds=0.1)
    job = create(make_notes, 4, mode="batch")
    jobs.job_step(job_id=job.id)
    time.sleep(0.15)
    batch_mode.batch_poll(batch_id=Batch.objects.get(job=job).id)
    assert set(job.items.values_list("state", flat=True)) == {Item.State.EXPIRED}
    emulator.configure(batch_seconds=0, expire_seconds=24 * 3600)
    job = run(job)
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {2}  # the item's own result


# --- fatal refusals: the job ends at once, with the reason and the request-id ---------------


@pytest.mark.parametrize("mode", ["batch", "sync", "parallel"])
def test_a_refused_key_ends_the_job_at_once(emulator, make_notes, fast_polls, mode):
    emulator.configure(api_key="sk-ant-the-only-good-key")  # ours (KEY) is now refused
    job = create(make_notes, 6, mode=mode)
    started = time.monotonic()
    job = run(job)
    assert time.monotonic() - started < 10
    assert job.state == Job.State.FAILED
    assert "refused the key" in job.error and "ANTHROPIC_API_KEY" in job.error
    assert "authentication_error" in job.error and KEY not in job.error
    assert job.request_id.startswith("req_")
    for item in job.items.all():
        assert item.state == Item.State.FAILED and "refused the key" in item.error
        assert KEY not in item.error
    assert not Batch.objects.filter(job=job).exclude(state=Batch.State.FAILED).exists()

    out = StringIO()
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        call_command("jobs", str(job.id), "--wait", stdout=out)
    assert info.value.returncode == 1 and time.monotonic() - started < 5
    assert "refused the key" in str(info.value) and job.request_id in str(info.value)
    listing = StringIO()
    call_command("jobs", stdout=listing)
    assert job.request_id in listing.getvalue() and KEY not in listing.getvalue()


def test_no_permission_ends_the_job(emulator, make_notes, fast_polls):
    emulator.configure(permission_denied=True)
    job = run(create(make_notes, 3, mode="batch"))
    assert job.state == Job.State.FAILED and "permission_error" in job.error
    assert set(job.items.values_list("state", flat=True)) == {Item.State.FAILED}


@pytest.mark.parametrize("mode", ["batch", "sync"])
def test_an_unknown_model_ends_the_job(emulator, make_notes, fast_polls, settings, mode):
    settings.CURATION_MODEL = "claude-nonexistent-9"
    # Priced by the user (else the job is refused before anything is sent), unknown to the API.
    settings.CURATION_PRICES = {"claude-nonexistent-9": {"input": 1, "output": 5}}
    job = run(create(make_notes, 3, mode=mode))
    assert job.state == Job.State.FAILED
    assert "CURATION_MODEL" in job.error and "model: claude-nonexistent-9" in job.error
    assert max(attempts(job)) <= 1  # not sent again: no retry mends an unknown model
    for item in job.items.all():
        assert item.state == Item.State.FAILED and "model: claude-nonexistent-9" in item.error


def test_a_rejected_request_ends_a_real_time_job(emulator, make_notes, fast_polls, monkeypatch):
    from curation.engine.requests import RequestBuilder

    real = RequestBuilder.params
    monkeypatch.setattr(  # the SDK sends extra_body's keys as top-level parameters
        RequestBuilder, "params",
        lambda self, *a, **k: {**real(self, *a, **k), "extra_body": {"cache_prompt": True}},
    )
    job = run(create(make_notes, 3, mode="sync"))
    assert job.state == Job.State.FAILED and job.request_id.startswith("req_")
    assert "cache_prompt: Extra inputs are not permitted" in job.error
    assert emulator.stats()["messages"] == 1  # the first refusal ended it


def test_a_rejected_request_in_a_batch_fails_that_item_without_retries(
    emulator, make_notes, fast_polls, monkeypatch
):
    from curation.engine.requests import RequestBuilder

    real = RequestBuilder.params
    monkeypatch.setattr(RequestBuilder, "params",
                        lambda self, *a, **k: {**real(self, *a, **k), "cache_prompt": True})
    job = run(create(make_notes, 3, mode="batch"))
    assert job.state == Job.State.FAILED and attempts(job) == {1}
    for item in job.items.all():
        assert "Extra inputs are not permitted" in item.error and "not retried" in item.error


# --- adopting a batch whose create got no answer ----------------------------------------------


def test_an_unanswered_create_that_was_made_is_adopted(
    emulator, make_notes, fast_polls, settings
):
    settings.CURATION_TIMEOUT_SECONDS = 0.5
    emulator.configure(script=[{"endpoint": "batch_create", "status": "ok", "delay": 1.0}])
    job = run(create(make_notes, 5, mode="batch"))
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}
    assert emulator.stats()["batches"] == 1  # made once, found, not sent twice
    assert Batch.objects.get(job=job).state == Batch.State.APPLIED


def test_another_deployment_s_batch_is_never_adopted(emulator, make_notes, fast_polls):
    """Same workspace, same moment, same request count: its custom_ids are not ours."""
    job = create(make_notes, 4, mode="batch")
    other = anthropic.Anthropic(base_url=emulator.url, api_key=KEY, max_retries=0)
    theirs = [item.custom_id.replace(jobs.install_key(), "vcother0000")
              for item in job.items.order_by("id")]

    def their_batch():
        from tests.curation.emulator.test_emulator import params as their_params

        return other.messages.batches.create(requests=[
            {"custom_id": cid, "params": their_params(path=f"theirs/{i}.md")}
            for i, cid in enumerate(theirs)
        ])

    # Our create is lost on the way (no batch made); theirs is made at the same moment.
    emulator.configure(script=[{"endpoint": "batch_create", "status": "drop"}])
    jobs.job_step(job_id=job.id)
    their_batch()
    job = run(job)
    other.close()
    assert job.state == Job.State.SUCCEEDED and attempts(job) == {1}
    adopted, ours = Batch.objects.filter(job=job).order_by("id")
    assert adopted.state == Batch.State.FAILED and "was not ours" in adopted.error
    assert ours.state == Batch.State.APPLIED and ours.provider_id != adopted.provider_id
    # Nothing of theirs was applied, and the wrong adoption cost our items no attempt.
    assert Suggestion.objects.filter(job=job).count() == 4 * len(FIELDS)

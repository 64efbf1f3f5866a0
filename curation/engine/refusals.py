"""What the engine does when the API refuses a call: wait and try again, or end the job at once.

Two kinds of refusal, decided here and nowhere else:

- transient (429, 529, 5xx, timeouts, dropped connections): the call is tried again later,
  after the `retry-after-ms` / `retry-after` the API sent, else after an exponential backoff.
  It never uses an item's attempt: only an item's own result (errored, expired) does.
- fatal (401 key refused, 403 no permission, 404 unknown model or batch, 400 request rejected,
  no key configured): no retry can mend it, so `job_fail` ends the job at once, every
  unfinished item failed with the API's reason, and the reason and the API's `request-id`
  kept on the job. The reason names the key problem, never the key.

The SDK's rules this follows: it retries 408/409/429/>=500 and reads `retry-after-ms`, then
`retry-after` (seconds or an HTTP date): anthropics/anthropic-sdk-python
src/anthropic/_base_client.py (_should_retry, _parse_retry_after_header).
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time

from django.db import transaction
from django.utils import timezone

from curation.api import client
from curation.engine.items import ACTIVE_ITEM_STATES, job_cost
from curation.models import Batch, Item, Job

log = logging.getLogger(__name__)

MAX_WAIT = 60.0  # the longest single wait for a rate limit or a retry-after
# 529/5xx/connection errors without retry-after: 0.5 s doubling up to 8 s, the SDK's own
# INITIAL_RETRY_DELAY and MAX_RETRY_DELAY (src/anthropic/_constants.py).
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0


def retry_after(headers: dict, *, now: float | None = None) -> float | None:
    """Seconds the server asked to wait (retry-after-ms, retry-after seconds or date), capped."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return min(max(float(value) / 1000, 0.0), MAX_WAIT)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_WAIT)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(when - (time.time() if now is None else now), 0.0), MAX_WAIT)


def backoff(retry: int) -> float:
    """Exponential backoff with jitter for an error that named no wait."""
    return min(BACKOFF_FIRST * 2**retry, BACKOFF_MAX) * random.uniform(0.75, 1.25)


def wait_for(exc: client.ApiError, *, retry: int) -> float:
    """How long to wait before trying a refused call again (`retry`: refusals so far, from 0)."""
    asked = retry_after(exc.headers or {})
    return asked if asked is not None else backoff(retry)


def is_fatal(exc: client.ApiError) -> bool:
    """True when no retry can mend the refusal: the job must end now."""
    if exc.status is None:
        return not exc.retryable  # no key configured, or a client bug: never mends by itself
    return exc.status in (400, 401, 403, 404, 413, 422)


def surely_not_created(exc: client.ApiError) -> bool:
    """A refused batch create that certainly made no batch (else: list before sending again)."""
    return exc.status is not None and (exc.status < 500 or exc.status in (503, 529))


RESULT_STATUS = {"authentication_error": 401, "permission_error": 403, "not_found_error": 404}


def fatal_result(error: str) -> client.ApiError | None:
    """A batch request's errored result that no retry can mend for any item (the key, the
    permission, the model: the batch API reports these per request), as an ApiError."""
    kind, _, message = (error or "").partition(": ")
    status = RESULT_STATUS.get(kind)
    if status is None or (status == 404 and not message.startswith("model:")):
        return None
    found = REQUEST_ID_SUFFIX.search(message)  # client.with_request_id put it there
    request_id = found.group(1) if found else ""
    if found:
        message = message[: found.start()]
    return client.ApiError(f"HTTP {status} {kind}: {message}", status=status, kind=kind,
                           retryable=False, message=message, request_id=request_id)


REQUEST_ID_SUFFIX = re.compile(r" \(request-id (\S+)\)$")


def reason_for(exc: client.ApiError) -> str:
    """One line saying what is wrong and what to check; the key itself never appears."""
    said = str(exc)
    if exc.status == 401:
        return f"the API refused the key (check ANTHROPIC_API_KEY): {said}"
    if exc.status == 403:
        return f"the API key has no permission for this (check its workspace and role): {said}"
    if exc.status == 404 and exc.message.startswith("model:"):
        return f"the API does not know the model (check CURATION_MODEL): {said}"
    if exc.status == 404:
        return f"the API does not know this batch (a key of another workspace?): {said}"
    if exc.status is not None and 400 <= exc.status < 500:
        return f"the API rejected the request: {said}"
    return said


def job_fail(*, job_id: int, exc: client.ApiError) -> bool:
    """End a job at once after a fatal refusal: FAILED with the reason and the request-id.

    Every unfinished item fails with the reason; batches not sent are closed; provider batches
    still running are canceled if the API lets us, and abandoned either way (nobody could read
    their results with this key). Returns False when the job had already ended.
    """
    reason = reason_for(exc)[:5000]
    now = timezone.now()
    with transaction.atomic():
        if not Job.objects.filter(
            id=job_id, state__in=[Job.State.PENDING, Job.State.RUNNING]
        ).update(state=Job.State.FAILED, error=reason, request_id=exc.request_id[:200],
                 finished_at=now):
            return False
        n = Item.objects.filter(job_id=job_id, state__in=ACTIVE_ITEM_STATES).update(
            state=Item.State.FAILED, error=reason, finished_at=now, updated_at=now
        )
        Batch.objects.filter(
            job_id=job_id, state__in=[Batch.State.PREPARING, Batch.State.SUBMITTING]
        ).update(state=Batch.State.FAILED, error=reason, ended_at=now)
    running = Batch.objects.filter(
        job_id=job_id, state__in=[Batch.State.IN_PROGRESS, Batch.State.CANCELING,
                                  Batch.State.ENDED]
    )
    for batch in running.only("id", "provider_id", "state"):
        if batch.state == Batch.State.IN_PROGRESS and batch.provider_id:
            try:
                client.cancel_batch(batch.provider_id)
            except client.ApiError as cancel_exc:
                log.warning("job=%s batch=%s cancel failed: %s", job_id, batch.id, cancel_exc)
    running.update(state=Batch.State.FAILED, error=f"abandoned: {reason}"[:5000], ended_at=now)
    Job.objects.filter(id=job_id).update(cost=job_cost(job_id=job_id))
    log.error("job=%s failed at once (items=%s): %s request-id=%s",
              job_id, n, reason, exc.request_id or "-")  # fmt: skip
    return True

"""Real-time mode: one Messages API call per item, each saved the moment it finishes."""

from __future__ import annotations

import time

from curation.api import client
from curation.engine import refusals
from curation.engine.items import (
    apply_outcome,
    error_outcome,
    items_claim,
    items_fail_uncuratable,
    items_requeue,
    unsent_wait,
)
from curation.engine.requests import RequestBuilder
from curation.models import Item, Job


def item_send(*, item: Item, job: Job, builder: RequestBuilder) -> bool:
    """Claim one pending item and run it through one real-time Messages call, saving at once."""
    if items_claim(job_id=job.id, item_ids=[item.id]) != 1:
        return False  # another worker took it
    item.attempts += 1
    params, reading = builder.request(item)
    try:
        outcome = client.send_one(params, **reading)
    except client.ApiError as exc:
        if refusals.is_fatal(exc):  # the key, the model, the request: no retry mends it
            refusals.job_fail(job_id=job.id, exc=exc)
            return True
        outcome = error_outcome("errored", exc.detail)
    apply_outcome(item=item, outcome=outcome, job=job, batch_id=None)
    return True


def sync_run(*, job: Job, deadline: float | None = None) -> float | None:
    """Real-time mode: one Messages call per item, each saved the moment it finishes."""
    items_fail_uncuratable(job=job)
    builder = RequestBuilder(job)
    while True:
        items_requeue(job=job)
        pending = Item.objects.filter(job=job, state=Item.State.PENDING, batch=None)
        page = list(pending.select_related("note").order_by("id")[:100])
        if not page:
            break
        for item in page:
            if deadline is not None and time.monotonic() >= deadline:
                return 0.0
            if Job.objects.filter(id=job.id).exclude(state=Job.State.RUNNING).exists():
                return None  # canceled, or ended by a fatal refusal
            item_send(item=item, job=job, builder=builder)
    return unsent_wait(job=job)  # another worker may be mid-call


"""Tag consolidation as a job: the vault's whole tag list, with counts and a few example
titles, to the model in one request; its merges and renames stored for review.

The router picks the mode (one request: real time), the one client module sends it, pricing
costs it onto the Job like any other; curation.review.consolidation decides each merge.
"""

import logging
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.api import client, pricing, prompt
from curation.engine import router
from curation.engine.estimate import request_cost
from curation.engine.items import MICRO
from curation.models import Job, Mode, TagConsolidation
from curation.review.decisions import ReviewError, ReviewForbidden
from curation.review.taxonomy import vault_note_tags
from curation.roles import can_curate
from ingest.models import Note

log = logging.getLogger(__name__)

EXAMPLE_TITLES = 3


def vault_tag_list(*, vault_id: int) -> list[tuple[str, int, list[str]]]:
    """(tag, notes carrying it, a few example titles), most used first: what the model sees."""
    note_tags = vault_note_tags(vault_id=vault_id)
    counts: Counter[str] = Counter()
    examples: dict[str, list[int]] = {}
    for note_id, tags in note_tags.items():
        for tag in dict.fromkeys(tags):
            counts[tag] += 1
            picked = examples.setdefault(tag, [])
            if len(picked) < EXAMPLE_TITLES:
                picked.append(note_id)
    wanted = {i for ids in examples.values() for i in ids}
    titles = dict(Note.objects.filter(id__in=wanted).values_list("id", "title"))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(tag, n, [titles.get(i, "") for i in examples[tag]]) for tag, n in ranked]


def notes_touched(old: str, new: str, note_tags: dict[int, list[str]]) -> int:
    """Notes whose tags the rename would change (matched as export matches: any case)."""
    low = old.lower()

    def changes(tag: str) -> bool:
        hit = tag.lower() == low or tag.lower().startswith(low + "/")
        return hit and f"{new}{tag[len(old):]}" != tag

    return sum(1 for tags in note_tags.values() if any(changes(t) for t in tags))


def consolidation_run(*, vault_id: int, user=None) -> Job:
    """Create the job, send the vault's tag list, store the proposed merges; returns the Job.

    A failed call ends the job as failed with the reason; nothing else changes.
    """
    if user is not None and not can_curate(user):
        raise ReviewForbidden("Only curators start consolidation jobs.")
    tags = vault_tag_list(vault_id=vault_id)
    if len(tags) < 2:
        raise ReviewError("This vault has fewer than two tags: nothing to consolidate.")
    model = settings.CURATION_MODEL
    params = prompt.build_consolidation_request(tags, model=model)
    mode = router.choose_mode(1, Mode.AUTO)  # one request: real time
    job = Job.objects.create(
        created_by=user if getattr(user, "pk", None) else None,
        vault_id=vault_id,
        selection=f"tag consolidation ({len(tags)} tags)",
        fields=["tags"],
        requested_mode=Mode.AUTO,
        mode=mode,
        model=model,
        state=Job.State.RUNNING,
        started_at=timezone.now(),
        cost_estimate=request_cost(
            params, model=model, batch=False, output_tokens=20 * len(tags)
        ).quantize(MICRO),
    )  # fmt: skip
    try:
        merges, usage, _ = client.send_consolidation(params, tags=[t for t, _, _ in tags])
    except client.ApiError as exc:
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
        log.warning("consolidation job=%s failed: %s", job.pk, exc)
        job.refresh_from_db()
        return job
    note_tags = vault_note_tags(vault_id=vault_id)
    with transaction.atomic():
        TagConsolidation.objects.bulk_create(
            [
                TagConsolidation(
                    job=job, vault_id=vault_id, old=m.old, new=m.new, reason=m.reason,
                    notes=notes_touched(m.old, m.new, note_tags),
                )  # fmt: skip
                for m in merges
            ]
        )
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.SUCCEEDED,
            cost=pricing.cost(usage, model=model, batch=False).quantize(MICRO),
            finished_at=timezone.now(),
        )
    log.info("consolidation job=%s vault=%s merges=%s", job.pk, vault_id, len(merges))
    job.refresh_from_db()
    return job

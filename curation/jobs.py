"""Curation job services: create, start, run per mode, submit/poll/apply batches, retry, cancel.

Every door (the admin action, `curate`, `jobs`, the django-q2 tasks) calls these functions.

Flow of a job:
    job_create(...)      Job + one Item per curatable note, in bulk; mode chosen by the router;
                         cost estimated before anything is sent.
    job_start(job_id=)   enqueue `curation.tasks.run_job` once the transaction commits.
    job_run(job_id=)     loop `job_step` until the job is final (or a time budget ends).
    job_step(job_id=)    one pass of the job's runner (RUNNERS[job.mode]), then finalization.

Batch mode, per batch: PREPARING (row saved, items assigned) -> SUBMITTING (claimed by a
conditional UPDATE, items SUBMITTED, attempt counted) -> provider call -> IN_PROGRESS
(provider id saved) -> polled with backoff -> ENDED -> results applied by custom_id -> APPLIED.
A SUBMITTING batch without a provider id that is older than any task could run is reconciled:
an unknown provider batch created since the attempt with the same request count is adopted,
otherwise the batch is marked FAILED and its items go back for another attempt.

Item state changes are conditional UPDATEs (`WHERE state=... AND batch=...`) so a task
delivered twice, or a result applied twice, changes nothing the second time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from decimal import Decimal
from itertools import islice
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count, F, QuerySet, Sum
from django.utils import timezone

from curation import client, router
from curation.candidates import CandidateIndex
from curation.models import ALL_FIELDS, Batch, Item, Job, Mode, Suggestion
from ingest.models import Note

log = logging.getLogger(__name__)

CREATE_CHUNK = 2000  # notes per bulk insert when creating a job
PAGE = 1000  # items read per query when building requests
APPLY_CHUNK = 500  # results applied per transaction
TAXONOMY_SIZE = 300
MICRO = Decimal("0.000001")  # most common existing tags shown to the model
# Tokens a request carries besides the note itself (instructions, taxonomy, candidates).
PROMPT_OVERHEAD_TOKENS = 600

ACTIVE_ITEM_STATES = (
    Item.State.PENDING,
    Item.State.SUBMITTED,
    Item.State.ERRORED,
    Item.State.EXPIRED,
)
RETRY_STATES = (Item.State.ERRORED, Item.State.EXPIRED)
ACTIVE_BATCH_STATES = (
    Batch.State.PREPARING,
    Batch.State.SUBMITTING,
    Batch.State.IN_PROGRESS,
    Batch.State.ENDED,
)


class NoNotesError(ValueError):
    """The selection holds no note that can be curated."""


# --- settings read at call time (tests change them) -------------------------------------


def max_attempts() -> int:
    return max(1, int(settings.CURATION_MAX_ATTEMPTS))


def poll_bounds() -> tuple[float, float]:
    """(first wait, longest wait) between two polls of a running batch."""
    longest = float(settings.CURATION_POLL_SECONDS)
    first = float(getattr(settings, "CURATION_POLL_MIN_SECONDS", 2.0))
    return min(first, longest), longest


def submit_stale_seconds() -> float:
    """After this long a SUBMITTING batch can no longer be in a live task's hands."""
    default = float(settings.Q_CLUSTER.get("timeout", 600)) + 60
    return float(getattr(settings, "CURATION_SUBMIT_STALE_SECONDS", default))


# --- creating a job ------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def custom_id_for(*, item_id: int, name: str) -> str:
    """`item_00000042_Building_RAG_Systems`: the Item's id (unique everywhere) + a readable name.

    Always matches ^[a-zA-Z0-9_-]{1,64}$; the name part only helps a person reading logs,
    results are matched by the whole id looked up in the database.
    """
    prefix = f"item_{item_id:08d}"
    room = 64 - len(prefix) - 1
    slug = _UNSAFE.sub("_", name).strip("_")[: max(room, 0)].strip("_")
    return f"{prefix}_{slug}" if slug else prefix


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name[:-3] if name.endswith(".md") else name


def fields_clean(fields: Iterable[str] | None) -> list[str]:
    """The requested fields in canonical order; all of them when none given."""
    if not fields:
        return list(ALL_FIELDS)
    wanted = {f.strip() for f in fields if f and f.strip()}
    unknown = sorted(wanted - set(ALL_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown field(s): {', '.join(unknown)} (choose from {', '.join(ALL_FIELDS)})"
        )
    return [f for f in ALL_FIELDS if f in wanted]


def _note_ids(notes: QuerySet | Iterable[int]) -> list[int]:
    """Ids of the curatable notes in a queryset or an id list (skipped/missing ones dropped)."""
    if isinstance(notes, QuerySet):
        qs = notes
        if notes.query.is_sliced:  # a sliced queryset cannot be filtered further
            qs = notes.model.objects.filter(pk__in=notes.values("pk"))
        return list(
            qs.filter(state=Note.State.OK).order_by("id").values_list("id", flat=True).distinct()
        )
    wanted = sorted({int(n) for n in notes})
    ids: list[int] = []
    for start in range(0, len(wanted), CREATE_CHUNK):
        chunk = wanted[start : start + CREATE_CHUNK]
        ids.extend(
            Note.objects.filter(id__in=chunk, state=Note.State.OK)
            .order_by("id")
            .values_list("id", flat=True)
        )
    return ids


def job_create(
    *,
    notes: QuerySet | Iterable[int],
    fields: Iterable[str] | None = None,
    mode: str = Mode.AUTO,
    urgent: bool = False,
    user=None,
    selection: str = "",
) -> Job:
    """Create a job with one Item per curatable note (skipped and missing notes never queued).

    Works on any selection size: ids are read once, items are inserted CREATE_CHUNK at a
    time, and no query is made per note. Raises NoNotesError when nothing can be curated.
    """
    fields = fields_clean(fields)
    ids = _note_ids(notes)
    if not ids:
        raise NoNotesError("no curatable notes matched the selection")
    chosen = router.choose_mode(len(ids), str(mode), urgent=urgent)
    now = timezone.now()
    qn = connection.ops.quote_name
    sql_set_custom_id = (
        f"UPDATE {qn(Item._meta.db_table)} SET {qn(Item._meta.get_field('custom_id').column)}"
        f" = %s WHERE {qn(Item._meta.pk.column)} = %s"
    )
    with transaction.atomic():
        job = Job.objects.create(
            created_by=user if getattr(user, "pk", None) else None,
            selection=selection[:500],
            fields=fields,
            requested_mode=mode,
            mode=chosen,
            urgent=urgent,
            model=settings.CURATION_MODEL,
        )
        vaults: set[int] = set()
        total_size = 0
        for start in range(0, len(ids), CREATE_CHUNK):
            rows = list(
                Note.objects.filter(id__in=ids[start : start + CREATE_CHUNK])
                .order_by("id")
                .values_list("id", "path", "vault_id", "size")
            )
            items = Item.objects.bulk_create(
                [Item(job=job, note_id=nid, created_at=now, updated_at=now) for nid, *_ in rows]
            )
            if any(item.pk is None for item in items):  # a backend that cannot return ids
                by_note = dict(
                    Item.objects.filter(job=job, note_id__in=[r[0] for r in rows]).values_list(
                        "note_id", "id"
                    )
                )
                for item in items:
                    item.pk = item.id = by_note[item.note_id]
            names = {nid: path for nid, path, *_ in rows}
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql_set_custom_id,
                    [
                        (custom_id_for(item_id=item.pk, name=_stem(names[item.note_id])), item.pk)
                        for item in items
                    ],
                )
            vaults.update(r[2] for r in rows)
            total_size += sum(r[3] for r in rows)
        avg_tokens = total_size // len(ids) // 4 + PROMPT_OVERHEAD_TOKENS
        job.cost_estimate = client.estimate(
            n_items=len(ids),
            avg_input_tokens=avg_tokens,
            model=job.model,
            batch=chosen == Mode.BATCH,
        ).quantize(MICRO)
        job.vault_id = next(iter(vaults)) if len(vaults) == 1 else None
        job.save(update_fields=["cost_estimate", "vault"])
    log.info(
        "job=%s created items=%s mode=%s requested=%s fields=%s estimate=%s",
        job.id, len(ids), chosen, mode, ",".join(fields), job.cost_estimate,
    )
    return job


def job_enqueue(*, job_id: int) -> str:
    """Hand the job to the workers now (use job_start inside a transaction)."""
    from django_q.tasks import async_task

    return async_task("curation.tasks.run_job", job_id, group=f"job-{job_id}")


def job_start(*, job_id: int) -> None:
    """Queue the job for the workers once the current transaction commits."""
    transaction.on_commit(lambda: job_enqueue(job_id=job_id))


# --- running a job ---------------------------------------------------------------------------


def job_run(
    *,
    job_id: int,
    budget: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Job], None] | None = None,
) -> bool:
    """Carry a job forward until it is final (True) or `budget` seconds are spent (False)."""
    deadline = None if budget is None else time.monotonic() + budget
    while True:
        wait = job_step(job_id=job_id, deadline=deadline)
        if progress is not None:
            progress(Job.objects.get(id=job_id))
        if wait is None:
            return True
        if deadline is not None and time.monotonic() + wait >= deadline:
            return False
        if wait > 0:
            sleep(wait)


def job_step(*, job_id: int, deadline: float | None = None) -> float | None:
    """One pass over the job; returns seconds until the next pass is useful, None when final."""
    job = Job.objects.get(id=job_id)
    if job.is_final:
        return None
    if job.state == Job.State.PENDING:
        if Job.objects.filter(id=job_id, state=Job.State.PENDING).update(
            state=Job.State.RUNNING, started_at=timezone.now()
        ):
            log.info("job=%s running mode=%s", job_id, job.mode)
        job.refresh_from_db()
        if job.is_final:
            return None
    runner = RUNNERS[job.mode or Mode.SYNC]
    wait = runner(job=job, deadline=deadline)
    if wait is None:
        if job_finalize(job_id=job_id):
            return None
        return poll_bounds()[0]
    return wait


def job_finalize(*, job_id: int) -> bool:
    """End the job when no item or batch is active; its state follows from the item states."""
    counts = item_counts(job_ids=[job_id]).get(job_id, {})
    if any(counts.get(s, 0) for s in ACTIVE_ITEM_STATES):
        return False
    if Batch.objects.filter(job_id=job_id, state__in=ACTIVE_BATCH_STATES).exists():
        return False
    ok = counts.get(Item.State.SUCCEEDED, 0)
    state = Job.State.SUCCEEDED if ok == sum(counts.values()) else Job.State.FAILED
    cost = job_cost(job_id=job_id)
    n = Job.objects.filter(id=job_id, state=Job.State.RUNNING).update(
        state=state, cost=cost, finished_at=timezone.now()
    )
    if n:
        log.info(
            "job=%s finished state=%s %s cost=%s",
            job_id, state, " ".join(f"{k}={v}" for k, v in sorted(counts.items())), cost,
        )
    return Job.objects.get(id=job_id).is_final


def job_cost(*, job_id: int) -> Decimal:
    total = Item.objects.filter(job_id=job_id).aggregate(s=Sum("cost"))["s"] or Decimal("0")
    return Decimal(total).quantize(MICRO)


def item_counts(*, job_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{job_id: {item state: count}} for many jobs in one aggregate query."""
    result: dict[int, dict[str, int]] = {}
    rows = (
        Item.objects.filter(job_id__in=list(job_ids))
        .values_list("job_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for job_id, state, n in rows:
        result.setdefault(job_id, {})[state] = n
    return result


PROGRESS_ITEMS = 50  # items listed on the live job page


def job_progress(*, job_id: int) -> dict:
    """What the live job page shows: state, per-state counts, cost so far, the batches."""
    job = Job.objects.get(id=job_id)
    counts = item_counts(job_ids=[job_id]).get(job_id, {})
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in Item.FINAL_STATES)
    batches = [
        {
            "id": b.id,
            "provider_id": b.provider_id or "",
            "state": b.state,
            "request_count": b.request_count,
            "request_counts": b.request_counts or {},
        }
        for b in job.batches.order_by("-id")[:50]
    ]
    # Per-item progress, the latest changes first (items end one by one in parallel mode).
    labels = dict(Item.State.choices)
    recent = [
        {
            "id": row["id"], "note": row["note__path"], "state": row["state"],
            "state_label": labels.get(row["state"], row["state"]), "attempts": row["attempts"],
            "error": row["error"][:200], "cost": str(row["cost"]),
            "updated_at": row["updated_at"].isoformat() if row["updated_at"] else "",
        }  # fmt: skip
        for row in job.items.order_by("-updated_at", "-id").values(
            "id", "note__path", "state", "attempts", "error", "cost", "updated_at"
        )[:PROGRESS_ITEMS]
    ]
    return {
        "id": job.id,
        "state": job.state,
        "state_label": job.get_state_display(),
        "mode": job.mode,
        "final": job.is_final,
        "total": total,
        "done": done,
        "counts": {state: counts.get(state, 0) for state in Item.State.values},
        "cost": str(job.cost if job.is_final else job_cost(job_id=job_id)),
        "cost_estimate": str(job.cost_estimate),
        "batches": batches,
        "items": recent,
    }


def job_cancel(*, job_id: int) -> int:
    """Cancel a job: its running provider batches, and every item not yet ended.

    Returns how many items were canceled. Results that arrive later for canceled items
    are discarded (their conditional update finds them no longer SUBMITTED).
    """
    now = timezone.now()
    with transaction.atomic():
        if not Job.objects.filter(
            id=job_id, state__in=[Job.State.PENDING, Job.State.RUNNING]
        ).update(state=Job.State.CANCELED, finished_at=now):
            return 0
        n = Item.objects.filter(job_id=job_id, state__in=ACTIVE_ITEM_STATES).update(
            state=Item.State.CANCELED, error="canceled", finished_at=now, updated_at=now
        )
        Batch.objects.filter(job_id=job_id, state=Batch.State.PREPARING).update(
            state=Batch.State.FAILED, error="job canceled before submission", ended_at=now
        )
    for batch in Batch.objects.filter(
        job_id=job_id, state=Batch.State.IN_PROGRESS, provider_id__isnull=False
    ):
        _provider_cancel(batch)
    Job.objects.filter(id=job_id).update(cost=job_cost(job_id=job_id))
    log.info("job=%s canceled items=%s", job_id, n)
    return n


def _provider_cancel(batch: Batch) -> None:
    try:
        client.cancel_batch(batch.provider_id)
    except client.ApiError as exc:
        log.warning("job=%s batch=%s cancel failed: %s", batch.job_id, batch.id, exc)
        return
    Batch.objects.filter(id=batch.id, state=Batch.State.IN_PROGRESS).update(
        state=Batch.State.CANCELING
    )
    log.info("job=%s batch=%s provider=%s cancel requested",
             batch.job_id, batch.id, batch.provider_id)  # fmt: skip


def job_retry_failed(*, job_id: int) -> int:
    """Give every failed item of a job fresh attempts and queue the job again.

    Returns how many items were reset (0: nothing to do, the job is left as it was).
    """
    now = timezone.now()
    with transaction.atomic():
        n = Item.objects.filter(job_id=job_id, state=Item.State.FAILED).update(
            state=Item.State.PENDING, attempts=0, batch=None, finished_at=None, updated_at=now
        )
        if n:
            Job.objects.filter(id=job_id).update(state=Job.State.RUNNING, finished_at=None)
            job_start(job_id=job_id)
    if n:
        log.info("job=%s retrying failed items=%s", job_id, n)
    return n


# --- building requests -------------------------------------------------------------------------


class RequestBuilder:
    """Turns items of one job into API request params.

    Per vault, one candidate index (curation.candidates) is built once and gives both the
    taxonomy (existing tags, most used first) and each note's candidate related notes, so
    the same candidates can be offered in the request and checked against in the answer.
    """

    def __init__(self, job: Job):
        self.job = job
        self.want_related = "related" in job.fields
        self._indexes: dict[int, CandidateIndex] = {}
        self._taxonomies: dict[int, list[str]] = {}

    def index(self, vault_id: int) -> CandidateIndex:
        index = self._indexes.get(vault_id)
        if index is None:
            rows = Note.objects.filter(vault_id=vault_id, state=Note.State.OK).values_list(
                "path", "title", "tags"
            )
            index = self._indexes[vault_id] = CandidateIndex.build(rows.iterator(chunk_size=5000))
            self._taxonomies[vault_id] = index.taxonomy(TAXONOMY_SIZE)
        return index

    def taxonomy(self, vault_id: int) -> list[str]:
        self.index(vault_id)
        return self._taxonomies[vault_id]

    def candidates(self, note: Note) -> list[str]:
        if not self.want_related:
            return []
        return self.index(note.vault_id).candidates(note.path)

    def note_input(self, item: Item, note: Note, candidates: list[str] | None = None):
        return client.NoteInput(
            custom_id=item.custom_id,
            name=note.name,
            path=note.path,
            title=note.title,
            body=note.body,
            tags=note.tags if isinstance(note.tags, list) else [],
            fields=list(self.job.fields),
            candidates=self.candidates(note) if candidates is None else candidates,
            taxonomy=self.taxonomy(note.vault_id),
        )

    def params(self, item: Item, note: Note, candidates: list[str] | None = None) -> dict:
        return client.build_request(self.note_input(item, note, candidates), model=self.job.model)

    def candidates_lookup(self, batch: Batch) -> Callable[[str], list[str]]:
        """custom_id -> the candidate paths its request offered (for checking `related`)."""
        if not self.want_related:
            return lambda custom_id: []
        where = dict(
            Item.objects.filter(batch=batch).values_list("custom_id", "note__vault_id")
        )
        paths = dict(Item.objects.filter(batch=batch).values_list("custom_id", "note__path"))

        def lookup(custom_id: str) -> list[str]:
            if custom_id not in paths:
                raise KeyError(custom_id)
            return self.index(where[custom_id]).candidates(paths[custom_id])

        return lookup


class NoteRow(NamedTuple):
    """The note columns a request is built from (model instances cost more than the request)."""

    id: int
    vault_id: int
    path: str
    title: str
    body: str
    tags: list

    @property
    def name(self) -> str:
        return _stem(self.path)


class ItemRow(NamedTuple):
    id: int
    custom_id: str
    note: NoteRow


def _item_pages(qs: QuerySet, size: int = PAGE) -> Iterator[list[ItemRow]]:
    """Items with their notes, by id, one page per query (keyset: no OFFSET, no open cursor)."""
    last = 0
    qs = qs.order_by("id").values_list(
        "id", "custom_id", "note_id", "note__vault_id", "note__path", "note__title",
        "note__body", "note__tags",
    )  # fmt: skip
    while True:
        rows = list(qs.filter(id__gt=last)[:size])
        if not rows:
            return
        yield [ItemRow(r[0], r[1], NoteRow(*r[2:])) for r in rows]
        last = rows[-1][0]


def _fail_uncuratable(*, job: Job) -> None:
    """Items whose note was skipped or went missing since the job was created end as failed."""
    now = timezone.now()
    n = (
        Item.objects.filter(job=job, state=Item.State.PENDING, batch=None)
        .exclude(note__state=Note.State.OK)
        .update(
            state=Item.State.FAILED,
            error="the note is no longer importable (skipped or missing on disk)",
            finished_at=now,
            updated_at=now,
        )
    )
    if n:
        log.warning("job=%s items=%s failed: note skipped or missing", job.id, n)


# --- applying outcomes -----------------------------------------------------------------------


def _suggestion_values(job: Job, answer) -> list[tuple[str, object]]:
    values = []
    for field in job.fields:
        value = getattr(answer, field, None) if answer is not None else None
        if value is not None:
            values.append((field, value))
    return values


def _outcome_changes(*, job: Job, attempts: int, outcome, batch: bool) -> tuple[str, str, Decimal]:
    """(new item state, error reason, cost) for an outcome: the state machine's one decision."""
    cost = (
        client.cost(outcome.usage, model=job.model, batch=batch).quantize(MICRO)
        if outcome.usage
        else Decimal("0")
    )
    if outcome.state == "succeeded":
        return Item.State.SUCCEEDED, "", cost
    reason = (outcome.error or outcome.state or "no result").strip()
    if outcome.state == "canceled" and job.state == Job.State.CANCELED:
        return Item.State.CANCELED, reason, cost
    if attempts >= max_attempts():
        return Item.State.FAILED, f"{reason} (gave up after {attempts} attempts)", cost
    if outcome.state == "expired":
        return Item.State.EXPIRED, reason, cost
    return Item.State.ERRORED, reason, cost


def _item_update_sql(conn) -> str:
    qn = conn.ops.quote_name
    col = {name: qn(Item._meta.get_field(name).column) for name in _ITEM_COLUMNS}
    sets = ", ".join(
        f"{col[name]} = {col[name]} + %s" if name == "cost" else f"{col[name]} = %s"
        for name in _ITEM_COLUMNS
        if name != "id"
    )
    return (
        f"UPDATE {qn(Item._meta.db_table)} SET {sets} "
        f"WHERE {col['id']} = %s AND {col['state']} = %s"
    )


_ITEM_COLUMNS = ("state", "error", "result", "usage", "cost", "finished_at", "updated_at", "id")
_ITEM_ADAPTED = {"result", "usage", "cost"}  # values that need the backend's form
_FINISHED = _ITEM_COLUMNS.index("finished_at")
_UPDATED = _ITEM_COLUMNS.index("updated_at")


class ItemRef(NamedTuple):
    """What applying an outcome needs to know about an item (cheaper than a model instance)."""

    id: int
    note_id: int
    attempts: int


def _insert_suggestions(values: list[dict]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (unique item+field): a second insert changes nothing.

    Raw executemany rather than bulk_create: applying 100,000 results makes 300,000 rows.
    Columns not given take their model default, computed once per call.
    """
    if not values:
        return
    conn = transaction.get_connection()
    qn = conn.ops.quote_name
    fields = [f for f in Suggestion._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    plain = (models.CharField, models.ForeignKey, models.IntegerField)
    given = values[0]
    # Per column: a fixed value (a default), the raw value, or the backend's form of it.
    columns = []
    for f in fields:
        if f.attname not in given:
            stamped = getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
            fixed = f.get_db_prep_save(now if stamped else f.get_default(), conn)
            columns.append((0, f.attname, fixed))
        elif isinstance(f, plain):
            columns.append((1, f.attname, None))
        else:
            columns.append((2, f.attname, f.get_db_prep_save))
    sql = (
        f"INSERT INTO {qn(Suggestion._meta.db_table)} "
        f"({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING"
    )
    rows = [
        [
            extra if how == 0 else value[name] if how == 1 else extra(value[name], conn)
            for how, name, extra in columns
        ]
        for value in values
    ]
    with conn.cursor() as cursor:
        cursor.executemany(sql, rows)


def apply_outcomes(*, job: Job, batch_id: int | None, pairs: list[tuple[Item, object]]) -> int:
    """The one place API outcomes become item states and Suggestion rows.

    Each `item` needs id, note_id and attempts (as counted at submission). Only items still
    SUBMITTED in `batch_id` (None: a real-time call) change: they are claimed first (row locks
    on PostgreSQL; SQLite's write lock is taken at BEGIN), so applying the same outcome twice,
    or one for a canceled or moved item, does nothing. Succeeded: one Suggestion per requested
    field (unique per item and field). Errored/expired: back for another attempt while attempts
    remain, else failed with the reason. Returns how many items changed.
    """
    if not pairs:
        return 0
    now = timezone.now()
    conn = transaction.get_connection()
    prep = {name: Item._meta.get_field(name).get_db_prep_save for name in _ITEM_COLUMNS}
    now_db = prep["updated_at"](now, conn)
    prompt_version = getattr(client, "PROMPT_VERSION", "")
    with transaction.atomic():
        claimed = set(
            Item.objects.select_for_update()
            .filter(
                id__in=[item.id for item, _ in pairs],
                state=Item.State.SUBMITTED,
                batch_id=batch_id,
            )
            .order_by("id")
            .values_list("id", flat=True)
        )
        rows, suggestions = [], []
        for item, outcome in pairs:
            if item.id not in claimed:
                log.info("job=%s item=%s %s outcome discarded (item no longer waiting for it)",
                         job.id, item.id, outcome.state)  # fmt: skip
                continue
            claimed.discard(item.id)  # a second outcome for the same item in this call: ignored
            state, error, cost = _outcome_changes(
                job=job, attempts=item.attempts, outcome=outcome, batch=batch_id is not None
            )
            values = {
                "state": state,
                "error": error[:5000],
                "result": outcome.raw,
                "usage": outcome.usage or None,
                "cost": cost,
                "finished_at": now if state in Item.FINAL_STATES else None,
                "updated_at": now,
                "id": item.id,
            }
            rows.append(
                [
                    prep[name](values[name], conn) if name in _ITEM_ADAPTED else values[name]
                    for name in _ITEM_COLUMNS
                ]
                + [Item.State.SUBMITTED]
            )
            if values["finished_at"] is not None:
                rows[-1][_FINISHED] = now_db
            rows[-1][_UPDATED] = now_db
            if state == Item.State.SUCCEEDED:
                fields = _suggestion_values(job, outcome.answer)
                share = (cost / len(fields)).quantize(MICRO) if fields else Decimal("0")
                suggestions.extend(
                    {
                        "item_id": item.id, "note_id": item.note_id, "job_id": job.id,
                        "field": field, "value": value, "model": job.model,
                        "prompt_version": prompt_version, "cost": share,
                    }  # fmt: skip
                    for field, value in fields
                )
            else:
                log.info("job=%s item=%s %s attempt=%s: %s",
                         job.id, item.id, state, item.attempts, error[:300])  # fmt: skip
        if rows:
            with conn.cursor() as cursor:
                cursor.executemany(_item_update_sql(conn), rows)
        _insert_suggestions(suggestions)
    return len(rows)


def apply_outcome(*, item: Item, outcome, job: Job, batch_id: int | None = None) -> bool:
    """apply_outcomes for one item: True when the item changed."""
    return apply_outcomes(job=job, batch_id=batch_id, pairs=[(item, outcome)]) == 1


def items_requeue(*, job: Job) -> int:
    """Errored and expired items (attempts left) go back to pending, out of their old batch."""
    n = Item.objects.filter(job=job, state__in=RETRY_STATES).update(
        state=Item.State.PENDING, batch=None, updated_at=timezone.now()
    )
    if n:
        log.info("job=%s items=%s queued for another attempt", job.id, n)
    return n


# --- sync mode (and parallel until its engine lands) --------------------------------------


def _error_outcome(state: str, error: str):
    return client.Outcome(state=state, answer=None, usage=None, error=error, raw=None)


def item_send(*, item: Item, job: Job, builder: RequestBuilder) -> bool:
    """Claim one pending item and run it through one real-time Messages call, saving at once."""
    n = Item.objects.filter(id=item.id, state=Item.State.PENDING, batch=None).update(
        state=Item.State.SUBMITTED, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if n != 1:
        return False  # another worker took it
    item.attempts += 1
    note = item.note
    candidates = builder.candidates(note)
    params = builder.params(item, note, candidates)
    try:
        outcome = client.send_one(params, fields=list(job.fields), candidates=candidates)
    except client.ApiError as exc:
        outcome = _error_outcome("errored", str(exc))
    apply_outcome(item=item, outcome=outcome, job=job, batch_id=None)
    return True


def _recover_stale_sync_items(*, job: Job) -> None:
    """A real-time call whose worker died stays SUBMITTED: after the stale delay, retry it."""
    cutoff = timezone.now() - timedelta(seconds=submit_stale_seconds())
    stale = Item.objects.filter(
        job=job, state=Item.State.SUBMITTED, batch=None, updated_at__lt=cutoff
    ).only("id", "note_id", "attempts")
    outcome = _error_outcome("errored", "the worker stopped during the call")
    apply_outcomes(job=job, batch_id=None, pairs=[(item, outcome) for item in stale])


def sync_run(*, job: Job, deadline: float | None = None) -> float | None:
    """Real-time mode: one Messages call per item, each saved the moment it finishes."""
    _fail_uncuratable(job=job)
    _recover_stale_sync_items(job=job)
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
            if Job.objects.filter(id=job.id, state=Job.State.CANCELED).exists():
                return None
            item_send(item=item, job=job, builder=builder)
    if Item.objects.filter(job=job, state=Item.State.SUBMITTED).exists():
        return poll_bounds()[0]  # another worker is mid-call
    return None


# --- batch mode ---------------------------------------------------------------------------------


def batches_prepare(
    *,
    job: Job,
    builder: RequestBuilder | None = None,
    submit: bool = False,
    deadline: float | None = None,
) -> list[int]:
    """Group the job's pending, unassigned items into PREPARING batches (saved before any call).

    Streams items page by page, builds and sizes each request, and closes a batch at the
    request or byte limit. Each batch takes its items with a conditional UPDATE, so two
    preparers never put one item in two batches. With `submit`, each batch is submitted as
    soon as it is saved, reusing the requests just built (until `deadline`; later batches
    stay PREPARING for the next pass). Returns the new batch ids.
    """
    builder = builder or RequestBuilder(job)
    base = Item.objects.filter(job=job, state=Item.State.PENDING, batch=None)
    ids: list[int] = []
    byte_sizes: list[int] = []
    built: dict[int, tuple[str, dict]] = {}  # the open batch's requests, by position

    def sizes() -> Iterator[int]:
        for page in _item_pages(base):
            for item in page:
                params = builder.params(item, item.note)
                size = client.request_size(params)
                if submit:
                    built[len(ids)] = (item.custom_id, params)
                ids.append(item.id)
                byte_sizes.append(size)
                yield size

    max_bytes = int(getattr(settings, "CURATION_BATCH_MAX_BYTES", router.MAX_BATCH_BYTES))
    created = []
    for start, stop in router.plan_batches(
        sizes(), max_requests=settings.CURATION_BATCH_SIZE, max_bytes=max_bytes
    ):
        requests = [built.pop(i) for i in range(start, stop)] if submit else None
        with transaction.atomic():
            batch = Batch.objects.create(
                job=job, request_count=stop - start, request_bytes=sum(byte_sizes[start:stop])
            )
            n = base.filter(id__gte=ids[start], id__lte=ids[stop - 1]).update(
                batch=batch, updated_at=timezone.now()
            )
            if n == 0:
                batch.delete()  # another preparer took these items
                continue
            if n != stop - start:
                Batch.objects.filter(id=batch.id).update(request_count=n)
                requests = None  # not the set we built: rebuild from the rows at submit
        created.append(batch.id)
        log.info("job=%s batch=%s prepared requests=%s", job.id, batch.id, n)
        if submit and (deadline is None or time.monotonic() < deadline):
            batch_submit(batch_id=batch.id, builder=builder, requests=requests)
    return created


def _batch_requests(*, batch: Batch, builder: RequestBuilder) -> Iterator[tuple[str, dict]]:
    for page in _item_pages(Item.objects.filter(batch=batch, state=Item.State.SUBMITTED)):
        for item in page:
            yield item.custom_id, builder.params(item, item.note)


def batch_submit(
    *,
    batch_id: int,
    builder: RequestBuilder | None = None,
    requests: list[tuple[str, dict]] | None = None,
) -> bool:
    """Claim a PREPARING batch, send it to the provider, record the provider's id.

    Returns True when this call submitted it. A crash after the provider accepted it but
    before its id was saved leaves it SUBMITTING; `batch_reconcile` sorts that out.
    """
    now = timezone.now()
    batch = Batch.objects.select_related("job").get(id=batch_id)
    job = batch.job
    if job.is_final:
        return False
    with transaction.atomic():
        if not Batch.objects.filter(
            id=batch_id, state=Batch.State.PREPARING, provider_id=None
        ).update(state=Batch.State.SUBMITTING, submitted_at=now):
            return False
        n = Item.objects.filter(batch_id=batch_id, state=Item.State.PENDING).update(
            state=Item.State.SUBMITTED, attempts=F("attempts") + 1, updated_at=now
        )
        Batch.objects.filter(id=batch_id).update(request_count=n)
    if n == 0:
        Batch.objects.filter(id=batch_id, state=Batch.State.SUBMITTING).update(
            state=Batch.State.APPLIED, ended_at=now, error="no items left to submit"
        )
        return False
    if requests is None or len(requests) != n:
        builder = builder or RequestBuilder(job)
        requests = _batch_requests(batch=batch, builder=builder)
    try:
        status = client.submit_batch(requests)
    except client.ApiError as exc:
        log.warning("job=%s batch=%s submit failed: %s", job.id, batch_id, exc)
        Batch.objects.filter(id=batch_id).update(error=f"submit failed: {exc}"[:5000])
        batch_reconcile(batch_id=batch_id, stale_after=0, reason=f"submit failed: {exc}")
        return False
    batch_mark_submitted(batch_id=batch_id, provider_id=status.id)
    return True


def batch_mark_submitted(*, batch_id: int, provider_id: str) -> bool:
    """Record the provider's id: SUBMITTING -> IN_PROGRESS (the step a crash may skip)."""
    first, _ = poll_bounds()
    now = timezone.now()
    try:
        with transaction.atomic():
            n = Batch.objects.filter(
                id=batch_id, state=Batch.State.SUBMITTING, provider_id=None
            ).update(
                provider_id=provider_id,
                state=Batch.State.IN_PROGRESS,
                poll_interval=first,
                next_poll_at=now + timedelta(seconds=first),
                error="",
            )
    except IntegrityError:
        n = 0
    batch = Batch.objects.select_related("job").get(id=batch_id)
    if n != 1:
        if batch.provider_id != provider_id:
            # Reconciled or failed meanwhile: nobody will read this provider batch.
            log.warning(
                "job=%s batch=%s provider=%s not recorded (state=%s); canceling it",
                batch.job_id, batch_id, provider_id, batch.state,
            )
            try:
                client.cancel_batch(provider_id)
            except client.ApiError as exc:
                log.warning("job=%s batch=%s cancel failed: %s", batch.job_id, batch_id, exc)
        return False
    log.info("job=%s batch=%s provider=%s submitted requests=%s",
             batch.job_id, batch_id, provider_id, batch.request_count)  # fmt: skip
    if batch.job.state == Job.State.CANCELED:
        _provider_cancel(batch)
    return True


def _request_total(status) -> int:
    counts = getattr(status, "request_counts", None) or {}
    return sum(int(v or 0) for v in counts.values())


def batch_reconcile(*, batch_id: int, stale_after: float | None = None, reason: str = "") -> bool:
    """Settle a SUBMITTING batch whose provider id was never saved (the worker died or errored).

    Adopts an unknown provider batch created since the attempt with the same request count;
    otherwise marks the batch FAILED and sends its items back for another attempt. Returns
    True when a provider batch was adopted. Results are matched by custom_id only, so even a
    wrong adoption cannot put a result on the wrong note: unmatched items are retried.
    """
    batch = Batch.objects.select_related("job").get(id=batch_id)
    if batch.state != Batch.State.SUBMITTING or batch.provider_id:
        return False
    stale_after = submit_stale_seconds() if stale_after is None else stale_after
    now = timezone.now()
    if batch.submitted_at and batch.submitted_at > now - timedelta(seconds=stale_after):
        return False  # a live task may still be submitting it
    since = (batch.submitted_at or batch.created_at) - timedelta(seconds=60)  # clock skew
    try:
        listed = list(client.list_batches(since=since))
    except client.ApiError as exc:
        log.warning("job=%s batch=%s cannot list provider batches: %s", batch.job_id, batch_id, exc)
        return False
    known = set(
        Batch.objects.filter(provider_id__in=[s.id for s in listed]).values_list(
            "provider_id", flat=True
        )
    )
    first, _ = poll_bounds()
    for status in listed:
        if status.id in known or _request_total(status) != batch.request_count:
            continue
        try:
            with transaction.atomic():
                n = Batch.objects.filter(
                    id=batch_id, state=Batch.State.SUBMITTING, provider_id=None
                ).update(
                    provider_id=status.id,
                    state=Batch.State.IN_PROGRESS,
                    poll_interval=first,
                    next_poll_at=now,
                    error="",
                )
        except IntegrityError:  # another batch adopted it at the same moment
            continue
        if n == 1:
            log.warning("job=%s batch=%s adopted provider=%s after an unconfirmed submit",
                        batch.job_id, batch_id, status.id)  # fmt: skip
            return True
        return False
    reason = reason or "submission was never confirmed"
    with transaction.atomic():
        if not Batch.objects.filter(
            id=batch_id, state=Batch.State.SUBMITTING, provider_id=None
        ).update(state=Batch.State.FAILED, ended_at=now, error=reason[:5000]):
            return False
        unsent = Item.objects.filter(batch_id=batch_id, state=Item.State.SUBMITTED)
        outcome = _error_outcome("errored", reason)
        apply_outcomes(
            job=batch.job,
            batch_id=batch_id,
            pairs=[(item, outcome) for item in unsent.only("id", "note_id", "attempts")],
        )
    log.warning("job=%s batch=%s not found at the provider: items sent back (%s)",
                batch.job_id, batch_id, reason)  # fmt: skip
    return False


def batch_poll(*, batch_id: int, builder: RequestBuilder | None = None) -> str:
    """Poll one submitted batch; when it has ended, apply its results. Returns its state."""
    batch = Batch.objects.select_related("job").get(id=batch_id)
    if batch.state in (Batch.State.IN_PROGRESS, Batch.State.CANCELING):
        first, longest = poll_bounds()
        now = timezone.now()
        try:
            status = client.get_batch(batch.provider_id)
        except client.ApiError as exc:
            log.warning("job=%s batch=%s poll failed: %s", batch.job_id, batch_id, exc)
            interval = min(max(batch.poll_interval, first) * 2, longest)
            Batch.objects.filter(id=batch_id).update(
                poll_interval=interval, next_poll_at=now + timedelta(seconds=interval)
            )
            return batch.state
        counts = dict(getattr(status, "request_counts", None) or {})
        if status.processing_status != "ended":
            interval = min(max(batch.poll_interval, first) * 1.5, longest)
            Batch.objects.filter(id=batch_id, state=batch.state).update(
                request_counts=counts,
                poll_interval=interval,
                next_poll_at=now + timedelta(seconds=interval),
            )
            log.debug("job=%s batch=%s polled %s next in %.1fs",
                      batch.job_id, batch_id, counts, interval)  # fmt: skip
            return batch.state
        Batch.objects.filter(id=batch_id, state=batch.state).update(
            state=Batch.State.ENDED, request_counts=counts, ended_at=now
        )
        log.info("job=%s batch=%s ended %s", batch.job_id, batch_id, counts)
        batch.refresh_from_db()
    if batch.state == Batch.State.ENDED:
        batch_apply_results(batch_id=batch_id, builder=builder)
        batch.refresh_from_db()
    return batch.state


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def batch_apply_results(*, batch_id: int, builder: RequestBuilder | None = None) -> int:
    """Stream an ended batch's results onto its items, a chunk per transaction.

    Each result is matched by custom_id -> Item row (never by position); a result whose id
    is unknown, or belongs to an item no longer waiting in this batch, is logged and ignored.
    Items that got no result are sent back for another attempt. Returns results applied.
    """
    batch = Batch.objects.select_related("job").get(id=batch_id)
    job = batch.job
    fields = list(job.fields)
    applied = 0
    results = client.iter_results(
        batch.provider_id,
        fields_for=lambda custom_id: fields,
        candidates_for=(builder or RequestBuilder(job)).candidates_lookup(batch),
    )
    for chunk in _chunks(results, APPLY_CHUNK):
        wanted = [custom_id for custom_id, _ in chunk]
        rows = Item.objects.filter(custom_id__in=wanted).values_list(
            "custom_id", "id", "note_id", "job_id", "batch_id", "attempts", "state"
        )
        items = {row[0]: row[1:] for row in rows}
        pairs = []
        for custom_id, outcome in chunk:
            found = items.get(custom_id)
            if found is None or found[2] != job.id:
                log.warning("job=%s batch=%s result for unknown custom_id=%r ignored",
                            job.id, batch_id, custom_id)  # fmt: skip
                continue
            item_id, note_id, _, item_batch, attempts, state = found
            if item_batch != batch.id or state != Item.State.SUBMITTED:
                log.info("job=%s batch=%s item=%s late result ignored (state=%s)",
                         job.id, batch_id, item_id, state)  # fmt: skip
            else:
                pairs.append((ItemRef(item_id, note_id, attempts), outcome))
        applied += apply_outcomes(job=job, batch_id=batch.id, pairs=pairs)
    with transaction.atomic():
        if Batch.objects.filter(id=batch_id, state=Batch.State.ENDED).update(
            state=Batch.State.APPLIED
        ):
            lost = _error_outcome("errored", "the batch returned no result for it")
            leftovers = Item.objects.filter(batch_id=batch_id, state=Item.State.SUBMITTED)
            apply_outcomes(
                job=job,
                batch_id=batch_id,
                pairs=[(item, lost) for item in leftovers.only("id", "note_id", "attempts")],
            )
    log.info("job=%s batch=%s results applied=%s", job.id, batch_id, applied)
    return applied


def batch_run(*, job: Job, deadline: float | None = None) -> float | None:
    """Batch mode: one pass of reconcile, prepare, submit, poll, apply, retry."""
    if job.state == Job.State.CANCELED:
        return None
    stale = submit_stale_seconds()
    cutoff = timezone.now() - timedelta(seconds=stale)
    for batch_id in Batch.objects.filter(
        job=job, state=Batch.State.SUBMITTING, provider_id=None, submitted_at__lt=cutoff
    ).values_list("id", flat=True):
        batch_reconcile(batch_id=batch_id, stale_after=stale)

    items_requeue(job=job)
    _fail_uncuratable(job=job)
    builder = None
    pending = Item.objects.filter(job=job, state=Item.State.PENDING, batch=None)
    if pending.exists():
        builder = RequestBuilder(job)
        retry_one = pending.count() == 1 and job.batches.exists()
        if retry_one:
            # A single retry goes out as one real-time call rather than a batch of one.
            item = pending.select_related("note").first()
            if item is not None:
                item_send(item=item, job=job, builder=builder)
        else:
            batches_prepare(job=job, builder=builder, submit=True, deadline=deadline)

    for batch_id in Batch.objects.filter(job=job, state=Batch.State.PREPARING).values_list(
        "id", flat=True
    ):
        if deadline is not None and time.monotonic() >= deadline:
            return 0.0
        builder = builder or RequestBuilder(job)
        batch_submit(batch_id=batch_id, builder=builder)

    now = timezone.now()
    for batch in Batch.objects.filter(
        job=job, state__in=[Batch.State.IN_PROGRESS, Batch.State.CANCELING, Batch.State.ENDED]
    ).only("id", "state", "next_poll_at"):
        if deadline is not None and time.monotonic() >= deadline:
            return 0.0
        if batch.state != Batch.State.ENDED and batch.next_poll_at and batch.next_poll_at > now:
            continue
        builder = builder or RequestBuilder(job)
        batch_poll(batch_id=batch.id, builder=builder)

    job_items = Item.objects.filter(job=job)
    if job_items.filter(state__in=RETRY_STATES).exists() or job_items.filter(
        state=Item.State.PENDING, batch=None
    ).exists():
        return 0.0
    waiting = Batch.objects.filter(job=job, state__in=ACTIVE_BATCH_STATES)
    if not waiting.exists():
        if job_items.filter(state=Item.State.SUBMITTED, batch=None).exists():
            return poll_bounds()[0]  # a real-time retry is in another worker's hands
        return None
    first, _ = poll_bounds()
    due = [
        b.next_poll_at
        for b in waiting.filter(state__in=[Batch.State.IN_PROGRESS, Batch.State.CANCELING])
    ]
    if len(due) < waiting.count():
        return first  # a batch is being prepared or submitted elsewhere
    soonest = min((d for d in due if d is not None), default=timezone.now())
    return max(0.0, (soonest - timezone.now()).total_seconds())


def _parallel_run(*, job: Job, deadline: float | None = None) -> float | None:
    from curation import parallel  # imports this module, so it is imported on use

    return parallel.parallel_run(job=job, deadline=deadline)


def _batch_run_hedged(*, job: Job, deadline: float | None = None) -> float | None:
    from curation import parallel

    return parallel.batch_run_hedged(job=job, deadline=deadline)


# Each mode's runner: `runner(job=, deadline=) -> seconds until next pass, or None when it has
# nothing left to do`. Parallel mode and the hedge of a late batch job live in
# curation.parallel (issue 6); the hedged batch runner is batch_run until the hedge is due.
RUNNERS: dict[str, Callable[..., float | None]] = {
    Mode.SYNC: sync_run,
    Mode.PARALLEL: _parallel_run,
    Mode.BATCH: _batch_run_hedged,
}

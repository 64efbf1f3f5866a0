"""What a job will cost, counted on the requests as they will be sent, before anything is sent."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import Least, Length

from curation.api import client, pricing, prompt
from curation.engine import consolidation
from curation.engine.requests import RequestBuilder
from curation.engine.selection import id_ranges, ranges_q
from curation.models import Job
from ingest.models import Note

log = logging.getLogger(__name__)

SAMPLE = 20  # requests counted with count_tokens; the others are inferred from their note's size
# Up to EXACT_UP_TO notes, every note's body length is read and the line through SAMPLE counted
# requests is applied to each. Above, nothing is read per note: LARGE_SAMPLE requests are built
# and counted, their candidates and taxonomy drawn from INDEX_SAMPLE notes of the selection
# (not the whole vault's index), and the line is applied to the selection's total stored size
# (one aggregate), so the curate form answers at once over 100,000 notes.
EXACT_UP_TO = 200
LARGE_SAMPLE = 50
INDEX_SAMPLE = 500
COUNT_AT_ONCE = 8
CHUNK = 2000
# Tokens of one answer (a record_curation tool call), per field asked, plus the tool call's own
# JSON. Output cannot be counted before it exists: these are the expected size of an answer
# the schema allows (tags: up to 8 short paths; description: one sentence; related: up to 5
# link names). On the demo vault the emulator answers 86 tokens on average (65 to 116).
OUTPUT_TOKENS = {"tags": 25, "description": 30, "related": 20}
OUTPUT_WRAPPER_TOKENS = 20
# Inside a batch, caching is best effort (the batch docs report hit rates "from 30% to 98%"):
# the estimate takes the low end for a cacheable prefix.
BATCH_CACHE_HIT_SHARE = Decimal("0.3")


@dataclass(frozen=True)
class Estimate:
    cost: Decimal  # US dollars for every item's first attempt
    input_tokens: int  # per note, as count_tokens counts the request
    cached_tokens: int  # of which the cacheable prefix (0 when below the model's minimum)
    output_tokens: int  # per note, expected
    sampled: int  # requests counted
    counted_by: str  # "count_tokens", or "local" when the API could not be asked


class _Unsaved:
    """The one Item attribute a request needs, for a note no item exists for yet."""

    def __init__(self, custom_id: str):
        self.custom_id = custom_id


def _even_sample(ids: list[int], k: int) -> list[int]:
    if len(ids) <= k:
        return list(ids)
    step = len(ids) / k
    return [ids[int(i * step + step / 2)] for i in range(k)]


def _body_chars(ids: list[int]) -> dict[int, int]:
    """Each note's body length as the request carries it (bodies are cut at MAX_BODY_CHARS)."""
    sizes: dict[int, int] = {}
    cap = prompt.MAX_BODY_CHARS
    for start in range(0, len(ids), CHUNK):
        rows = Note.objects.filter(id__in=ids[start : start + CHUNK]).annotate(
            chars=Least(Length("body"), cap)
        ).values_list("id", "chars")
        sizes.update((nid, int(chars or 0)) for nid, chars in rows)
    return sizes


def _stored_sizes(ids: list[int]) -> dict[int, int]:
    """Each note's stored file size, capped as the request caps its body."""
    rows = Note.objects.filter(id__in=ids).annotate(
        chars=Least("size", prompt.MAX_BODY_CHARS)
    ).values_list("id", "chars")
    return {nid: int(chars or 0) for nid, chars in rows}


def _stored_size_total(ids: list[int]) -> int:
    """The sum of _stored_sizes over the selection: one aggregate per RANGES_PER_QUERY runs of
    consecutive ids (one query for a "select all"), never a read of the notes themselves."""
    total = 0
    for condition in ranges_q(id_ranges(ids), "id"):
        agg = Note.objects.filter(condition).aggregate(
            total=Sum(Least("size", prompt.MAX_BODY_CHARS))
        )
        total += int(agg["total"] or 0)
    return total


def _count_all(requests: list[dict]) -> tuple[list[int], str]:
    """Each request's input tokens by count_tokens, COUNT_AT_ONCE calls at a time (a web
    request waits for the estimate); all counted locally when the endpoint fails."""
    try:
        with ThreadPoolExecutor(max_workers=COUNT_AT_ONCE) as pool:
            return list(pool.map(client.count_tokens, requests)), "count_tokens"
    except client.ApiError as exc:
        log.warning("count_tokens unavailable (%s): counting requests locally", exc)
        return [prompt.local_token_count(params) for params in requests], "local"


def output_tokens(fields) -> int:
    return OUTPUT_WRAPPER_TOKENS + sum(OUTPUT_TOKENS.get(f, 0) for f in fields)


def job_estimate(*, note_ids: list[int], fields, model: str, batch: bool,
                 sample: int = SAMPLE) -> Estimate:
    """Dollars for one attempt of every note, counted on up to `sample` real requests.

    Raises pricing.UnknownPrice before anything else when the model has no known price.
    The sampled requests are built exactly as the job will send them (instructions, tool
    schema, taxonomy, candidates, note text) and counted by the API's free count_tokens
    endpoint; the other notes' requests are inferred from their body length (a least-squares
    line through the sample). Above EXACT_UP_TO notes, LARGE_SAMPLE requests are counted and
    the line is applied to the notes' stored sizes instead (see EXACT_UP_TO). Output tokens
    are the expected size of one answer.
    """
    return job_estimates(note_ids=note_ids, fields=fields, model=model, sample=sample)[batch]


def job_estimates(*, note_ids: list[int], fields, model: str,
                  sample: int = SAMPLE) -> dict[bool, Estimate]:
    """job_estimate for both modes at once, {batch: Estimate}: the requests are counted once
    (the curate form shows the batch and the real-time price side by side)."""
    pricing.price_for(model)  # no price, no estimate: raises UnknownPrice
    n = len(note_ids)
    out = output_tokens(fields)
    if n == 0:
        return {b: Estimate(Decimal(0), 0, 0, out, 0, "none") for b in (True, False)}
    ids = sorted(note_ids)
    large = n > EXACT_UP_TO
    picked = _even_sample(ids, max(sample, LARGE_SAMPLE) if large else sample)
    job = Job(fields=list(fields), model=model)
    # A large selection's requests draw candidates and taxonomy from some of its notes (the
    # sampled ones among them), not from an index of the whole vault.
    index_notes = sorted({*_even_sample(ids, INDEX_SAMPLE), *picked}) if large else None
    builder = RequestBuilder(job, index_notes=index_notes)
    built = {note.id: builder.params(_Unsaved(f"estimate_{note.id}"), note)
             for note in Note.objects.filter(id__in=picked).order_by("id")}
    tokens, how = _count_all(list(built.values()))
    counted = dict(zip(built, tokens, strict=True))
    first_params = next(iter(built.values()), None)
    if n <= len(picked):
        total = sum(counted.values())
    else:
        if large:  # the sample's stored sizes, and the selection's total in one aggregate
            sizes, size_total = _stored_sizes(list(counted)), _stored_size_total(ids)
        else:
            sizes = _body_chars(note_ids)
            size_total = sum(sizes.values())
        xs = [sizes.get(i, 0) for i in counted]
        ys = list(counted.values())
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = max(0.0, sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var) if var else 0.0
        total = n * my + slope * (size_total - n * mx)
    per_note = total / n
    prefix = _cached_prefix(first_params, model) if first_params else 0
    prefix = min(prefix, int(per_note))
    estimates = {}
    for batch in (True, False):
        if prefix:
            share = BATCH_CACHE_HIT_SHARE if batch else Decimal(1)
            reads = Decimal(prefix) * share * (n - 1) / n
            writes = Decimal(prefix) - reads
        else:
            reads = writes = Decimal(0)
        usage = {"input_tokens": Decimal(str(round(per_note, 3))) - prefix,
                 "output_tokens": Decimal(out),
                 "cache_creation_input_tokens": writes, "cache_read_input_tokens": reads}
        cost = pricing.cost(usage, model=model, batch=batch) * n
        estimates[batch] = Estimate(cost, round(per_note), prefix, out, len(counted), how)
    return estimates


def _cached_prefix(params: dict, model: str) -> int:
    """Tokens of the marked prefix (tools and system up to the last cache_control block) when
    it reaches the model's minimum cacheable length; 0 when nothing would be cached."""
    system = params.get("system")
    if not isinstance(system, list):
        return 0
    marks = [i for i, block in enumerate(system) if isinstance(block, dict)
             and block.get("cache_control")]
    if not marks:
        return 0
    probe = [{"role": "user", "content": "."}]
    with_prefix = {"model": model, "system": system[: marks[-1] + 1],
                   "tools": params.get("tools") or [], "messages": probe}
    (with_it, without), _ = _count_all([with_prefix, {"model": model, "messages": probe}])
    tokens = with_it - without
    return tokens if tokens >= pricing.cache_minimum(model) else 0


MERGE_TOKENS = 20  # answer tokens per tag listed, at most the request's max_tokens


def consolidation_estimates(*, parts: list[list], model: str) -> dict[bool, Decimal]:
    """Dollars for one attempt of every part of a consolidation job, {batch: cost}: each
    request counted as it will be sent (count_tokens, or locally when the endpoint fails), its
    answer at MERGE_TOKENS per tag listed. Raises pricing.UnknownPrice first."""
    pricing.price_for(model)
    ranked = consolidation.ranked_tags(parts)
    requests = [consolidation.part_params(part, ranked=ranked, model=model) for part in parts]
    tokens, _ = _count_all(requests)
    costs = {}
    for batch in (True, False):
        costs[batch] = sum(
            (
                pricing.cost(
                    {"input_tokens": counted,
                     "output_tokens": min(MERGE_TOKENS * len(part), params["max_tokens"])},
                    model=model, batch=batch,
                )
                for part, params, counted in zip(parts, requests, tokens, strict=True)
            ),
            Decimal(0),
        )  # fmt: skip
    return costs

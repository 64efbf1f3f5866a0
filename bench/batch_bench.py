"""Batch job throughput: 100,000 items prepared into batch requests, 100,000 results applied.

    .venv/bin/python bench/batch_bench.py [--items 100000] [--batch-size 100] [--fields ...]

Runs the real job services (`job_create`, `batches_prepare`, `batch_submit`,
`batch_apply_results`) on a temp SQLite database (or DATABASE_URL). Only the provider is
stubbed in-process: `submit_batch` consumes the request stream as the SDK would and
`iter_results` streams one answer per custom_id, shuffled, so what is measured is this app's
own work (building requests, claiming rows, matching results by custom_id, saving items and
suggestions). The baseline is a bare loop over the same notes in memory that builds the same
request dicts (prepare) or the same Outcome objects and suggestion dicts (apply): the ratio
says what the database round trips cost on top. Targets: >= 5,000 items/s each way and a
peak RSS <= 300 MB. Wall-clock rates depend on what else the machine runs, so the CPU time
of this process is reported beside them (with the load average at the end of the run).
`--profile prepare|apply` prints where the time goes (BENCH_SORT=cumulative, BENCH_LINES=60
to change its order and length).
"""

import argparse
import contextlib
import gc
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATE = 5000
TARGET_RSS_MB = 300
WORDS = (
    "agents memory retrieval vector index python django batch queue worker cache prompt "
    "embedding graph search ranking tagging summary vault markdown obsidian frontmatter"
).split()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--fields", default="tags,description,related")
    parser.add_argument("--profile", choices=["prepare", "apply"], help="print a cProfile of it")
    parser.add_argument(
        "--analyze", action="store_true",
        help="ANALYZE the database before applying, as autovacuum would have in the minutes to "
        "hours a batch takes (a server with autovacuum off never has statistics otherwise)",
    )  # fmt: skip
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ.setdefault("VAULTCMS_LOG_LEVEL", "WARNING")
    # Production settings: DEBUG on would log every query and skew the numbers.
    os.environ.setdefault("VAULTCMS_DEBUG", "0")
    os.environ.setdefault("VAULTCMS_SECRET_KEY", "batch-bench-only-not-a-secret")
    os.environ["CURATION_BATCH_SIZE"] = str(args.batch_size)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from curation.api import client, pricing, prompt
    from curation.engine import batch as batch_mode
    from curation.engine import jobs, requests
    from curation.models import Batch, Item, Suggestion
    from ingest.models import Note, Vault

    fields = args.fields.split(",")
    n = args.items
    rng = random.Random(7)

    # --- the data: n notes of ~1 KB with a few tags ------------------------------------------
    vault = Vault.objects.create(name=f"bench-{time.time_ns()}", root=str(work))
    for start in range(0, n, 5000):
        rows = []
        for i in range(start, min(start + 5000, n)):
            words = rng.sample(WORDS, 6)
            sentences = [f"The {w} note {i} talks about {words[1]} and {words[2]}." for w in words]
            body = f"# {words[0].title()} {i}\n\n" + " ".join(sentences) * 4
            rows.append(
                Note(
                    vault=vault, path=f"folder{i % 50}/{words[0]} {words[1]} {i}.md",
                    folder=f"folder{i % 50}", title=f"{words[0]} {words[1]} {i}", body=body,
                    tags=[f"topic/{words[3]}", words[4]], size=len(body),
                )
            )  # fmt: skip
        Note.objects.bulk_create(rows)
    del rows

    started = time.perf_counter()
    job = jobs.job_create(
        notes=Note.objects.filter(vault=vault), fields=fields, mode="batch", selection="bench",
        max_cost=0,  # no budget: 100,000 notes cost more than the default maximum
    )
    create_s = time.perf_counter() - started

    # --- baseline: the same request dicts from notes already in memory ------------------------
    sample = list(Note.objects.filter(vault=vault).order_by("id")[:10_000])
    builder = requests.RequestBuilder(job)
    builder.index(vault.id)  # built once per job in the real path too
    started = time.perf_counter()
    for note in sample:
        params = prompt.build_request(
            prompt.NoteInput(
                custom_id="item_00000000_x", name=note.name, path=note.path, title=note.title,
                body=note.body, tags=note.tags, fields=fields,
                candidates=builder.candidates(note), taxonomy=builder.taxonomy(vault.id),
            ),
            model=job.model,
        )  # fmt: skip
        prompt.request_size(params)
    base_prepare_rate = len(sample) / (time.perf_counter() - started)
    del sample, builder  # one candidate index at a time, as in a worker
    gc.collect()

    # --- prepare: plan batches (each request built and sized) + build them again to submit ----
    submitted = {}

    def fake_submit(requests):
        count = 0
        for _custom_id, _params in requests:  # consume the stream like the SDK would
            count += 1
        provider_id = f"msgbatch_bench_{vault.id}_{len(submitted):06d}"  # unique per run
        submitted[provider_id] = count
        return client.BatchStatus(
            id=provider_id, processing_status="in_progress",
            request_counts={"processing": count}, ended_at=None,
        )  # fmt: skip

    client.submit_batch = fake_submit
    started, cpu = time.perf_counter(), time.process_time()
    builder = requests.RequestBuilder(job)
    builder.index(vault.id)  # the job's candidate index and taxonomy, built once
    with profiled(args.profile == "prepare"):
        batch_ids = batch_mode.batches_prepare(job=job, builder=builder, submit=True)
    prepare_s = time.perf_counter() - started
    prepare_cpu = time.process_time() - cpu
    del builder
    gc.collect()
    assert sum(submitted.values()) == n, "every item must be submitted exactly once"
    assert max(submitted.values()) <= min(args.batch_size, 100_000)

    # --- apply: results streamed per batch, shuffled, matched by custom_id ----------------------
    usage = {"input_tokens": 900, "output_tokens": 120, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 700}  # fmt: skip

    def outcome_for(custom_id):
        answer = prompt.Answer(
            tags=["ai/agents", f"bench/{custom_id[-4:]}"] if "tags" in fields else None,
            description=(
                f"What {custom_id} is about, in one sentence." if "description" in fields else None
            ),
            related=[] if "related" in fields else None,
        )  # fmt: skip
        raw = {"id": "msg_" + custom_id, "type": "message", "role": "assistant",
               "content": [{"type": "tool_use", "name": "record_curation", "input": {}}],
               "usage": usage}  # fmt: skip
        return client.Outcome(state="succeeded", answer=answer, usage=dict(usage), raw=raw)

    ids_by_provider = {}
    for provider_id, custom_ids in _custom_ids(Item, Batch, job):
        ids_by_provider[provider_id] = custom_ids

    def fake_results(batch_id, *, fields_for, candidates_for, tags_for=None):
        custom_ids = list(ids_by_provider[batch_id])
        rng.shuffle(custom_ids)
        for custom_id in custom_ids:
            fields_for(custom_id)
            candidates_for(custom_id)
            yield custom_id, outcome_for(custom_id)

    client.iter_results = fake_results

    started = time.perf_counter()
    sample_ids = [cid for ids in list(ids_by_provider.values())[:100] for cid in ids][:10_000]
    for custom_id in sample_ids:
        o = outcome_for(custom_id)
        [{"field": f, "value": getattr(o.answer, f)} for f in fields]
        pricing.cost(o.usage, model=job.model, batch=True)
    base_apply_rate = len(sample_ids) / (time.perf_counter() - started)

    started, cpu = time.perf_counter(), time.process_time()
    Batch.objects.filter(job=job).update(state=Batch.State.ENDED)
    if args.analyze:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    applied = 0
    apply_builder = requests.RequestBuilder(job)
    with profiled(args.profile == "apply"):
        for batch_id in Batch.objects.filter(job=job).values_list("id", flat=True):
            applied += batch_mode.batch_apply_results(batch_id=batch_id, builder=apply_builder)
    apply_s = time.perf_counter() - started
    apply_cpu = time.process_time() - cpu
    assert applied == n, f"applied {applied} of {n}"
    assert Item.objects.filter(job=job, state=Item.State.SUCCEEDED).count() == n
    assert Suggestion.objects.filter(job=job).count() == n * len(fields)
    jobs.job_step(job_id=job.id)
    job.refresh_from_db()
    assert job.state == "succeeded", job.state

    prepare_rate = n / prepare_s
    apply_rate = n / apply_s
    rss = peak_rss_mb()
    print(f"batch_bench: {n} items, batch size {args.batch_size}, fields {','.join(fields)}, "
          f"database {Item.objects.db}:{os.environ['DATABASE_URL'].split(':')[0]}")  # fmt: skip
    print(f"  job_create          {n / create_s:10.0f} items/s  ({create_s:.1f} s)")
    print(f"  prepare + submit    {prepare_rate:10.0f} items/s  ({prepare_s:.1f} s, "
          f"{len(batch_ids)} batches)  baseline {base_prepare_rate:.0f}/s  "
          f"ratio {prepare_rate / base_prepare_rate:.2f}")  # fmt: skip
    print(f"  apply results       {apply_rate:10.0f} items/s  ({apply_s:.1f} s)  baseline "
          f"{base_apply_rate:.0f}/s  ratio {apply_rate / base_apply_rate:.3f}")  # fmt: skip
    print(f"  CPU-time rates      prepare {n / prepare_cpu:.0f} items/s, apply "
          f"{n / apply_cpu:.0f} items/s (this process only; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")  # fmt: skip
    print(f"  peak RSS            {rss:10.0f} MB")
    ok = prepare_rate >= TARGET_RATE and apply_rate >= TARGET_RATE and rss <= TARGET_RSS_MB
    print(f"  targets (>= {TARGET_RATE} items/s each way, <= {TARGET_RSS_MB} MB): "
          f"{'met' if ok else 'NOT met'}")  # fmt: skip
    return 0 if ok else 1


@contextlib.contextmanager
def profiled(enabled: bool):
    if not enabled:
        yield
        return
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        pstats.Stats(profile).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(int(os.environ.get("BENCH_LINES", "30")))


def _custom_ids(Item, Batch, job):
    """(provider id, [custom ids]) per batch, read in one pass ordered by batch."""
    current, ids = None, []
    rows = (
        Item.objects.filter(job=job)
        .order_by("batch_id", "id")
        .values_list("batch__provider_id", "custom_id")
        .iterator(chunk_size=5000)
    )
    for provider_id, custom_id in rows:
        if provider_id != current and ids:
            yield current, ids
            ids = []
        current = provider_id
        ids.append(custom_id)
    if ids:
        yield current, ids


if __name__ == "__main__":
    sys.exit(main())

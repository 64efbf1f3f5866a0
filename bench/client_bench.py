"""Client layer and emulator speed: preparing requests for a big job, and the emulator over HTTP.

    .venv/bin/python bench/client_bench.py [--notes 100000] [--calls 300] [--batch 10000]

1. Prepare: a candidate index over N synthetic notes (built once), then per note its
   candidates, build_request and request_size, as the job engine does. Target: >= 5,000
   requests/s overall (CPU time). Baseline: a bare loop building a minimal request dict with
   the same body per note; the ratio says what candidates, prompt and sizing cost on top.
2. Emulator: real-time calls through the SDK (sync), and one batch of B requests submitted,
   then its results streamed and validated by the client. Baseline: GET /_emulator/stats
   through the same SDK connection pool (the HTTP round trip with no work behind it).
No database is used.
"""

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATE = 5000
WORDS = (
    "agents memory retrieval vector index python django batch queue worker cache prompt "
    "embedding graph search ranking tagging summary vault markdown obsidian frontmatter"
).split()


def synthetic(n: int, rng: random.Random):
    vocab = WORDS + [f"term{i}" for i in range(5000)]
    tags = [f"{a}/{b}" for a in WORDS[:10] for b in WORDS[10:]]
    rows = []
    for i in range(n):
        title = " ".join(rng.sample(vocab, 3)).title()
        rows.append((f"folder{i % 300}/{title} {i}.md", title, rng.sample(tags, 2)))
    body = " ".join(rng.choice(WORDS) for _ in range(400)) + "."
    return rows, body


def bench_prepare(n: int) -> bool:
    from curation.api import prompt
    from curation.engine.candidates import build_index, candidates_for
    from ingest import notes

    rows, body = synthetic(n, random.Random(1))
    fields = ["tags", "description", "related"]
    clock = time.process_time

    start = clock()
    for path, _title, _tags in rows:
        params = {"model": "m", "max_tokens": 1024,
                  "messages": [{"role": "user", "content": f"Note path: {path}\n{body}"}]}
    baseline = clock() - start

    start = clock()
    index = build_index(rows)
    taxonomy = index.taxonomy()
    built = clock() - start
    for path, title, tags in rows:
        note = prompt.NoteInput(custom_id="c", name=notes.link_name(path), path=path,
                                title=title, body=body, tags=tags, fields=fields,
                                candidates=candidates_for(path, index), taxonomy=taxonomy)
        params = prompt.build_request(note, model="claude-haiku-4-5")
        prompt.request_size(params)
    total = clock() - start
    rate = n / total
    print(f"prepare: {n} notes, index {built:.2f}s, total {total:.2f}s CPU -> {rate:,.0f} req/s "
          f"(target >= {TARGET_RATE:,}); baseline {n / baseline:,.0f}/s, ratio "
          f"{total / baseline:.1f}x")
    return rate >= TARGET_RATE


def bench_emulator(calls: int, batch: int) -> None:
    import anthropic

    from curation.api import client, prompt
    from curation.emulator import Emulator
    from ingest import notes

    emu = Emulator(batch_seconds=0).start()
    os.environ["ANTHROPIC_BASE_URL"] = emu.url
    os.environ["ANTHROPIC_API_KEY"] = "bench"
    client.reset_clients()
    sdk = client.sync_client()
    rows, body = synthetic(max(calls, batch), random.Random(2))
    fields = ["tags", "description", "related"]

    def params(i):
        path, title, tags = rows[i]
        note = prompt.NoteInput(custom_id=f"c{i}", name=notes.link_name(path), path=path,
                                title=title, body=body, tags=tags, fields=fields,
                                candidates=[r[0] for r in rows[i + 1:i + 6]], taxonomy=[])
        return prompt.build_request(note, model="claude-haiku-4-5")

    start = time.perf_counter()
    for _ in range(calls):
        sdk.get("/_emulator/stats", cast_to=object)
    baseline = (time.perf_counter() - start) / calls

    start = time.perf_counter()
    for i in range(calls):
        client.send_one(params(i), fields=fields, candidates=[])
    per_call = (time.perf_counter() - start) / calls
    print(f"emulator: {calls} real-time calls, {1 / per_call:,.0f} calls/s; baseline round trip "
          f"{1 / baseline:,.0f}/s, ratio {per_call / baseline:.1f}x")

    requests = [(f"c{i}", params(i)) for i in range(batch)]
    start = time.perf_counter()
    status = client.submit_batch(requests)
    submitted = time.perf_counter() - start
    start = time.perf_counter()
    n = sum(1 for _ in client.iter_results(status.id, fields_for=lambda c: fields,
                                           candidates_for=lambda c: []))
    streamed = time.perf_counter() - start
    print(f"emulator: batch of {batch} submitted in {submitted:.2f}s, {n} results streamed and "
          f"validated at {n / streamed:,.0f}/s")
    sdk.close()
    emu.stop()
    assert isinstance(sdk, anthropic.Anthropic)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ.setdefault("VAULTCMS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import logging

    logging.getLogger("httpx2").setLevel(logging.WARNING)
    ok = bench_prepare(args.notes)
    bench_emulator(args.calls, args.batch)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

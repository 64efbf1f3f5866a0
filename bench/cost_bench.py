"""Tokens billed per note, by prompt shape: 100 and 1,000 notes with a 300-tag taxonomy.

    .venv/bin/python bench/cost_bench.py [--notes 100,1000] [--tags 300] [--model claude-haiku-4-5]

Shapes: "relevant" (the app's: each message lists the existing tags that may fit its note),
"full" (the whole taxonomy in a cache-marked system prompt) and "padded" (that prompt grown to
the model's minimum cacheable prefix, so it is cached). Sends every request through the real
client and SDK to the built-in emulator (in this
process), which bills as the API does: a `cache_control` prefix is cached only from the
model's minimum cacheable length, an entry lives 5 minutes, caching inside a batch is best
effort. Prints, per prompt shape and mode, the tokens billed per note (input, cache writes,
cache reads, output) and their input-equivalent (dollars / the model's input price), beside
the seed article's 1,028 notes for about $1.50 in batch with Claude Haiku 3.5.
"""

import argparse
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The seed article (shared/seed): 1,028 notes for about $1.50 with Claude Haiku 3.5 in batch,
# whose batch input price was $0.40 / MTok.
SEED_NOTES, SEED_DOLLARS, SEED_INPUT_PRICE = 1028, Decimal("1.50"), Decimal("0.40")
# relevant: the tags that may fit each note, in its message (the app's shape); full: the whole
# taxonomy in a cache-marked system prompt (under Haiku 4.5's minimum: never cached); padded:
# the same prefix grown to the minimum, so that it is cached (batch: best effort).
SHAPES = ("relevant", "full", "padded")
WORDS = (
    "agents memory retrieval vector index python django batch queue worker cache prompt "
    "embedding graph search ranking tagging summary vault markdown obsidian frontmatter "
    "sourdough baking fermentation travel japan kyoto budget savings index-funds running "
    "strength sleep homelab proxmox backup network router kubernetes postgres redis"
).split()


def taxonomy(n_tags: int, rng: random.Random) -> list[str]:
    tags: list[str] = []
    while len(tags) < n_tags:
        depth = rng.choice((1, 2, 2, 3))
        tag = "/".join(rng.choice(WORDS) for _ in range(depth))
        if tag not in tags:
            tags.append(tag)
    return tags


def notes(n: int, tags: list[str], rng: random.Random):
    from curation.api.prompt import NoteInput

    paths = [f"topic-{i % 40}/Note {i:05d}.md" for i in range(n)]
    for i, path in enumerate(paths):
        words = rng.sample(WORDS, 8)
        body = " ".join(rng.choice(words) for _ in range(rng.randint(120, 420))) + ".\n"
        yield NoteInput(
            custom_id=f"note_{i:05d}", name=path.rsplit("/", 1)[-1][:-3], path=path,
            title=" ".join(words[:3]), body=body, tags=rng.sample(tags, 2),
            fields=["tags", "description", "related"],
            candidates=[p for p in rng.sample(paths, min(8, n)) if p != path][:8],
            taxonomy=tags,
        )


FILLER = ("Use the vault's own words for tags; keep them short, lower case and hierarchical. "
          "Describe what the note is about, not what it says about itself. ")


def padded(params: dict, minimum: int) -> dict:
    """The "full" request with its cached system prompt grown to the model's minimum cacheable
    prefix: what a cached prefix costs when it really is cached."""
    from curation.emulator.caching import split

    system = dict(params["system"][0])
    short = minimum + 16 - split(params).prefix
    if short > 0:
        system["text"] += "\n\n" + (FILLER * (short * 4 // len(FILLER) + 1))
    return {**params, "system": [system]}


def build(batch_notes, *, model: str, shape: str) -> list[tuple[str, dict]]:
    from curation.api import pricing, prompt

    if shape != "padded":
        return [(n.custom_id, prompt.build_request(n, model=model, shape=shape))
                for n in batch_notes]
    minimum = pricing.cache_minimum(model)
    return [(n.custom_id, padded(prompt.build_request(n, model=model, shape="full"), minimum))
            for n in batch_notes]


def run(batch_notes, *, model: str, shape: str, batch: bool) -> dict:
    """Send every note's request (batch or real time); the usage summed over the answers."""
    from curation.api import client, pricing

    requests = build(batch_notes, model=model, shape=shape)
    fields = {n.custom_id: n.fields for n in batch_notes}
    candidates = {n.custom_id: n.candidates for n in batch_notes}
    outcomes = []
    if batch:
        for start in range(0, len(requests), 100):
            status = client.submit_batch(requests[start : start + 100])
            while client.get_batch(status.id).processing_status != "ended":
                time.sleep(0.01)
            outcomes += [o for _, o in client.iter_results(
                status.id, fields_for=fields.__getitem__, candidates_for=candidates.__getitem__)]
    else:
        for custom_id, params in requests:
            outcomes.append(client.send_one(params, fields=fields[custom_id],
                                            candidates=candidates[custom_id]))
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
            "output_tokens")
    total = {k: sum(o.usage.get(k, 0) for o in outcomes) for k in keys}
    total["dollars"] = sum(pricing.cost(o.usage, model=model, batch=batch) for o in outcomes)
    total["ok"] = sum(o.ok for o in outcomes)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="100,1000")
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--model", default="claude-haiku-4-5")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ.setdefault("VAULTCMS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from curation.api import client, pricing
    from curation.emulator import Emulator

    emu = Emulator(latency=0, batch_seconds=0).start()
    os.environ["ANTHROPIC_BASE_URL"] = emu.url
    os.environ["ANTHROPIC_API_KEY"] = "cost-bench-not-a-key"
    client.reset_clients()
    rng = random.Random(14)
    tags = taxonomy(args.tags, rng)
    price = pricing.price_for(args.model)
    seed_per_note = SEED_DOLLARS / SEED_NOTES
    seed_equiv = seed_per_note / (SEED_INPUT_PRICE / pricing.MTOK)
    print(f"model {args.model}, {args.tags}-tag taxonomy, cache minimum "
          f"{pricing.cache_minimum(args.model)} tokens")
    print(f"seed article: {SEED_NOTES} notes for ~${SEED_DOLLARS} in batch with Claude Haiku 3.5"
          f" = ${seed_per_note:.5f} / note = {seed_equiv:,.0f} input-equivalent tokens / note")
    header = (f"{'notes':>6} {'shape':>9} {'mode':>5} {'input':>7} {'c.write':>7} {'c.read':>7} "
              f"{'output':>6} {'in-equiv':>8} {'$/note':>9} {'$ x 1,028':>9} {'vs seed':>7}")
    print(header)
    started = time.monotonic()
    try:
        for n in [int(x) for x in args.notes.split(",")]:
            batch_notes = list(notes(n, tags, random.Random(n)))
            for shape in SHAPES:
                for batch in (True, False):
                    emu.reset()
                    t = run(batch_notes, model=args.model, shape=shape, batch=batch)
                    if t["ok"] != n:
                        print(f"only {t['ok']} of {n} answers succeeded")
                        return 1
                    rate = price.input * (pricing.BATCH_DISCOUNT if batch else 1) / pricing.MTOK
                    per_note = t["dollars"] / n
                    print(f"{n:>6} {shape:>9} {'batch' if batch else 'sync':>5} "
                          f"{t['input_tokens'] / n:>7.0f} "
                          f"{t['cache_creation_input_tokens'] / n:>7.0f} "
                          f"{t['cache_read_input_tokens'] / n:>7.0f} {t['output_tokens'] / n:>6.0f} "
                          f"{per_note / rate:>8.0f} {per_note:>9.6f} {per_note * SEED_NOTES:>9.4f} "
                          f"{per_note / seed_per_note:>6.2f}x")
    finally:
        emu.stop()
    print(f"({time.monotonic() - started:.1f} s; in-equiv = dollars / the input price of the "
          f"mode; $ x 1,028 = the seed article's job at this price)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

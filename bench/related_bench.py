"""Related-note candidates: recall of the links authors wrote, today's index against the new one.

    .venv/bin/python bench/related_bench.py [--vault PATH ...] [--notes 100000]

On real vaults (the language folders of ../shared/corpus/obsidian-help, copied first, and
sample_vault), each note's own wikilinks to other notes of its vault are hidden (the note is
indexed without them) and candidates are ranked for it; recall@k is the share of the hidden
links found among the top k candidates, over all links. Side by side, in one run:

- today: the title-word index this project used before (bench/related_baseline.py);
- bm25: the new index with BM25 over the notes' words alone (bm25s);
- new: what the app uses (curation.engine.candidates): BM25 mixed with unlinked mentions,
  co-citation, backlinks, the links of the most alike notes, the folder and folder notes;
  `new, no backlinks` shows it without backlinks.

Then the time and memory to index: per real vault, and for a generated vault of --notes notes
(words drawn from a Zipf law, three random links each), with the peak RSS of this process
(the batch benchmark's bound is 300 MB). Target: new recall@10 >= 2x today's on obsidian-help,
printed for its language vaults' links together and for each vault.
Exits 1 only if the new index finds fewer links than today's somewhere.
"""

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CORPUS = ROOT.parent / "shared" / "corpus" / "obsidian-help"
TARGET_RATIO = 2.0
TARGET_RSS_MB = 300
KS = (5, 10)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_vault(root: Path) -> list[dict]:
    """Every note the importer would import, parsed by the importer's own functions."""
    from ingest import notes

    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(".md"):
                continue
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            try:
                parsed = notes.parse(full.read_bytes(), path=rel)
            except notes.NoteError:
                continue
            found.append({"path": rel, "title": parsed.title, "tags": parsed.tags,
                          "body": parsed.body})  # fmt: skip
    return found


def hidden_links(docs: list[dict]) -> dict[str, set[str]]:
    """Per note, the other notes of the vault its body links to (by name or path, any case)."""
    from ingest.notes import body_links, link_name

    def key(text: str) -> str:
        return unicodedata.normalize("NFC", text).casefold()

    by_key: dict[str, set[str]] = {}
    for doc in docs:
        bare = doc["path"][:-3]
        for k in {key(link_name(doc["path"])), key(bare)}:
            by_key.setdefault(k, set()).add(doc["path"])
    links = {}
    for doc in docs:
        found = set()
        for target in body_links(doc["body"]):
            k = key(target.strip().lstrip("/"))
            hit = by_key.get(k[:-3] if k.endswith(".md") else k, set())
            if len(hit) == 1 and doc["path"] not in hit:
                found |= hit
        links[doc["path"]] = found
    return links


def recall(ranked: dict[str, list[str]], hidden: dict[str, set[str]], k: int) -> float:
    hits = sum(len(set(ranked[p][:k]) & links) for p, links in hidden.items())
    total = sum(len(links) for links in hidden.values())
    return hits / total if total else 0.0


def rank_new(docs: list[dict], *, weights: dict | None = None) -> dict[str, list[str]]:
    """Leave one out: the note's own links hidden, everything else as the app would see it."""
    from curation.engine import candidates as c

    saved = {name: getattr(c, name) for name in (weights or {})}
    for name, value in (weights or {}).items():
        setattr(c, name, value)
    try:
        rows = [(d["path"], d["title"], d["tags"],
                 c.note_words(path=d["path"], title=d["title"], body=d["body"]),
                 c.note_links(d["body"])) for d in docs]  # fmt: skip
        ranked = {}
        for i, doc in enumerate(docs):
            without = list(rows)
            without[i] = rows[i][:4] + ("",)
            ranked[doc["path"]] = c.CandidateIndex.build(without).candidates(doc["path"],
                                                                            limit=max(KS))
        return ranked
    finally:
        for name, value in saved.items():
            setattr(c, name, value)


def rank_today(docs: list[dict]) -> dict[str, list[str]]:
    import related_baseline

    index = related_baseline.CandidateIndex.build(
        (d["path"], d["title"], d["tags"]) for d in docs
    )
    return {d["path"]: index.candidates(d["path"], limit=max(KS)) for d in docs}


BM25_ALONE = {"MENTION": 0, "MENTIONED": 0, "COCITED": 0, "LINKED_FROM": 0, "SAME_FOLDER": 0,
              "SIMILAR_LINKS": 0}


def bench_vault(label: str, root: Path) -> dict:
    from curation.engine import candidates as c

    docs = read_vault(root)
    hidden = hidden_links(docs)
    methods = {
        "today (title words)": rank_today(docs),
        "bm25 alone": rank_new(docs, weights=BM25_ALONE),
        "new, no backlinks": rank_new(docs, weights={"LINKED_FROM": 0}),
        "new": rank_new(docs),
    }
    started = time.perf_counter()
    index = c.CandidateIndex.build(docs)
    took = time.perf_counter() - started
    print(f"{label}: {len(docs)} notes, {sum(map(len, hidden.values()))} links hidden; "
          f"indexed in {took * 1000:.0f} ms")  # fmt: skip
    result = {}
    for name, ranked in methods.items():
        values = [recall(ranked, hidden, k) for k in KS]
        result[name] = values
        print(f"  {name:22s}" + "".join(f"  recall@{k} {v:.3f}" for k, v in zip(KS, values, strict=True)))
    today, new = result["today (title words)"][1], result["new"][1]
    ratio = new / today if today else float("inf")
    print(f"  recall@10 new / today: {ratio:.2f}x; new / bm25 alone: "
          f"{new / result['bm25 alone'][1] if result['bm25 alone'][1] else float('inf'):.2f}x"
          f"; notes with no candidates: {sum(not index.candidates(d['path']) for d in docs)}")
    result["links"] = sum(map(len, hidden.values()))
    return result


def pooled(results: list[dict]) -> dict[str, list[float]]:
    """Recall over the links of several vaults together (each vault's recall weighted by its
    links): the share of all their hidden links found."""
    links = sum(r["links"] for r in results)
    return {name: [sum(r[name][i] * r["links"] for r in results) / links for i in range(len(KS))]
            for name in results[0] if name != "links"}  # fmt: skip


def bench_scale(n: int) -> None:
    """Index time and memory for a generated vault of n notes."""
    from curation.engine import candidates as c

    rng = random.Random(5)
    syllables = "ka to ri mu sen lo va pi der qua zu mo ne shi ra te".split()
    vocabulary = ["".join(rng.choices(syllables, k=3)) for _ in range(60_000)]
    weights = [1 / (i + 1) ** 1.1 for i in range(len(vocabulary))]

    def rows():
        for i in range(n):
            words = rng.choices(vocabulary, weights=weights, k=180)
            path = f"folder{i % 200}/note {i} {words[0]}.md"
            body = " ".join(words)
            links = "\n".join(f"note {rng.randrange(n)}" for _ in range(3))
            yield (path, "", [f"t/{words[1]}"], c.note_words(path=path, title="", body=body),
                   links)  # fmt: skip

    before = peak_rss_mb()
    started = time.perf_counter()
    index = c.CandidateIndex.build(rows())
    took = time.perf_counter() - started
    started = time.perf_counter()
    sample = index.paths[:: max(1, n // 1000)]
    found = sum(len(index.candidates(p)) for p in sample)
    per_note = (time.perf_counter() - started) / len(sample)
    rss = peak_rss_mb()
    print(f"generated vault: {n} notes indexed in {took:.1f} s (words read from the text "
          f"included); {per_note * 1000:.2f} ms per note's candidates "
          f"({found / len(sample):.1f} each); peak RSS {rss:.0f} MB (was {before:.0f} MB "
          f"before), bound {TARGET_RSS_MB} MB: {'within' if rss <= TARGET_RSS_MB else 'OVER'}")
    with tempfile.TemporaryDirectory(prefix="related-index-") as folder:
        started = time.perf_counter()
        index.save(folder)
        saved = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(folder).iterdir()) / 2**20
        started = time.perf_counter()
        kept = c.CandidateIndex.load(folder)
        loaded = time.perf_counter() - started
        same = all(kept.candidates(p) == index.candidates(p) for p in sample[:200])
        print(f"  kept between jobs: saved in {saved:.1f} s ({size:.0f} MB on disk), loaded in "
              f"{loaded:.2f} s (mapped, not read); the loaded index answers the same: {same}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vault", action="append", help="a vault folder (default: the corpus)")
    parser.add_argument("--notes", type=int, default=100_000, help="generated vault size (0: none)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="related-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ.setdefault("VAULTCMS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    try:
        vaults = [(v, Path(v)) for v in args.vault or []]
        if not vaults:
            if CORPUS.is_dir():
                copy = work / "obsidian-help"
                shutil.copytree(CORPUS, copy)  # the corpus is read only and shared: work on a copy
                vaults += [(f"obsidian-help/{d.name}", d) for d in sorted(copy.iterdir())
                           if d.is_dir() and len(list(d.rglob("*.md"))) >= 20]  # fmt: skip
            else:
                print(f"(no corpus at {CORPUS}: only the sample vault)")
            vaults.append(("sample_vault", ROOT / "sample_vault"))
        worse = []
        helps = []
        for label, root in vaults:
            result = bench_vault(label, root)
            if result["new"][1] < result["today (title words)"][1]:
                worse.append(label)
            if label.startswith("obsidian-help") and result["links"]:
                helps.append((label.removeprefix("obsidian-help/"), result))
        if helps:
            together = pooled([r for _, r in helps])
            print(f"obsidian-help, the links of {', '.join(n for n, _ in helps)} together:")
            for name, values in together.items():
                print(f"  {name:22s}" + "".join(f"  recall@{k} {v:.3f}"
                                                for k, v in zip(KS, values, strict=True)))
            ratios = [("together", together)] + helps
            print(f"target recall@10 >= {TARGET_RATIO:.0f}x today's on obsidian-help: " + "; ".join(
                f"{n} {r['new'][1] / r['today (title words)'][1]:.2f}x "
                f"({'met' if r['new'][1] >= TARGET_RATIO * r['today (title words)'][1] else 'NOT met'})"
                for n, r in ratios))  # fmt: skip
        if args.notes:
            bench_scale(args.notes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if worse:
        print(f"the new index finds fewer links than today's on: {', '.join(worse)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Import benchmark: a 10,000-note vault against a bare python-frontmatter read loop.

Prints two ratios measured in the same run (medians of a few runs each):
  import / bare loop            target <= 1.5
  unchanged re-import / bare    target <= 0.3
Uses a temporary SQLite database unless DATABASE_URL is set. `--strict` exits 1 when a
target is missed; `--notes N` changes the vault size.
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = ["ai", "python", "cooking", "travel", "books", "fitness", "finance", "homelab"]
WORDS = (
    "agent batch vault note tag model prompt index lentil ramen kyoto squat budget proxmox "
    "backup pytest django queue worker cache review export import frontmatter markdown"
).split()


def generate(root: Path, count: int) -> None:
    rng = random.Random(42)
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        folder = root / topic / f"part{i % 25:02}"
        folder.mkdir(parents=True, exist_ok=True)
        paragraphs = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90))).capitalize() + "."
            for _ in range(rng.randint(2, 5))
        ]
        if i % 10 == 0:
            head = ""  # some notes have no frontmatter at all
        elif i % 3 == 0:
            head = f"---\ntitle: Note {i}\ntags: [{topic}, {rng.choice(WORDS)}]\n---\n"
        else:
            head = (
                f"---\ntitle: \"Note {i} about {topic}\"\n"
                f"created: 2025-{i % 12 + 1:02}-{i % 28 + 1:02}\n"
                f"tags:\n  - {topic}/{rng.choice(WORDS)}\n  - {rng.choice(WORDS)}\n"
                f"source:\n  kind: web  # where it came from\n  rating: {i % 5}\n---\n"
            )
        body = f"# Note {i}\n\n" + "\n\n".join(paragraphs) + f"\n\nSee [[Note {i + 1}]].\n"
        (folder / f"Note {i}.md").write_text(head + body, encoding="utf-8")


def median_time(fn, runs: int, before=None) -> float:
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vaultcms-import-bench-"))
    try:
        return measure(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args, tmp: Path) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    os.environ.setdefault("VAULTCMS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import frontmatter
    from django.core.management import call_command

    from ingest.importer import vault_import, walk
    from ingest.models import Note, Vault

    call_command("migrate", verbosity=0)
    vault_root = tmp / "vault"
    generate(vault_root, args.notes)
    paths = [entry.abs for entry in walk(vault_root)]
    database = os.environ["DATABASE_URL"].split("@")[-1]  # never print a password
    print(f"import_bench: {len(paths):,} notes in {vault_root}, database {database}")

    def bare_loop() -> None:
        for path in paths:
            frontmatter.load(path)

    def fresh_db() -> None:
        Note.objects.filter(vault__name="bench").delete()
        Vault.objects.filter(name="bench").delete()

    def full_import() -> None:
        _, summary = vault_import(root=vault_root, name="bench")
        assert summary.imported == len(paths), summary.line()

    def reimport() -> None:
        _, summary = vault_import(root=vault_root, name="bench")
        assert summary.unchanged == len(paths), summary.line()

    bare_loop()  # warm the page cache so both sides read from memory
    # Interleaved rounds (bare, import, bare, re-import): a busy machine slows both sides of
    # each ratio alike; the median ratio over the rounds is reported.
    rounds = {"bare": [], "import": [], "unchanged re-import": []}
    for _ in range(args.runs):
        fresh_db()
        rounds["bare"].append(median_time(bare_loop, 1))
        rounds["import"].append(median_time(full_import, 1))
        rounds["bare"].append(median_time(bare_loop, 1))
        rounds["unchanged re-import"].append(median_time(reimport, 1))
    fresh_db()

    bare = statistics.median(rounds["bare"])
    print(f"  bare python-frontmatter loop   {bare:8.3f} s   (baseline, median of {args.runs * 2})")
    missed = 0
    for index, (label, target) in enumerate([("import", 1.5), ("unchanged re-import", 0.3)]):
        ratios = [t / rounds["bare"][2 * r + index] for r, t in enumerate(rounds[label])]
        ratio = statistics.median(ratios)
        seconds = statistics.median(rounds[label])
        verdict = "ok" if ratio <= target else "OVER TARGET"
        missed += ratio > target
        print(
            f"  {label:<30} {seconds:8.3f} s   ratio {ratio:5.2f}x "
            f"(target <= {target}x) {verdict}"
        )
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())

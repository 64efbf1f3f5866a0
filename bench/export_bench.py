"""Export round trip over a whole vault: speed against import, and every byte checked.

    .venv/bin/python bench/export_bench.py [VAULT_FOLDER] [--copies N]

Copies the vault (default: sample_vault, N times) to a temp folder, imports it (the baseline),
approves tags, a description and a related link for every note, exports, and then checks each
file: it parses, the body is byte-identical, and the file without the curated keys' lines is
identical to the original without them. Then re-import must see no change and a second export
must write nothing. Uses a temp SQLite database unless DATABASE_URL is set.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", nargs="?", default=str(ROOT / "sample_vault"))
    parser.add_argument("--copies", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from curation.models import Field, Item, Job, Review, Suggestion
    from curation.review.export import vault_export
    from ingest import notes
    from ingest.importer import vault_import
    from ingest.models import Note
    from tests.curation.review.test_export_corpus import codec_of, without_curated

    source = Path(args.vault)
    vault_dir = work / "vault"
    ignore = shutil.ignore_patterns(".git", ".obsidian", "*.png", "*.jpg", "*.mp4", "*.pdf")
    copies = args.copies if source == ROOT / "sample_vault" else 1
    for n in range(copies):
        shutil.copytree(source, vault_dir / f"copy{n}", ignore=ignore)
    before = {p: p.read_bytes() for p in vault_dir.rglob("*.md") if p.is_file()}

    started = time.perf_counter()
    vault, imported = vault_import(root=vault_dir, name=f"bench-{time.time_ns()}")
    import_s = time.perf_counter() - started

    ok_notes = list(Note.objects.filter(vault=vault, state=Note.State.OK).order_by("id"))
    job = Job.objects.create(vault=vault, fields=list(Field), model="bench")
    items = Item.objects.bulk_create(
        [Item(job=job, note=n, custom_id=f"b{job.id}-{n.id}") for n in ok_notes], batch_size=500
    )
    suggestions = []
    for note, item in zip(ok_notes, items, strict=True):
        other = ok_notes[(ok_notes.index(note) + 1) % len(ok_notes)] if len(ok_notes) > 1 else None
        values = {
            Field.TAGS: ["bench/exported", "Review"],
            Field.DESCRIPTION: f"Summary of {note.name}: one line, with “quotes”.",
            Field.RELATED: [other.path] if other else [],
        }
        for field, value in values.items():
            suggestions.append(
                Suggestion(item=item, note=note, job=job, field=field, value=value, model="bench")
            )
    suggestions = Suggestion.objects.bulk_create(suggestions, batch_size=500)
    Review.objects.bulk_create(
        [
            Review(suggestion=s, decision=Review.Decision.APPROVED, value=s.value)
            for s in suggestions
        ],
        batch_size=500,
    )

    started = time.perf_counter()
    summary = vault_export(vault=vault)
    export_s = time.perf_counter() - started

    bad = []
    for path, old in before.items():
        new = path.read_bytes()
        if new == old:
            continue
        bom, codec = codec_of(old)
        old_text, new_text = old[len(bom) :].decode(codec), new[len(bom) :].decode(codec)
        old_split, new_split = notes.split(old_text), notes.split(new_text)
        newline = notes.detect_newline(old_text)
        expected = (
            f"---{newline}---{newline}" + old_text
            if old_split.yaml is None
            else without_curated(old_text)
        )
        try:
            notes.parse(new, path=path.name)
        except notes.NoteError as exc:
            bad.append((path, f"does not parse: {exc}"))
            continue
        if new_split.body != old_split.body or not new.endswith(old_split.body.encode(codec)):
            bad.append((path, "body changed"))
        elif without_curated(new_text) != expected:
            bad.append((path, "a byte outside the curated keys changed"))

    started = time.perf_counter()
    _, again = vault_import(root=vault_dir, name=vault.name)
    reimport_s = time.perf_counter() - started
    second = vault_export(vault=vault)

    skipped = len(imported.skipped)
    print(f"notes: {len(before)} files, {len(ok_notes)} importable ({skipped} skipped)")
    print(f"import (baseline): {import_s:.2f}s")
    print(f"export: {export_s:.2f}s ({export_s / import_s:.2f}x import), {summary.line()}")
    print(f"per written note: {1000 * export_s / max(1, len(summary.written)):.2f} ms")
    print(f"re-import after export: {reimport_s:.2f}s, {again.line()}")
    print(f"second export: {second.line()}")
    print(f"byte check: {len(before) - len(bad)}/{len(before)} files clean")
    for path, reason in bad[:20]:
        print(f"  BAD {path.relative_to(vault_dir)}: {reason}")
    for path, reason in (summary.conflicts + summary.errors)[:20]:
        print(f"  not exported {path}: {reason}")
    shutil.rmtree(work, ignore_errors=True)
    clean = not bad and summary.ok and not second.written and again.updated == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())

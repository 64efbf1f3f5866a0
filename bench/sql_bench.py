"""Does each hand-written SQL statement pay? Each one against the ORM doing the same work.

    .venv/bin/python bench/sql_bench.py [--rows 10000] [--rounds 3]

On a temp SQLite database (or DATABASE_URL), for every statement in curation/sql.py and
ingest/sql.py: the same rows written once through it and once through the ORM's closest
equivalent (bulk_create, bulk_update, or read-then-write for the set-based bulk decision), in
alternating rounds on fresh rows, so both see the same machine. Prints the median seconds of
each and the ORM / SQL ratio. A statement is worth keeping when its ratio is clearly above 1
(the verdict column says "keep" at >= 1.5); each module names this bench beside its statements.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEEP_RATIO = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sql-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ.setdefault("VAULTCMS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("VAULTCMS_DEBUG", "0")
    os.environ.setdefault("VAULTCMS_SECRET_KEY", "sql-bench-only-not-a-secret")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from curation import sql as curation_sql
    from curation.models import Item, Job, Review, Suggestion
    from ingest import sql as ingest_sql
    from ingest.importer import UPDATE_FIELDS
    from ingest.models import Note, Vault

    call_command("migrate", verbosity=0)
    n = args.rows
    user = get_user_model().objects.create_superuser("bench", "b@example.com", "x")
    vault = Vault.objects.create(name="bench", root=str(work))
    now = timezone.now()

    def note_row(i: int, tag: str) -> dict:
        return {
            "vault": vault.id, "path": f"{tag}/note {i}.md", "folder": tag,
            "title": f"note {i}", "frontmatter_raw": "tags: [a]", "frontmatter": {"tags": ["a"]},
            "tags": ["a", "b/c"], "body": "word " * 60, "content_hash": f"{i:064d}",
            "size": 400, "mtime_ns": i, "imported_at": now, "updated_at": now,
        }  # fmt: skip

    results = []  # (name, sql seconds, orm seconds)

    def race(name, setup, with_sql, with_orm):
        """Median seconds of each way over alternating rounds, each on fresh rows from setup."""
        times = {"sql": [], "orm": []}
        for _ in range(args.rounds):
            for way, run in (("sql", with_sql), ("orm", with_orm)):
                state = setup()
                started = time.perf_counter()
                with transaction.atomic():
                    run(state)
                times[way].append(time.perf_counter() - started)
        results.append((name, statistics.median(times["sql"]), statistics.median(times["orm"])))

    # --- notes: insert and update (ingest/sql.py) ------------------------------------------
    counter = iter(range(10**9))

    def fresh_note_rows():
        tag = f"r{next(counter)}"
        return [note_row(i, tag) for i in range(n)]

    def insert_sql(rows):
        with connection.cursor() as cursor:
            ingest_sql.notes_insert(cursor, rows)

    def as_note(row: dict) -> Note:
        return Note(**{("vault_id" if k == "vault" else k): v for k, v in row.items()})

    def insert_orm(rows):
        Note.objects.bulk_create([as_note(row) for row in rows], batch_size=1000)

    race("notes insert", fresh_note_rows, insert_sql, insert_orm)

    def notes_for_update():
        tag = f"u{next(counter)}"
        Note.objects.bulk_create([as_note(note_row(i, tag)) for i in range(n)], batch_size=1000)
        ids = list(Note.objects.filter(folder=tag).values_list("id", flat=True))
        return [{**note_row(k, tag), "id": i, "body": "changed " * 60} for k, i in enumerate(ids)]

    def update_sql(rows):
        with connection.cursor() as cursor:
            ingest_sql.notes_update(cursor, rows, UPDATE_FIELDS)

    def update_orm(rows):
        notes = [as_note(row) for row in rows]
        Note.objects.bulk_update(notes, UPDATE_FIELDS, batch_size=1000)

    race("notes update", notes_for_update, update_sql, update_orm)

    # --- items and suggestions (curation/sql.py) ----------------------------------------------
    base_notes = list(Note.objects.values_list("id", flat=True)[:n])

    def fresh_items():
        job = Job.objects.create(model="bench", fields=["tags", "description", "related"])
        Item.objects.bulk_create(
            [Item(job=job, note_id=nid, state=Item.State.SUBMITTED, attempts=1,
                  created_at=now, updated_at=now) for nid in base_notes],  # fmt: skip
            batch_size=2000,
        )
        return job, list(Item.objects.filter(job=job).values_list("id", "note_id"))

    def ids_sql(state):
        _, items = state
        curation_sql.items_set_custom_ids([(f"item_{i:08d}_note", i) for i, _ in items])

    def ids_orm(state):
        _, items = state
        Item.objects.bulk_update(
            [Item(id=i, custom_id=f"item_{i:08d}_note") for i, _ in items], ["custom_id"],
            batch_size=1000,
        )

    race("item custom ids", fresh_items, ids_sql, ids_orm)

    usage = {"input_tokens": 900, "output_tokens": 80}

    def outcome_rows(items):
        return [
            {"id": i, "state": Item.State.SUCCEEDED, "error": "", "result": {"id": f"msg_{i}"},
             "usage": usage, "cost": 0.0012, "batch_cost": 0.0012, "finished_at": now, "updated_at": now}
            for i, _ in items
        ]  # fmt: skip

    def outcomes_sql(state):
        curation_sql.items_record_outcomes(outcome_rows(state[1]))

    def outcomes_orm(state):
        fields = list(curation_sql.OUTCOME_COLUMNS)
        objs = [Item(**row) for row in outcome_rows(state[1])]
        Item.objects.bulk_update(objs, fields, batch_size=1000)

    race("item outcomes", fresh_items, outcomes_sql, outcomes_orm)

    def suggestion_values(state):
        job, items = state
        return [
            {"item_id": i, "note_id": nid, "job_id": job.id, "field": field, "value": value,
             "model": "bench", "prompt_version": "v", "cost": 0.0004}
            for i, nid in items
            for field, value in (("tags", ["a/b", "c"]), ("description", "About it."),
                                 ("related", ["x.md"]))
        ]  # fmt: skip

    def suggestions_sql(state):
        curation_sql.suggestions_insert(suggestion_values(state))

    def suggestions_orm(state):
        Suggestion.objects.bulk_create(
            [Suggestion(**v) for v in suggestion_values(state)], ignore_conflicts=True,
            batch_size=1000,
        )

    race("suggestions insert", fresh_items, suggestions_sql, suggestions_orm)

    # --- bulk decisions (curation/sql.py) ------------------------------------------------------
    def fresh_pending():
        state = fresh_items()
        curation_sql.suggestions_insert(suggestion_values(state))
        return list(Suggestion.objects.filter(job=state[0]).values_list("id", flat=True))

    def decide_sql(ids):
        curation_sql.reviews_record_bulk(
            suggestions=Suggestion.objects.filter(id__in=Suggestion.objects.filter(
                id__gte=ids[0], id__lte=ids[-1]).values("id")),
            decision=Review.Decision.APPROVED, approved=True, reviewer_id=user.pk, now=now,
            comment="",
        )  # fmt: skip

    def decide_orm(ids):
        reviews = []
        for start in range(0, len(ids), 900):
            rows = Suggestion.objects.filter(id__in=ids[start : start + 900]).values_list(
                "id", "field", "value", "note__tags", "note__frontmatter"
            )
            for sid, field, value, tags, frontmatter in rows:
                before = tags if field == "tags" else (frontmatter or {}).get(field)
                reviews.append(Review(suggestion_id=sid, decision=Review.Decision.APPROVED,
                                      value=value, before=before, reviewer=user,
                                      decided_at=now, comment=""))  # fmt: skip
            Suggestion.objects.filter(id__in=ids[start : start + 900]).update(
                state=Suggestion.State.APPROVED
            )
        Review.objects.bulk_create(reviews, batch_size=1000)

    race("bulk decisions", fresh_pending, decide_sql, decide_orm)

    print(f"{n:,} rows per statement, median of {args.rounds} rounds, {connection.vendor}")
    print(f"{'statement':<20} {'SQL s':>8} {'ORM s':>8} {'ORM/SQL':>8}  verdict")
    for name, sql_s, orm_s in results:
        ratio = orm_s / sql_s if sql_s else float("inf")
        verdict = "keep" if ratio >= KEEP_RATIO else "ORM would do"
        print(f"{name:<20} {sql_s:>8.3f} {orm_s:>8.3f} {ratio:>7.1f}x  {verdict}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

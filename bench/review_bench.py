"""Bulk review speed: approving N pending suggestions at once against deciding them one by one.

    .venv/bin/python bench/review_bench.py [--suggestions 100000] [--sample 300]

Creates N pending suggestions (three fields per note) on a temp SQLite database (or
DATABASE_URL), then times `suggestions_decide` approving all of them (one INSERT ... SELECT
of Reviews, one UPDATE of states) and, as the baseline measured in the same run, the
per-suggestion path `suggestion_decide` on a sample, extrapolated per suggestion. Also counts
the bulk call's queries, which must not depend on N. Target: >= 5,000 suggestions/s bulk
(100,000 in under 20 s).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATE = 5_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suggestions", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=300)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="review-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    from curation.models import Item, Job, Review, Suggestion
    from curation.review.decisions import suggestion_decide, suggestions_decide
    from ingest.models import Note, Vault

    user = User.objects.create_user(f"bench-mod-{os.getpid()}")
    user.groups.add(Group.objects.get(name="Moderator"))
    vault = Vault.objects.create(name=f"review-bench-{os.getpid()}", root=str(work))
    n_notes = max(1, (args.suggestions + args.sample) // 3 + 1)

    def make(job, start, count):
        notes = Note.objects.bulk_create(
            (Note(vault=vault, path=f"b/{start + i}.md", folder="b", tags=["old"])
             for i in range(count)), batch_size=2000,
        )  # fmt: skip
        items = Item.objects.bulk_create(
            (Item(job=job, note=n, custom_id=f"rb-{job.pk}-{n.pk}", state="succeeded")
             for n in notes), batch_size=2000,
        )  # fmt: skip
        Suggestion.objects.bulk_create(
            (Suggestion(item=i, note_id=i.note_id, job=job, field=f, value=v, model="m")
             for i in items
             for f, v in (("tags", ["ai/x"]), ("description", "d"), ("related", [])))
            , batch_size=2000,
        )  # fmt: skip

    big = Job.objects.create(vault=vault, model="m")
    small = Job.objects.create(vault=vault, model="m")
    t0 = time.perf_counter()
    make(big, 0, args.suggestions // 3)
    make(small, n_notes, max(1, args.sample // 3))
    print(f"setup: {Suggestion.objects.count():,} suggestions in {time.perf_counter() - t0:.1f} s")

    sample = list(Suggestion.objects.filter(job=small).values_list("pk", flat=True))
    start = time.perf_counter()
    for pk in sample:
        suggestion_decide(suggestion_id=pk, user=user, decision="approved")
    one_by_one = (time.perf_counter() - start) / len(sample)

    n = Suggestion.objects.filter(job=big, state="pending").count()
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        result = suggestions_decide(
            queryset=Suggestion.objects.filter(job=big), user=user, decision="approved"
        )
        bulk = time.perf_counter() - start
    assert result.decided == n == Review.objects.filter(suggestion__job=big).count()
    rate = n / bulk if bulk else float("inf")
    print(f"one by one (baseline): {1 / one_by_one:,.0f} suggestions/s over {len(sample)}")
    print(f"bulk: {n:,} approved in {bulk:.2f} s = {rate:,.0f} suggestions/s, "
          f"{len(queries)} queries")  # fmt: skip
    for q in queries.captured_queries:
        print(f"  {float(q['time']):7.3f} s  {q['sql'][:90]}")
    print(f"ratio bulk / one by one: {rate * one_by_one:,.1f}x")
    ok = rate >= TARGET_RATE
    print(f"target >= {TARGET_RATE:,}/s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Admin at scale: changelist query counts and the "curate all" action, at 10,000 and 100,000 rows.

    .venv/bin/python bench/admin_bench.py [--notes 100000] [--small 10000]

On a temp SQLite database (or DATABASE_URL), renders the note changelist, the item changelist
and the review queue (pending suggestions) as a superuser through the test client, counting
queries, first with --small notes/items/suggestions and then with --notes. The counts must not
grow with the data (target <= 10 each, warm). Then times the Note changelist's "Curate
selected notes" action with "select all" (the job is created and enqueued, not run) at both
sizes and prints seconds per 10,000 notes: the baseline is the small run, and the ratio
large/small per 10k must stay near 1 (no per-row work).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_QUERIES = 10
PAGES = {
    "note changelist": "/ingest/note/",
    "item changelist": "/curation/item/",
    "review queue": "/curation/suggestion/?state__exact=pending",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="admin-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ["VAULTCMS_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("migrate", verbosity=0)
    from curation.models import Item, Job, Suggestion
    from ingest.models import Note, Vault

    admin = User.objects.create_superuser(f"bench-admin-{os.getpid()}", password="x")
    client = Client()
    client.force_login(admin)
    vault = Vault.objects.create(name=f"admin-bench-{os.getpid()}", root=str(work))
    seed_job = Job.objects.create(fields=["description"], model="m", state=Job.State.SUCCEEDED)
    made = 0

    def grow(to: int) -> None:
        nonlocal made
        start = time.monotonic()
        for first in range(made, to, 5000):
            count = min(5000, to - first)
            notes = Note.objects.bulk_create(
                [Note(vault=vault, path=f"f{i % 50}/Note {i:06d}.md", folder=f"f{i % 50}",
                      title=f"Note {i}", tags=["topic/a", f"topic/{i % 7}"], size=100)
                 for i in range(first, first + count)], batch_size=1000,
            )  # fmt: skip
            items = Item.objects.bulk_create(
                [Item(job=seed_job, note=n, custom_id=f"ab-{n.pk}", state="succeeded")
                 for n in notes], batch_size=1000,
            )  # fmt: skip
            Suggestion.objects.bulk_create(
                [Suggestion(item=it, note_id=it.note_id, job=seed_job, field="description",
                            value=f"About note {it.note_id}.", model="m") for it in items],
                batch_size=1000,
            )  # fmt: skip
        made = to
        print(f"  data: {made:,} notes, items, suggestions ({time.monotonic() - start:.0f} s)")

    def measure(label: str) -> dict:
        counts = {}
        for name, url in PAGES.items():
            client.get(url)  # warm: caches, once-a-while sweeps, compiled templates
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(url)
            if response.status_code != 200:
                print(f"  {name}: HTTP {response.status_code}")
            counts[name] = len(ctx.captured_queries)
        ids = list(Note.objects.values_list("id", flat=True)[:1])
        before = Job.objects.count()
        start = time.monotonic()
        response = client.post("/ingest/note/", {
            "action": "curate_selected_notes", "select_across": "1", "index": "0",
            "_selected_action": ids, "apply": "1", "curate_fields": ["tags", "description"],
            "mode": "batch",
        })  # fmt: skip
        took = time.monotonic() - start
        job = Job.objects.order_by("-id").first()
        assert Job.objects.count() == before + 1, f"no job created (HTTP {response.status_code})"
        assert job.items.count() == made, (job.items.count(), made)
        per_10k = took / (made / 10_000)
        print(f"  {label}: " + ", ".join(f"{k} {v} queries" for k, v in counts.items()))
        print(f"  {label}: curate all {made:,} notes: {took:.2f} s = {per_10k:.2f} s per 10k")
        return {"counts": counts, "per_10k": per_10k}

    print(f"admin bench on {connection.vendor}")
    grow(args.small)
    small = measure(f"{args.small:,} rows")
    grow(args.notes)
    large = measure(f"{args.notes:,} rows")

    ok = True
    for name in PAGES:
        a, b = small["counts"][name], large["counts"][name]
        grows = b > a
        over = b > TARGET_QUERIES
        print(f"{name}: {a} -> {b} queries ({'GROWS' if grows else 'flat'}; target <= "
              f"{TARGET_QUERIES}{', OVER' if over else ''})")
        ok = ok and not grows
    ratio = large["per_10k"] / small["per_10k"]
    print(f"curate all: {small['per_10k']:.2f} s/10k at {args.small:,}, "
          f"{large['per_10k']:.2f} s/10k at {args.notes:,}: ratio {ratio:.2f} (target <= 1.5)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

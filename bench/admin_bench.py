"""Admin at scale: changelist query counts and the heavy admin actions, at 10,000 and 100,000 rows.

    .venv/bin/python bench/admin_bench.py [--notes 100000] [--small 10000]

On a temp SQLite database (or DATABASE_URL), renders every change list and the review queue
(pending suggestions) as a superuser through the test client, counting queries, first with
--small notes/items/suggestions and then with --notes. The counts must not grow with the data
and stay <= 10 each (warm). Then times each heavy admin action over "select all" at both
sizes: the curate form, "Curate selected notes" (with a maximum cost, so the estimate is
checked in the request), "Preview export" and "Export approved" of the
notes, "Re-import" of the vault, "Approve" of every pending suggestion. Each must answer in
<= 0.5 s: the request stores an Operation (the selection as id ranges) and the workers do the
work. The worker's side of "curate all" (creating the job's items) is timed too, for reference.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_QUERIES = 10
TARGET_SECONDS = 0.5
PAGES = {
    "note changelist": "/ingest/note/",
    "item changelist": "/curation/item/",
    "job changelist": "/curation/job/",
    "review queue": "/curation/suggestion/?state__exact=pending",
    "review queue of a job": "/curation/suggestion/?state__exact=pending&job__id__exact={job}",
    "items of a job": "/curation/item/?job__id__exact={job}",
    "audit (reviews)": "/curation/review/",
    "operations": "/curation/operation/",
    "vault changelist": "/ingest/vault/",
    "export records": "/ingest/exportrecord/",
    "review locks": "/curation/reviewlock/",
    "tag renames": "/curation/tagrename/",
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
        # Thousands of jobs too (one per 20 notes): the job filters must not list them all.
        jobs = Job.objects.count()
        Job.objects.bulk_create(
            [Job(fields=["description"], model="m", state=Job.State.SUCCEEDED)
             for _ in range(to // 20 - jobs)], batch_size=1000,
        )  # fmt: skip
        made = to
        print(f"  data: {made:,} notes, items, suggestions, {Job.objects.count():,} jobs "
              f"({time.monotonic() - start:.0f} s)")

    def measure(label: str) -> dict:
        counts, page_times = {}, {}
        for name, url in PAGES.items():
            url = url.format(job=seed_job.pk)
            client.get(url)  # warm: caches, once-a-while sweeps, compiled templates
            start = time.monotonic()
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(url)
            page_times[name] = time.monotonic() - start
            if response.status_code != 200:
                print(f"  {name}: HTTP {response.status_code}")
            counts[name] = len(ctx.captured_queries)
        from curation import operations
        from curation.models import Operation

        note_ids = list(Note.objects.values_list("id", flat=True)[:1])
        suggestion_ids = list(Suggestion.objects.values_list("id", flat=True)[:1])
        across = {"select_across": "1", "index": "0"}
        actions = {
            "curate form": ("/ingest/note/", {"action": "curate_selected_notes",
                                              "_selected_action": note_ids}),
            "curate all": ("/ingest/note/", {"action": "curate_selected_notes", "apply": "1",
                                             "_selected_action": note_ids, "mode": "batch",
                                             "curate_fields": ["tags", "description"],
                                             # a limit, so the estimate is checked in the request
                                             "max_cost": "1000000"}),
            "preview export": ("/ingest/note/", {"action": "preview_export_notes",
                                                 "_selected_action": note_ids}),
            "export approved": ("/ingest/note/", {"action": "export_approved_notes",
                                                  "_selected_action": note_ids}),
            "re-import vault": ("/ingest/vault/", {"action": "reimport_vaults",
                                                   "_selected_action": [vault.pk]}),
            "approve all": ("/curation/suggestion/?state__exact=pending",
                            {"action": "approve_selected", "_selected_action": suggestion_ids}),
        }  # fmt: skip
        times = {}
        for name, (url, data) in actions.items():
            before = Operation.objects.count()
            start = time.monotonic()
            response = client.post(url, {**across, **data})
            times[name] = took = time.monotonic() - start
            assert response.status_code in (200, 302), (name, response.status_code)
            if name != "curate form":
                assert Operation.objects.count() == before + 1, f"{name}: no operation"
                op = Operation.objects.order_by("-id").first()
                assert op.state == Operation.State.PENDING, f"{name}: ran inside the request"
                if name == "curate all":
                    curate_op = op
                    stored = json.dumps(op.params["notes"])
                    print(f"  {label}: curate all stored its selection as "
                          f"{len(op.params['notes']['ranges'])} id range(s), {len(stored)} bytes")
                else:
                    operations.operation_cancel(operation_id=op.id)  # not this bench's work
            print(f"  {label}: {name} over {made:,} selected: {took:.3f} s"
                  f"{'' if took <= TARGET_SECONDS else '  OVER'}")
        start = time.monotonic()
        assert operations.operation_run(operation_id=curate_op.id) == Operation.State.SUCCEEDED
        worker = time.monotonic() - start
        job = Job.objects.order_by("-id").first()
        assert job.items.count() == made, (job.items.count(), made)
        print(f"  {label}: " + ", ".join(f"{k} {v} queries" for k, v in counts.items()))
        print(f"  {label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in page_times.items()))
        print(f"  {label}: the worker created the job's {made:,} items in {worker:.1f} s")
        return {"counts": counts, "times": times, "page_times": page_times}

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
              f"{TARGET_QUERIES}{', OVER' if over else ''}); "
              f"{small['page_times'][name]:.2f} s -> {large['page_times'][name]:.2f} s")
        ok = ok and not grows and not over
    for name, took in large["times"].items():
        over = took > TARGET_SECONDS
        print(f"{name}: {small['times'][name]:.3f} s at {args.small:,}, {took:.3f} s at "
              f"{args.notes:,} selected (target <= {TARGET_SECONDS} s{', OVER' if over else ''})")
        ok = ok and not over
    print("admin bench: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

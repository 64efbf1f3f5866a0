"""kill -9 of the worker during a large background operation (the admin's "Export these N
notes"), then a fresh qcluster, on the DEFAULT timers: the operation's lease lapses, the
operations sweep queues it again, a second run finishes it (runs = 2), and every note file
ends as its new version, none torn or written twice over.

SQLite + the ORM broker by default; PostgreSQL + Redis when DATABASE_URL / REDIS_URL point
there. Nothing waits for django-q2 to hand the dead worker's task out again (the task timeout
+ 60 s): the sweep does it.
"""

import json
import time

import pytest

from tests.faults.test_export_killed import REVIEWS_SCRIPT, is_old_or_new, note_text
from tests.faults.test_killed_default_timers import DEFAULT_TIMERS

pytestmark = pytest.mark.slow

N = 600
OPERATION_SCRIPT = """
from django.db import transaction
from curation import operations
from curation.models import Operation
from ingest.models import Vault
with transaction.atomic():
    vault = Vault.objects.get(name="faults")
    op = operations.operation_create(
        kind=Operation.Kind.EXPORT, user=None, description="fault suite: export the vault",
        params={"runs": [{"vault": vault.id, "notes": None}]},
    )
print("operation", op.id)
"""
# The default lease (20 s), then a sweep at the scheduler's next look (about 30 s), then the
# export of what is left: well inside this.
COMPLETE_WITHIN = 150.0


def test_kill9_during_a_large_operation_then_a_fresh_qcluster_completes_it(site, tmp_path):
    s = site(**DEFAULT_TIMERS)
    root = tmp_path / "vault"
    root.mkdir()
    originals = {}
    for i in range(N):
        path = root / f"Note {i:03d}.md"
        originals[path] = note_text(i)
        path.write_text(originals[path], encoding="utf-8")
    s.manage("import_vault", str(root), "--name", "faults")
    s.manage("shell", "-c", REVIEWS_SCRIPT)
    op_id = int(s.manage("shell", "-c", OPERATION_SCRIPT).stdout.split()[-1])

    first = s.start_worker()
    deadline = time.monotonic() + 120
    written = 0
    while time.monotonic() < deadline:
        written = s.query("SELECT COUNT(*) FROM ingest_exportrecord")[0][0]
        if written >= N // 10:
            break
        time.sleep(0.01)
    owner, state = s.query("SELECT lease_owner, state FROM curation_operation WHERE id=%s",
                           op_id)[0]  # fmt: skip
    s.kill9(first)
    killed = time.monotonic()
    written = s.query("SELECT COUNT(*) FROM ingest_exportrecord")[0][0]
    assert state == "running" and owner, f"no run held the operation ({state!r}, {owner!r})"
    assert 0 < written < N, f"the export was not interrupted ({written} of {N} written)"

    s.start_worker()
    rows = s.wait_for(
        "SELECT state IN ('succeeded', 'failed', 'canceled'), state, runs, error "
        "FROM curation_operation WHERE id=%s", op_id,
        timeout=COMPLETE_WITHIN, what="the operation to end after the new qcluster started",
    )  # fmt: skip
    _, state, runs, error = rows[0]
    print(f"operation {op_id}: {written} of {N} written at kill -9; {state} after "
          f"{time.monotonic() - killed:.1f}s, {runs} runs")
    assert state == "succeeded", error + s.worker_logs()[-4000:]
    assert runs == 2
    assert all(is_old_or_new(path, old) == "new" for path, old in originals.items())
    # Each note was written once: the second run found the first run's files up to date. The
    # one file a kill -9 may catch between its rename and its commit is new on disk without
    # its record: the second run reports it as a conflict (to re-import), never writes it twice.
    records = s.query("SELECT COUNT(*) FROM ingest_exportrecord")[0][0]
    result = s.query("SELECT result FROM curation_operation WHERE id=%s", op_id)[0][0]
    result = json.loads(result) if isinstance(result, str) else result
    assert records == N or (records == N - 1 and result["conflicts"] == 1), (records, result)

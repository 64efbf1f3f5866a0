"""kill -9 of the qcluster working a tag consolidation job (mid real-time call, and while its
batch is polled), then a fresh qcluster, on the DEFAULT timers: the job resumes within 60 s
through the same lease and sweep as a curation job, and ends with every part's merges stored
once and no request sent twice (beyond the one call cut by the kill)."""

import re
import time

import pytest

from tests.faults.test_killed_default_timers import DEFAULT_TIMERS, kill_and_restart
from tests.faults.test_worker_killed import PHASES

pytestmark = pytest.mark.slow

PARTS = 6
# Per part (4 tags, cut alphabetically): "atopic" on two notes, "Atopic" and "atopics" on one
# (the emulator merges both onto it) and "azeta"; the letter keeps each group in one part.
NOTES_SCRIPT = """
from ingest.models import Note, Vault
vault = Vault.objects.create(name="tags", root={root!r})
rows = []
for letter in "abcdefghijklmnopqrstuvwxyz"[:{parts}]:
    base = letter + "topic"
    for n, tags in enumerate([[base, base.capitalize(), letter + "zeta"], [base, base + "s"]]):
        path = f"{{letter}}-{{n}}.md"
        rows.append(Note(vault=vault, path=path, title=path[:-3], body="Body.", tags=tags,
                         frontmatter={{"tags": tags}}))
Note.objects.bulk_create(rows)
"""
JOB_SCRIPT = """
from django.db import transaction
from curation.engine import jobs
from ingest.models import Vault
with transaction.atomic():
    job = jobs.consolidation_create(vault_id=Vault.objects.get(name="tags").id, mode={mode!r})
    jobs.job_start(job_id=job.id)
print("job", job.id, "queued")
"""


def consolidation_job(s, *, mode: str) -> int:
    out = s.manage(
        "shell", "-c",
        NOTES_SCRIPT.format(root=str(s.workdir), parts=PARTS) + JOB_SCRIPT.format(mode=mode),
    ).stdout.strip().splitlines()  # fmt: skip
    found = re.fullmatch(r"job (\d+) queued", out[-1])
    assert found, out
    return int(found.group(1))


def finish(s, job_id: int) -> None:
    state = s.wait_final(job_id, timeout=120)
    assert state == "succeeded", f"{s.item_states(job_id)}\n{s.worker_logs()[-6000:]}"
    assert s.item_states(job_id) == {"succeeded": PARTS}
    kind, cost = s.query("SELECT kind, cost FROM curation_job WHERE id=%s", job_id)[0]
    assert kind == "consolidate" and float(cost) > 0
    olds = [old for (old,) in s.query(
        "SELECT old FROM curation_tagconsolidation WHERE job_id=%s", job_id
    )]  # fmt: skip
    assert len(olds) == len(set(olds)) == 2 * PARTS, olds  # every part's merges, each once
    assert not s.query("SELECT COUNT(*) FROM curation_suggestion")[0][0]


def test_kill9_mid_real_time_consolidation_call_default_timers(site):
    s = site(CURATION_CONSOLIDATION_TAGS=4, **DEFAULT_TIMERS)
    s.emulator.configure(latency=0.6)
    job_id = consolidation_job(s, mode="sync")
    assert s.query("SELECT COUNT(*) FROM curation_item WHERE job_id=%s AND note_id IS NULL",
                   job_id)[0][0] == PARTS  # fmt: skip
    first = s.start_worker()
    s.wait_for("SELECT COUNT(*) FROM curation_item WHERE state='succeeded'", timeout=90)
    s.wait_for("SELECT COUNT(*) FROM curation_item WHERE state='submitted'", timeout=30)
    time.sleep(0.2)
    kill_and_restart(s, job_id, first)
    finish(s, job_id)
    resent = s.query("SELECT COUNT(*) FROM curation_item WHERE job_id=%s AND attempts > 1", job_id)
    assert resent[0][0] <= 1  # only the call the kill cut went again
    twice = [n for n in s.emulator.stats()["notes"].values() if n != 1]
    assert len(twice) <= 1 and all(n == 2 for n in twice), twice


def test_kill9_while_its_batch_is_polled_default_timers(site):
    config, moment = PHASES["polling a batch"]
    s = site(CURATION_CONSOLIDATION_TAGS=4, **DEFAULT_TIMERS)
    s.emulator.configure(**config)
    job_id = consolidation_job(s, mode="auto")  # several parts: a Message Batch
    first = s.start_worker()
    s.wait_for(moment, timeout=90, what="polling")
    time.sleep(0.3)
    kill_and_restart(s, job_id, first)
    finish(s, job_id)
    stats = s.check_sent_once()
    assert stats["batches"] == 1 and stats["batch_requests"] == PARTS  # polled again, not resent

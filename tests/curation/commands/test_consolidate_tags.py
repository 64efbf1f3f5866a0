"""`consolidate_tags VAULT [--mode] [--max-cost] [--wait]` through its command door."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from curation.models import Item, Job, TagConsolidation, TagRename
from ingest.importer import vault_import

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]

FILES = {
    "a.md": "---\ntags: [Python, agents]\n---\nA body.\n",
    "b.md": "---\ntags:\n  - python\n  - js\n---\nB body\n",
    "c.md": "---\ntags: [python, agent, coding/languages/javascript]\n---\nC.\n",
    "d.md": "---\ntags: [agents, cooking]\n---\nD.\n",
}


def command(*args):
    out = StringIO()
    result = call_command("consolidate_tags", *args, stdout=out)
    return out.getvalue() + (result or "")


@pytest.fixture
def vault(emulator, make_vault, fast_polls):
    vault, _ = vault_import(root=make_vault(FILES), name="v")
    return vault


def test_wait_runs_the_job_and_prints_the_merges(vault, emulator):
    out = command("v", "--wait")
    job = Job.objects.get()
    assert job.kind == Job.Kind.CONSOLIDATE and job.state == Job.State.SUCCEEDED
    assert job.mode == "sync" and job.cost > 0
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"job {job.id}: tag consolidation: 7 tags in 1 request, mode sync")
    assert "Python -> python (1 note)" in lines and "agent -> agents (1 note)" in lines
    assert "js -> coding/languages/javascript (1 note)" in lines
    assert f"job {job.id}: 3 merge(s) proposed; cost ${job.cost}" in lines[-1]
    assert TagConsolidation.objects.filter(job=job, state="pending").count() == 3
    assert not TagRename.objects.exists()  # nothing changes before a review


def test_without_wait_the_job_is_queued_and_a_worker_runs_it(
    vault, emulator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out = command("v", "--mode", "batch")
    job = Job.objects.get()
    assert out.strip().endswith(f"job {job.id} queued") and len(callbacks) == 1
    assert job.state == Job.State.PENDING and job.mode == "batch"
    assert emulator.stats()["messages"] == emulator.stats()["batches"] == 0  # nothing sent yet
    callbacks[0]()  # the commit: django-q2 runs the task inline here (the real task path)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and TagConsolidation.objects.filter(job=job).count() == 3
    assert emulator.stats()["batches"] == 1


def test_max_cost_refuses_before_anything_is_sent(vault, emulator):
    with pytest.raises(CommandError, match=r"over the maximum of \$0.0001: raise the maximum cost$"):
        command("v", "--max-cost", "0.0001", "--wait")
    assert not Job.objects.exists() and emulator.stats()["messages"] == 0


def test_mode_and_max_cost_are_kept_on_the_job(vault):
    command("v", "--mode", "parallel", "--max-cost", "5", "--wait")
    job = Job.objects.get()
    assert job.mode == "parallel" and job.requested_mode == "parallel" and job.max_cost == 5


def test_a_failed_job_exits_non_zero(vault, emulator, settings):
    settings.CURATION_MAX_ATTEMPTS = 1
    emulator.configure(fault_malformed=1.0)
    with pytest.raises(CommandError, match=r"failed: failed 1 \(invalid answer: no record_tag_consolidation tool call"):
        command("v", "--wait")
    assert Item.objects.get().state == Item.State.FAILED


def test_unknown_vault_and_too_few_tags(emulator, make_vault):
    with pytest.raises(CommandError, match="unknown vault 'nope'"):
        command("nope")
    vault_import(root=make_vault({"a.md": "plain\n"}), name="empty")
    with pytest.raises(CommandError, match="fewer than two tags"):
        command("empty")


def test_the_vault_as_an_option_still_works_and_must_agree(vault):
    command("--vault", "v", "--mode", "batch")
    assert Job.objects.get().kind == Job.Kind.CONSOLIDATE
    with pytest.raises(CommandError, match="two vaults named"):
        command("v", "--vault", "w")
    with pytest.raises(CommandError, match="name the vault"):
        command()


def test_help_says_what_it_does():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vaultcms.settings"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "consolidate_tags", "--help"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True,
    )  # fmt: skip
    text = " ".join(result.stdout.split())
    for words in ("VAULT", "--mode {auto,sync,parallel,batch}", "--max-cost USD", "--wait",
                  "tag renames that export_vault applies", "refused when over the maximum"):
        assert words in text, words

"""`curate --max-cost` and a model with no known price, through the command's door."""

import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from curation.models import Job

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


def curate(*args):
    out = StringIO()
    call_command("curate", *args, stdout=out)
    return out.getvalue()


def test_max_cost_sets_the_jobs_budget_and_is_printed(emulator, make_notes, fast_polls):
    make_notes(3)
    out = curate("--all", "--max-cost", "0.5", "--wait")
    job = Job.objects.get()
    assert job.max_cost == Decimal("0.5") and job.state == Job.State.SUCCEEDED
    assert f"estimated cost ${job.cost_estimate} (maximum $0.5)" in out


def test_max_cost_under_the_estimate_refuses_the_job(emulator, make_notes):
    make_notes(4)
    with pytest.raises(CommandError, match=r"estimated cost \$[0-9.]+ for 4 notes .* is over the "
                                           r"maximum of \$0\.00001"):
        curate("--all", "--max-cost", "0.00001")
    assert not Job.objects.exists() and emulator.stats()["messages"] == 0


def test_max_cost_must_be_a_number(make_notes):
    make_notes(1)
    with pytest.raises(CommandError, match="not a number of US dollars"):
        curate("--all", "--max-cost", "lots")


def test_max_cost_zero_means_no_limit(emulator, make_notes, settings):
    settings.CURATION_MAX_JOB_COST = Decimal("0.0000001")
    make_notes(2)
    curate("--all", "--max-cost", "0")
    assert Job.objects.get().max_cost is None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_refusals_exit_non_zero_with_a_one_line_reason(emulator, make_vault, tmp_path):
    db = tmp_path / "cli.sqlite3"
    root = make_vault({"a.md": "# A\n\nAlpha notes.\n", "b.md": "# B\n\nBeta notes.\n"})
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "ANTHROPIC_BASE_URL": emulator.url,
           "ANTHROPIC_API_KEY": "sk-ant-test"}
    env.pop("REDIS_URL", None)

    def manage(*args, **extra):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True,
                              env={**env, **extra}, timeout=120)

    assert manage("migrate", "--noinput").returncode == 0
    assert manage("import_vault", str(root), "--name", "v").returncode == 0
    unknown = manage("curate", "--all", CURATION_MODEL="claude-mystery-9")
    assert unknown.returncode == 1
    assert unknown.stderr.decode().strip().splitlines()[-1] == (
        "CommandError: no price is known for model 'claude-mystery-9': add it to "
        'CURATION_PRICES (e.g. {"claude-mystery-9": {"input": 3, "output": 15}}, US$ per million '
        "tokens)")
    over = manage("curate", "--all", "--max-cost", "0.000001")
    assert over.returncode == 1 and b"over the maximum of $0.000001" in over.stderr
    assert emulator.stats()["messages"] == 0 and emulator.stats()["batches"] == 0
    emulator.configure(models="*")  # a model the emulator's list lacks (else 404, like the API)
    priced = manage("curate", "--all", "--mode", "sync", "--wait",
                    CURATION_MODEL="claude-mystery-9",
                    CURATION_PRICES='{"claude-mystery-9": {"input": 1, "output": 5}}')
    assert priced.returncode == 0, priced.stderr.decode()
    assert b"succeeded 2; cost $" in priced.stdout

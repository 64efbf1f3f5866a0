"""The cost estimate: counted on the requests as sent, within 15% of what the demo is billed."""

import shutil
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from curation.api import pricing
from curation.engine import estimate, jobs
from curation.models import Item, Job, Mode
from ingest.models import Note

SAMPLE_VAULT = Path(__file__).resolve().parents[3] / "sample_vault"


@pytest.fixture
def demo_vault(db, tmp_path):
    """The demo vault (`make demo` imports the same folder): 33 notes and one broken one."""
    root = tmp_path / "demo-vault"
    shutil.copytree(SAMPLE_VAULT, root)
    call_command("import_vault", str(root), "--name", "demo", stdout=StringIO())
    return Note.objects.filter(vault__name="demo", state=Note.State.OK)


def run_and_compare(notes, mode):
    job = jobs.job_create(notes=notes, mode=mode, selection="demo")
    assert jobs.job_run(job_id=job.id, budget=120)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    return job, job.cost / job.cost_estimate - 1


@pytest.mark.parametrize("mode", [Mode.AUTO, Mode.SYNC])
def test_the_estimate_is_within_15_percent_of_the_billed_cost_on_the_demo(
        emulator, demo_vault, fast_polls, mode):
    job, error = run_and_compare(demo_vault, mode)
    print(f"demo vault, {job.mode}: estimated ${job.cost_estimate}, billed ${job.cost}, "
          f"error {error:+.1%}")
    assert job.mode == (Mode.BATCH if mode == Mode.AUTO else Mode.SYNC)
    assert abs(error) <= Decimal("0.15")

"""`curate` and `jobs` through their command doors (call_command and a real subprocess)."""

import os
import subprocess
import sys
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


def jobs_cmd(*args):
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_curate_wait_runs_to_the_end_and_prints_counts_and_cost(emulator, make_notes, fast_polls):
    make_notes(6)
    out = curate("--all", "--wait")
    job = Job.objects.get()
    assert job.state == Job.State.SUCCEEDED and job.mode == "batch"
    last = out.strip().splitlines()[-1]
    assert last == f"job {job.id} succeeded: succeeded 6; cost ${job.cost}"
    assert job.cost > 0 and emulator.stats()["batches"] == 1


def test_curate_without_wait_queues_the_job(
    emulator, make_notes, fast_polls, django_capture_on_commit_callbacks
):
    make_notes(3, vault="work")
    make_notes(2, vault="home")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out = curate("--vault", "work", "--fields", "tags", "--mode", "sync")
    job = Job.objects.get()
    assert out.strip().splitlines()[-1] == f"job {job.id} queued"
    assert len(callbacks) == 1 and job.state == Job.State.PENDING
    assert job.items.count() == 3 and job.fields == ["tags"] and job.mode == "sync"
    assert job.vault.name == "work" and job.cost_estimate > 0


def test_curate_path_glob(emulator, make_notes, fast_polls):
    make_notes(2, folder="projects")
    make_notes(3, folder="daily")
    curate("--path", "projects/*", "--wait", "--fields", "description")
    job = Job.objects.get()
    assert sorted(i.note.folder for i in job.items.select_related("note")) == ["projects"] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "choose the notes"),
        (["--vault", "nope"], "unknown vault 'nope'"),
        (["--path", "zzz/*"], "no curatable notes matched --path zzz/*"),
        (["--all", "--fields", "tags,colour"], "unknown field(s): colour"),
    ],
)
def test_curate_errors_are_one_line(make_notes, args, message):
    make_notes(1)
    with pytest.raises(CommandError, match=None) as err:
        curate(*args)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not Job.objects.exists()


def test_jobs_lists_and_waits_with_exit_codes(emulator, make_notes, fast_polls, settings):
    make_notes(2)
    curate("--all", "--wait")
    ok = Job.objects.get()
    listing = jobs_cmd()
    assert f"job {ok.id}  succeeded  batch  succeeded 2  cost ${ok.cost}" in listing
    assert listing.rstrip().endswith("1 recent job")
    assert jobs_cmd(str(ok.id), "--wait").strip().splitlines()[-1].startswith(f"job {ok.id}")

    settings.CURATION_MAX_ATTEMPTS = 1
    emulator.configure(fault_errored=1.0, fault_attempts=0)
    curate("--all", "--wait")
    failed = Job.objects.exclude(id=ok.id).get()
    assert failed.state == Job.State.FAILED
    with pytest.raises(CommandError) as err:
        jobs_cmd(str(failed.id), "--wait")
    assert err.value.returncode == 1 and "failed 2" in str(err.value)

    stuck = Job.objects.create(model="m", mode="batch")
    with pytest.raises(CommandError) as err:
        jobs_cmd(str(stuck.id), "--wait", "--timeout", "0.2", "--interval", "0.05")
    assert err.value.returncode == 2 and "timeout" in str(err.value)
    with pytest.raises(CommandError, match="no job with id 999"):
        jobs_cmd("999")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cp1252_console_with_an_emoji_note(emulator, make_vault, tmp_path):
    """The seed's Windows crash: an emoji filename printed to a cp1252 console."""
    db = tmp_path / "cli.sqlite3"
    root = make_vault({"🚀 Launch plan.md": "# Launch\n\nThe rocket launch plan.\n", "b.md": "B.\n"})
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "PYTHONIOENCODING": "cp1252",
        "ANTHROPIC_BASE_URL": emulator.url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CURATION_POLL_SECONDS": "1",
        "VAULTCMS_LOG_LEVEL": "INFO",
    }
    env.pop("REDIS_URL", None)

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
            timeout=120,
        )  # fmt: skip

    assert manage("migrate", "--noinput").returncode == 0
    assert manage("import_vault", str(root), "--name", "rocket").returncode == 0
    done = manage("curate", "--path", "🚀*", "--wait")
    assert done.returncode == 0, done.stderr.decode("cp1252", "replace")
    assert b"succeeded 1; cost $" in done.stdout
    assert b": 1 note, mode sync" in done.stdout
    assert b"Traceback" not in done.stderr
    missing = manage("curate", "--path", "🚀 nothing*")
    assert missing.returncode == 1
    assert b"no curatable notes matched --path \\U0001f680 nothing*" in missing.stderr

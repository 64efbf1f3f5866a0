"""`watch` through its command door: --help, the settings and their schedule, --once, --list."""

import datetime
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from curation.engine.watch import WATCH_FUNC, schedule_name, watch_task
from curation.models import Item, Job, Watch
from ingest.importer import vault_import

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


def watch(*args):
    out = StringIO()
    call_command("watch", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def vault(make_vault):
    root = make_vault({"a.md": "# A\n\nAlpha words here.\n", "b.md": "# B\n\nBravo words.\n"})
    return vault_import(root=root, name="Notes")[0]


def test_help_explains_the_scheduler_and_cron():
    out = subprocess.run(
        [sys.executable, "manage.py", "watch", "--help"], cwd=ROOT, capture_output=True,
        text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "django-q2" in out and "qcluster" in out
    assert "0 2 * * *" in out and "watch --vault Notes --once --wait" in out
    for option in ("--enable", "--disable", "--every MIN", "--at HH:MM", "--limit USD",
                   "--period {month,week}", "--once", "--list"):  # fmt: skip
        assert option in out


def test_enable_makes_the_schedule_and_disable_removes_it(vault):
    out = watch("--vault", "Notes", "--enable", "--every", "10", "--at", "03:30",
                "--limit", "5", "--period", "week")  # fmt: skip
    w = Watch.objects.get(vault=vault)
    assert (w.enabled, w.every_minutes, w.curate_at) == (True, 10, datetime.time(3, 30))
    assert (w.limit, w.period) == (Decimal(5), "week") and w.enabled_at is not None
    schedule = Schedule.objects.get(name=schedule_name(vault.pk))
    assert (schedule.func, schedule.args, schedule.minutes) == (WATCH_FUNC, str(w.pk), 10)
    assert schedule.schedule_type == Schedule.MINUTES and schedule.repeats == -1
    assert "Notes: enabled, import every 10 min, curate at 03:30; limit $5.00/week" in out

    watch("--vault", "Notes", "--every", "20")  # a change follows into the schedule
    assert Schedule.objects.get(name=schedule_name(vault.pk)).minutes == 20
    assert Schedule.objects.filter(name=schedule_name(vault.pk)).count() == 1

    watch("--vault", "Notes", "--disable")
    assert not Schedule.objects.filter(name=schedule_name(vault.pk)).exists()
    w.refresh_from_db()
    assert not w.enabled and w.enabled_at is None
    assert watch_task(w.pk) == "disabled"


def test_a_deleted_vaults_schedule_goes_at_its_next_run(vault):
    watch("--vault", "Notes", "--enable")
    w = Watch.objects.get()
    vault.delete()  # the watch goes with it (cascade); the Schedule is django-q2's
    assert Schedule.objects.filter(func=WATCH_FUNC).count() == 1
    assert watch_task(w.pk) == "missing"
    assert not Schedule.objects.filter(func=WATCH_FUNC).exists()


def test_the_schedule_func_is_a_task_the_worker_can_resolve(vault):
    from django_q.tasks import async_task  # q_sync: runs the dotted path in-process

    watch("--vault", "Notes", "--enable")
    w = Watch.objects.get()
    schedule = Schedule.objects.get(name=schedule_name(vault.pk))
    async_task(schedule.func, int(schedule.args))
    w.refresh_from_db()
    assert w.last_import_at is not None and "import: imported 0" in w.last_import
    assert w.last_curate_at is None  # enabled just now: curation waits for the curate time


def test_once_imports_and_queues_the_notes_and_list_shows_it(vault, emulator, fast_polls):
    out = watch("--vault", "Notes", "--once", "--wait", "--limit", "2")
    job = Job.objects.get()
    assert job.mode == "batch" and job.state == Job.State.SUCCEEDED
    assert Item.objects.filter(job=job).count() == 2
    assert "2 of 2 notes queued in job" in out
    assert f"job {job.id} succeeded: succeeded 2; cost ${job.cost}" in out
    listed = watch("--list")
    assert "Notes: disabled" in listed and "limit $2.00/month" in listed
    assert "last: limit $2.00/month: 2 of 2 notes queued" in listed

    again = watch("--vault", "Notes", "--once")  # nothing changed since
    assert "nothing new or changed" in again and Job.objects.count() == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--enable"], "give --vault NAME"),
        (["--vault", "Nope", "--enable"], "no vault named 'Nope'"),
        (["--vault", "Notes", "--every", "0"], "1 minute at least"),
        (["--vault", "Notes", "--wait"], "--wait goes with --once"),
    ],
)
def test_mistakes_are_refused_with_their_reason(vault, args, message):
    with pytest.raises(CommandError, match=message):
        watch(*args)


def test_bad_time_and_amount_are_refused_by_the_parser(vault):
    for args in (["--at", "25:00"], ["--limit", "five"]):
        result = subprocess.run(
            [sys.executable, "manage.py", "watch", "--vault", "Notes", *args], cwd=ROOT,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode != 0 and ("HH:MM" in result.stderr or "US dollars" in result.stderr)

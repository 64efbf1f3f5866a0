"""Watched vaults: scheduled passes import, then queue new and changed notes once, in one batch
job, within the period's limit; two passes at once never both queue.

Time is frozen by passing `now` into watch_run; jobs themselves run on the emulator (q_sync:
the task queued on commit runs in-process).
"""

import datetime
import os
import re
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from curation.engine import watch as watch_engine
from curation.engine.estimate import job_estimate
from curation.engine.watch import (
    notes_to_curate,
    period_bounds,
    period_spent,
    watch_claim,
    watch_configure,
    watch_run,
)
from curation.models import ALL_FIELDS, Item, Job, Suggestion, Watch
from curation.review.decisions import suggestions_decide
from ingest.importer import vault_import
from ingest.models import Note


def note_text(word: str, extra: str = "") -> str:
    # Same length for every word: per-note estimates are equal, so the limit's sizing is exact.
    return f"# {word}\n\nThe {word} method explains {word} in depth.{extra}\n"


@pytest.fixture
def base():
    return timezone.now()


@pytest.fixture
def watched(make_vault, base):
    """A vault on disk, imported once, watched with curation due every day at 00:00 local."""

    def build(words, **settings):
        root = make_vault({f"notes/{w}.md": note_text(w) for w in words})
        vault, _ = vault_import(root=root, name="watched")
        watch = watch_configure(vault=vault, enabled=True, curate_at=datetime.time(0, 0),
                                now=base - datetime.timedelta(days=2), **settings)  # fmt: skip
        return root, watch

    return build


def items_of(job):
    return sorted(Item.objects.filter(job=job).values_list("note__path", flat=True))


def run_now(capture, *, watch, now, **kwargs):
    """One pass; the job it queues runs to its end (its task is queued on commit)."""
    with capture(execute=True):
        return watch_run(watch_id=watch.pk, now=now, **kwargs)


@pytest.mark.django_db
def test_two_scheduled_runs_queue_new_and_changed_notes_once_as_one_batch_job(
    emulator, watched, base, fast_polls, admin_user, django_capture_on_commit_callbacks
):
    root, watch = watched(["alpha", "bravo", "charlie"])
    line = run_now(django_capture_on_commit_callbacks, watch=watch, now=base)
    first = Job.objects.get()
    assert "3 of 3 notes queued in job" in line
    assert first.mode == "batch" and first.state == Job.State.SUCCEEDED
    assert first.vault_id == watch.vault_id
    assert items_of(first) == ["notes/alpha.md", "notes/bravo.md", "notes/charlie.md"]
    # A moderator decides; then on disk one note changes and one is added, one stays.
    suggestions_decide(queryset=Suggestion.objects.all(), user=admin_user, decision="rejected")
    (root / "notes/bravo.md").write_text(note_text("bravo", " Changed."))
    (root / "notes/delta.md").write_text(note_text("delta"))

    # Later the same day: imported, but the curation already ran today.
    line = run_now(django_capture_on_commit_callbacks, watch=watch,
                   now=base + datetime.timedelta(minutes=15))  # fmt: skip
    assert "imported 1, updated 1, unchanged 2" in line and "curation next due" in line
    assert Job.objects.count() == 1

    # The next day's pass queues exactly the new and the changed note, in one batch job.
    line = run_now(django_capture_on_commit_callbacks, watch=watch,
                   now=base + datetime.timedelta(days=1))  # fmt: skip
    second = Job.objects.exclude(pk=first.pk).get()
    assert items_of(second) == ["notes/bravo.md", "notes/delta.md"]
    assert second.mode == "batch" and second.state == Job.State.SUCCEEDED
    watch.refresh_from_db()
    assert watch.last_job == second and "2 of 2 notes queued" in watch.outcome
    assert watch.running_since is None

    # Nothing changed since: the third day queues nothing (and pending suggestions wait).
    line = run_now(django_capture_on_commit_callbacks, watch=watch,
                   now=base + datetime.timedelta(days=2))  # fmt: skip
    assert "nothing new or changed" in line
    assert Job.objects.count() == 2


@pytest.mark.django_db
def test_notes_in_an_unfinished_job_or_awaiting_review_are_not_queued_again(
    emulator, watched, base, admin_user, django_capture_on_commit_callbacks
):
    root, watch = watched(["alpha", "bravo"])
    with django_capture_on_commit_callbacks(execute=False):  # its task never runs: stays queued
        watch_run(watch_id=watch.pk, now=base)
    job = Job.objects.get()
    assert job.state == Job.State.PENDING
    (root / "notes/alpha.md").write_text(note_text("alpha", " Changed."))
    line = watch_run(watch_id=watch.pk, now=base + datetime.timedelta(days=1))
    assert "nothing new or changed" in line and Job.objects.count() == 1

    # With pending suggestions a changed note waits for its reviewer, not for the model.
    Job.objects.filter(pk=job.pk).update(state=Job.State.SUCCEEDED)
    item = Item.objects.get(job=job, note__path="notes/alpha.md")
    Suggestion.objects.create(item=item, note_id=item.note_id, job=job, field="description",
                              value="x", model="m", note_hash=item.note_hash)  # fmt: skip
    assert notes_to_curate(vault_id=watch.vault_id) == [
        Note.objects.get(path="notes/bravo.md").pk  # never answered: still to curate
    ]


@pytest.mark.django_db
def test_the_period_limit_stops_a_run_and_the_next_period_picks_up_the_rest(
    emulator, watched, base, fast_polls, django_capture_on_commit_callbacks
):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    root, watch = watched(words)
    ids = list(Note.objects.order_by("id").values_list("id", flat=True))
    per_note = job_estimate(note_ids=ids, fields=ALL_FIELDS, model="claude-haiku-4-5",
                            batch=True).cost / len(ids)  # fmt: skip
    limit = (per_note * Decimal("3.5")).quantize(Decimal("0.000001"))
    watch = watch_configure(vault=watch.vault, limit=limit, period="month")
    start, end = period_bounds(now=base, period="month")

    line = run_now(django_capture_on_commit_callbacks, watch=watch, now=base)
    first = Job.objects.get()
    assert len(items_of(first)) == 3, line
    assert first.max_cost == limit  # the job itself cannot pass what the period leaves
    watch.refresh_from_db()
    assert watch.outcome.startswith(f"limit ${limit:.4f}/month: 3 of 6 notes queued in job")
    assert watch.outcome.endswith(f"the rest waits until {end:%Y-%m-%d}")
    spent = period_spent(vault_id=watch.vault_id, start=start, end=end)
    assert 0 < spent <= limit

    # Again in the same period (a forced pass, as `watch --once`): only what the job's real
    # cost left over may be spent (the emulator answers shorter than estimated).
    line = run_now(django_capture_on_commit_callbacks, watch=watch, now=base, force_curate=True)
    assert period_spent(vault_id=watch.vault_id, start=start, end=end) <= limit, line
    assert f"until {end:%Y-%m-%d}" in line
    queued = set(Item.objects.values_list("note__path", flat=True))
    assert 3 <= len(queued) < 6

    # The next period's scheduled pass picks up the rest.
    later = end + datetime.timedelta(hours=3)
    line = run_now(django_capture_on_commit_callbacks, watch=watch, now=later)
    last = Job.objects.order_by("-id").first()
    rest = sorted({f"notes/{w}.md" for w in words} - queued)
    assert items_of(last) == rest, line
    assert f"{len(rest)} of {len(rest)} notes queued" in line and "the rest waits" not in line

@pytest.mark.django_db
def test_period_bounds_month_and_week():
    tz = timezone.get_current_timezone()
    now = datetime.datetime(2026, 12, 17, 15, 0, tzinfo=tz)  # a Thursday
    assert period_bounds(now=now, period="month") == (
        datetime.datetime(2026, 12, 1, tzinfo=tz), datetime.datetime(2027, 1, 1, tzinfo=tz))
    assert period_bounds(now=now, period="week") == (
        datetime.datetime(2026, 12, 14, tzinfo=tz), datetime.datetime(2026, 12, 21, tzinfo=tz))


@pytest.mark.django_db
def test_curation_is_due_once_a_day_at_its_time_after_being_enabled(watched, base, emulator):
    _, watch = watched(["alpha"])
    tz = timezone.get_current_timezone()
    watch.curate_at = datetime.time(2, 0)
    watch.enabled_at = datetime.datetime(2026, 12, 5, 10, 0, tzinfo=tz)
    at = datetime.datetime
    assert not watch_engine.curate_due(watch=watch, now=at(2026, 12, 5, 23, 0, tzinfo=tz))
    assert not watch_engine.curate_due(watch=watch, now=at(2026, 12, 6, 1, 59, tzinfo=tz))
    assert watch_engine.curate_due(watch=watch, now=at(2026, 12, 6, 2, 0, tzinfo=tz))
    watch.last_curate_at = at(2026, 12, 6, 2, 7, tzinfo=tz)
    assert not watch_engine.curate_due(watch=watch, now=at(2026, 12, 6, 23, 0, tzinfo=tz))
    assert watch_engine.curate_due(watch=watch, now=at(2026, 12, 7, 2, 1, tzinfo=tz))


@pytest.mark.django_db
def test_a_live_lease_skips_the_pass_and_a_dead_one_is_taken_over(watched, base, emulator):
    _, watch = watched(["alpha"])
    token = watch_claim(watch_id=watch.pk, now=base)
    assert token
    line = watch_run(watch_id=watch.pk, now=base + datetime.timedelta(seconds=5))
    assert line.startswith("skipped: the pass started") and not Job.objects.exists()
    assert Watch.objects.get(pk=watch.pk).running_token == token  # the holder keeps it
    # Its worker died: once the lease is older than a task can live, the next pass runs.
    late = base + watch_engine.lease_length() + datetime.timedelta(seconds=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(watch_engine.jobs, "job_start", lambda job_id: None)
        line = watch_run(watch_id=watch.pk, now=late)
    assert "1 of 1 notes queued" in line
    assert Watch.objects.get(pk=watch.pk).running_since is None


@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_queue_once(watched, base, emulator, monkeypatch):
    """Two scheduler runs at the same instant, each in its own thread and database session."""
    _, watch = watched(["alpha", "bravo", "charlie"])
    monkeypatch.setattr(watch_engine.jobs, "job_start", lambda job_id: None)  # stays queued
    real_import = watch_engine.vault_import

    def slow_import(**kwargs):
        time.sleep(0.5)  # the pass that won is still importing while the other one starts
        return real_import(**kwargs)

    monkeypatch.setattr(watch_engine, "vault_import", slow_import)
    barrier = threading.Barrier(2)
    lines = [None, None]

    def one(i):
        try:
            barrier.wait(timeout=10)
            lines[i] = watch_run(watch_id=watch.pk, now=base)
        except Exception as exc:  # recorded and asserted on below
            lines[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(isinstance(line, Exception) for line in lines), lines
    skipped = [line for line in lines if line.startswith("skipped")]
    assert len(skipped) == 1, lines
    assert Job.objects.count() == 1
    assert Item.objects.count() == 3  # each note once
    assert Watch.objects.get(pk=watch.pk).running_since is None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_qcluster_runs_the_schedule_and_the_job_it_queues(emulator, make_vault, tmp_path):
    """The worker path: django-q2's scheduler runs the watch's task in a real `qcluster`
    (ORM broker), and the job a pass queues is carried to its end by that cluster."""
    from tests.curation.engine.test_qcluster import database_url, manage, running_qcluster

    env = {**os.environ, "DATABASE_URL": database_url(tmp_path), "ANTHROPIC_BASE_URL": emulator.url,
           "ANTHROPIC_API_KEY": "sk-ant-test", "CURATION_POLL_SECONDS": "1",
           "VAULTCMS_Q_NAME": f"vaultcms-test-{uuid.uuid4().hex[:8]}",
           "VAULTCMS_CACHE_PREFIX": f"vaultcms-test-{uuid.uuid4().hex[:8]}",
           "VAULTCMS_WORKERS": "1", "VAULTCMS_Q_SYNC": "0", "PYTHONIOENCODING": "utf-8"}  # fmt: skip
    env.pop("REDIS_URL", None)
    emulator.configure(batch_seconds=1)
    root = make_vault({f"topic {i}.md": note_text(f"watchqc{i}word") for i in range(3)})
    assert manage(env, "migrate", "--noinput").returncode == 0
    assert manage(env, "import_vault", str(root), "--name", "qc-watch").returncode == 0
    enabled = manage(env, "watch", "--vault", "qc-watch", "--enable", "--every", "1")
    assert enabled.returncode == 0, enabled.stderr
    (root / "topic 9.md").write_text(note_text("watchqc9word"))  # for the scheduled import

    with running_qcluster(env, tmp_path / "qcluster.log"):
        deadline = time.monotonic() + 120
        listed = ""
        while time.monotonic() < deadline and not re.search(r"imported \d{4}-", listed):
            time.sleep(2)
            listed = manage(env, "watch", "--list").stdout
        log = (tmp_path / "qcluster.log").read_text(errors="replace")
        assert re.search(r"imported \d{4}-", listed), listed + log[-3000:]  # the schedule ran
        assert "curated" not in listed  # enabled just now: curation waits for 02:00

        once = manage(env, "watch", "--vault", "qc-watch", "--once")
        assert once.returncode == 0, once.stderr
        # The scheduled pass had imported the new note already; this one found nothing new.
        assert "import: imported 0, updated 0, unchanged 4" in once.stdout, once.stdout
        assert "4 of 4 notes queued in job" in once.stdout, once.stdout
        job_id = once.stdout.split(" notes queued in job ")[1].split()[0]
        waited = manage(env, "jobs", job_id, "--wait", "--timeout", "90", "--interval", "0.5")
        log = (tmp_path / "qcluster.log").read_text(errors="replace")
        assert waited.returncode == 0, waited.stdout + waited.stderr + log[-3000:]
        assert f"job {job_id}  succeeded  batch  succeeded 4" in waited.stdout

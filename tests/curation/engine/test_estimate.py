"""The cost estimate: counted on the requests as sent, within 15% of what the demo is billed."""

import shutil
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from curation.api import pricing
from curation.engine import estimate, jobs
from curation.models import Job, Mode
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


def test_a_big_job_is_counted_on_a_bounded_sample(emulator, make_notes):
    notes = make_notes(150)
    for i, note in enumerate(notes):  # lengths that differ a lot from note to note
        Note.objects.filter(id=note.id).update(body=note.body * (1 + i % 23))
    ids = [n.id for n in notes]
    sampled = estimate.job_estimate(note_ids=ids, fields=["tags", "description", "related"],
                                    model="claude-haiku-4-5", batch=True)
    assert sampled.sampled == estimate.SAMPLE and sampled.counted_by == "count_tokens"
    assert emulator.stats()["count_tokens"] == estimate.SAMPLE
    every = estimate.job_estimate(note_ids=ids, fields=["tags", "description", "related"],
                                  model="claude-haiku-4-5", batch=True, sample=len(ids))
    assert abs(sampled.cost / every.cost - 1) < Decimal("0.05")


def test_without_count_tokens_the_estimate_counts_locally(make_notes, caplog):
    ids = [n.id for n in make_notes(3)]  # no emulator: ANTHROPIC_* unset
    result = estimate.job_estimate(note_ids=ids, fields=["tags"], model="claude-haiku-4-5",
                                   batch=False)
    assert result.counted_by == "local" and result.cost > 0
    assert caplog.text.count("count_tokens unavailable") == 1


def test_a_cached_prefix_is_estimated_as_the_api_bills_it(
        emulator, demo_vault, fast_polls, monkeypatch):
    """With the whole taxonomy cache-marked and a minimum it reaches, reads are counted too."""
    from functools import partial

    from curation.api import prompt
    from curation.emulator import server

    monkeypatch.setattr(prompt, "build_request", partial(prompt.build_request, shape="full"))
    monkeypatch.setattr(pricing, "cache_minimum", lambda model: 100)
    monkeypatch.setattr(server, "cache_minimum", lambda model: 100)
    for mode in (Mode.SYNC, Mode.BATCH):
        emulator.reset()
        job, error = run_and_compare(demo_vault, mode)
        stats = emulator.stats()
        assert stats["cache_reads"] > 0 and stats["cache_writes"] >= 1
        print(f"demo vault, cached prefix, {mode}: estimated ${job.cost_estimate}, billed "
              f"${job.cost}, error {error:+.1%}")
        assert abs(error) <= Decimal("0.15")


def varied_notes(make_notes, n):
    """Notes whose lengths differ a lot, with the size a real import stores."""
    notes = make_notes(n)
    for i, note in enumerate(notes):
        body = note.body * (1 + i % 23)
        Note.objects.filter(id=note.id).update(body=body, size=len(body.encode()))
    return [n.id for n in notes]


def test_a_large_selection_is_estimated_on_a_sample_without_reading_every_note(
        emulator, make_notes, monkeypatch):
    """Above EXACT_UP_TO notes: LARGE_SAMPLE requests counted, no body read per note and no
    index of the whole vault built, and the dollars within 10% of counting every request."""
    ids = varied_notes(make_notes, 300)
    fields = ["tags", "description", "related"]
    every = estimate.job_estimate(note_ids=ids, fields=fields, model="claude-haiku-4-5",
                                  batch=True, sample=len(ids))  # every request counted
    emulator.reset()

    def refused(*args, **kwargs):
        raise AssertionError("the sampled estimate must not read the whole selection or vault")

    monkeypatch.setattr(estimate, "_body_chars", refused)
    monkeypatch.setattr(requests_module(), "vault_index", refused)
    # Candidates and taxonomy from a third of the notes, as from 500 of 100,000 in a big vault.
    monkeypatch.setattr(estimate, "INDEX_SAMPLE", 100)
    sampled = estimate.job_estimate(note_ids=ids, fields=fields, model="claude-haiku-4-5",
                                    batch=True)
    assert sampled.sampled == estimate.LARGE_SAMPLE
    # The 50 requests, and the two probes of the cacheable prefix.
    assert emulator.stats()["count_tokens"] <= estimate.LARGE_SAMPLE + 2
    print(f"300 notes: sampled ${sampled.cost}, every request counted ${every.cost}")
    assert abs(sampled.cost / every.cost - 1) < Decimal("0.10")


def test_a_small_selection_keeps_the_exact_path(emulator, make_notes, monkeypatch):
    ids = varied_notes(make_notes, estimate.EXACT_UP_TO)
    read = []
    real = estimate._body_chars
    monkeypatch.setattr(estimate, "_body_chars", lambda ids: read.append(len(ids)) or real(ids))
    result = estimate.job_estimate(note_ids=ids, fields=["tags"], model="claude-haiku-4-5",
                                   batch=True)
    assert read == [len(ids)] and result.sampled == estimate.SAMPLE


def requests_module():
    from curation.engine import requests

    return requests

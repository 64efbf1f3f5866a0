"""Jobs end to end through the real client against the emulator, progressively larger.

The same boundaries the seed article's authors tested: 1, 2, 6 notes, a batch size -1/=/+1,
and 122 notes across two batches with shuffled results.
"""

import time

import pytest

from curation.api import client
from curation.engine import items, jobs
from curation.models import Batch, Item, Job, Suggestion
from ingest.models import Note
from tests.curation.conftest import word_for

pytestmark = pytest.mark.django_db


def run(notes, **kwargs):
    kwargs.setdefault("fields", ["tags", "description"])
    job = jobs.job_create(notes=[n.id for n in notes], **kwargs)
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    job.refresh_from_db()
    return job


def assert_own_suggestions(job, notes):
    """Every note got the suggestion made from its own text, not a neighbour's."""
    words = {note.id: word_for(i) for i, note in enumerate(sorted(notes, key=lambda n: n.id))}
    by_note = {}
    for s in Suggestion.objects.filter(job=job).select_related("item"):
        assert s.note_id == s.item.note_id
        by_note.setdefault(s.note_id, {})[s.field] = s.value
    assert set(by_note) == set(words)
    for note_id, word in words.items():
        assert word in by_note[note_id]["description"], (note_id, word, by_note[note_id])
        assert any(word in tag for tag in by_note[note_id]["tags"]), by_note[note_id]["tags"]


def test_one_note_is_one_messages_call_and_no_batch(emulator, make_notes, fast_polls):
    notes = make_notes(1)
    job = run(notes)
    stats = emulator.stats()
    assert job.mode == "sync" and job.state == Job.State.SUCCEEDED
    assert stats["messages"] == 1 and stats["batches"] == 0
    assert not Batch.objects.exists()
    item = Item.objects.get(job=job)
    assert item.state == Item.State.SUCCEEDED and item.attempts == 1 and item.cost > 0
    assert job.cost == item.cost
    assert_own_suggestions(job, notes)


@pytest.mark.parametrize("n", [2, 6])
def test_two_and_six_notes_are_one_batch(emulator, make_notes, fast_polls, n):
    notes = make_notes(n)
    job = run(notes)
    stats = emulator.stats()
    assert job.mode == "batch" and job.state == Job.State.SUCCEEDED
    assert stats["batches"] == 1 and stats["batch_requests"] == n and stats["messages"] == 0
    batch = Batch.objects.get(job=job)
    assert batch.state == Batch.State.APPLIED and batch.request_count == n
    assert batch.provider_id.startswith("msgbatch_")
    assert Item.objects.filter(job=job, state=Item.State.SUCCEEDED, attempts=1).count() == n
    assert job.cost == sum(i.cost for i in Item.objects.filter(job=job)) > 0
    assert_own_suggestions(job, notes)


@pytest.mark.parametrize(("n", "expected"), [(4, 1), (5, 1), (6, 2), (11, 3)])
def test_batches_split_at_the_batch_size(emulator, make_notes, fast_polls, settings, n, expected):
    settings.CURATION_BATCH_SIZE = 5
    notes = make_notes(n)
    job = run(notes)
    sizes = list(Batch.objects.filter(job=job).values_list("request_count", flat=True))
    assert len(sizes) == expected and max(sizes) <= 5 and sum(sizes) == n
    assert emulator.stats()["batches"] == expected
    assert job.state == Job.State.SUCCEEDED
    assert_own_suggestions(job, notes)


def test_122_notes_two_batches_shuffled_results_land_on_their_own_notes(
    emulator, make_notes, fast_polls, settings
):
    settings.CURATION_BATCH_SIZE = 100
    notes = make_notes(122)
    job = run(notes, fields=["tags", "description", "related"])
    assert list(Batch.objects.filter(job=job).values_list("request_count", flat=True)) == [100, 22]
    assert job.state == Job.State.SUCCEEDED
    assert Suggestion.objects.filter(job=job).count() == 122 * 3
    assert_own_suggestions(job, notes)
    # Each custom_id names its own Item row, whatever order the results came back in.
    for item in Item.objects.filter(job=job).select_related("note"):
        assert item.custom_id.startswith(f"{jobs.install_key()}_{item.id:08d}_")


def test_errored_and_expired_items_are_retried_alone(emulator, make_notes, fast_polls):
    emulator.configure(fault_errored=0.2, fault_expired=0.15, fault_attempts=1)
    notes = make_notes(30)
    job = run(notes)
    assert job.state == Job.State.SUCCEEDED
    per_note = emulator.stats()["notes"]
    faulted = {path for path, sent in per_note.items() if sent > 1}
    assert len(faulted) >= 2  # the hash-chosen share of 30 notes
    for item in Item.objects.filter(job=job).select_related("note"):
        assert item.attempts == (2 if item.note.path in faulted else 1)
        assert per_note[item.note.path] == item.attempts
    first, retry = Batch.objects.filter(job=job).order_by("id")
    assert first.request_count == 30 and retry.request_count == len(faulted)
    assert_own_suggestions(job, notes)


def test_a_single_retry_goes_as_one_real_time_call(emulator, make_notes, fast_polls):
    emulator.configure(batch_seconds=0.3)
    notes = make_notes(2)
    job = jobs.job_create(notes=[n.id for n in notes], fields=["description"])
    jobs.job_step(job_id=job.id)  # prepares and submits the batch
    assert Batch.objects.get(job=job).state == Batch.State.IN_PROGRESS
    time.sleep(0.35)
    # The provider loses one of the two results: the batch ends without it.
    batch = Batch.objects.get(job=job)
    real_iter = client.iter_results

    def drop_one(batch_id, **kwargs):
        results = list(real_iter(batch_id, **kwargs))
        return iter(results[1:])

    client.iter_results, saved = drop_one, real_iter
    try:
        jobs.job_step(job_id=job.id)
    finally:
        client.iter_results = saved
    lost = Item.objects.get(job=job, attempts=1, state=Item.State.ERRORED)
    assert "no result" in lost.error
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None)
    lost.refresh_from_db()
    assert lost.state == Item.State.SUCCEEDED and lost.attempts == 2 and lost.batch is None
    assert emulator.stats()["batches"] == 1 and emulator.stats()["messages"] == 1
    assert Batch.objects.get(id=batch.id).state == Batch.State.APPLIED


def test_exhausted_retries_fail_with_the_reason_then_retry_failed_finishes_them(
    emulator, make_notes, fast_polls, settings, django_capture_on_commit_callbacks
):
    settings.CURATION_MAX_ATTEMPTS = 2
    emulator.configure(fault_errored=0.3, fault_attempts=0)  # the faulty notes always fail
    notes = make_notes(20)
    job = run(notes)
    assert job.state == Job.State.FAILED
    failed = list(Item.objects.filter(job=job, state=Item.State.FAILED))
    assert failed
    for item in failed:
        assert item.attempts == 2
        assert "api_error" in item.error and "gave up after 2 attempts" in item.error
    assert Item.objects.filter(job=job, state=Item.State.SUCCEEDED).count() == 20 - len(failed)
    assert job.cost == items.job_cost(job_id=job.id) > 0

    emulator.configure(fault_errored=0.0)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert jobs.job_retry_failed(job_id=job.id) == len(failed)
    assert len(callbacks) == 1  # the job went back to the workers (run inline here)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert Item.objects.filter(job=job, state=Item.State.SUCCEEDED).count() == 20
    assert_own_suggestions(job, notes)


def test_skipped_and_missing_notes_are_never_queued(emulator, make_notes, fast_polls):
    notes = make_notes(4)
    notes[1].state = "skipped"
    notes[1].save()
    notes[2].state = "missing"
    notes[2].save()
    job = run(notes)
    assert set(Item.objects.filter(job=job).values_list("note_id", flat=True)) == {
        notes[0].id, notes[3].id,
    }  # fmt: skip
    assert emulator.stats()["batch_requests"] == 2
    with pytest.raises(jobs.NoNotesError):
        jobs.job_create(notes=[notes[1].id, notes[2].id])


def test_related_suggestions_are_paths_of_offered_candidates(emulator, make_notes, fast_polls):
    notes = make_notes(
        3, names=["Agent frameworks compared", "Agent memory design", "Sourdough baking"]
    )
    job = run(notes, fields=["related"])
    related = {
        s.note_id: s.value for s in Suggestion.objects.filter(job=job, field="related")
    }
    assert related[notes[0].id] == [notes[1].path]
    assert related[notes[1].id] == [notes[0].path]
    assert notes[2].path not in related[notes[0].id] + related[notes[1].id]
    for note_id, paths in related.items():
        assert all(p != Note.objects.get(id=note_id).path for p in paths)


def test_batch_saves_the_candidates_each_request_offered(emulator, make_notes, fast_polls):
    notes = make_notes(
        3, names=["Agent frameworks compared", "Agent memory design", "Sourdough baking"]
    )
    job = run(notes, fields=["related"])
    batch = Batch.objects.get(job=job)
    by_item = dict(Item.objects.filter(job=job).values_list("custom_id", "note_id"))
    assert set(batch.offered) == set(by_item)  # one entry per request sent
    for s in Suggestion.objects.filter(job=job, field="related").select_related("item"):
        assert set(s.value) <= set(batch.offered[s.item.custom_id])
    offered = batch.offered[Item.objects.get(job=job, note=notes[0]).custom_id]
    assert notes[1].path in offered and notes[0].path not in offered


def test_related_checked_against_the_saved_candidates_not_recomputed(make_notes):
    from curation.engine.requests import RequestBuilder

    notes = make_notes(2, names=["Agent frameworks compared", "Agent memory design"])
    job = jobs.job_create(notes=[n.id for n in notes], fields=["related"])
    batch = Batch.objects.create(job=job, offered={"cid-1": ["Saved only.md"]})
    lookup = RequestBuilder(job).candidates_lookup(batch)
    assert lookup("cid-1") == ["Saved only.md"]  # what the request carried, whatever the index
    with pytest.raises(KeyError):
        lookup("cid-unknown")
    # a batch sent before the map was saved: recomputed from the index, by custom_id
    old = Batch.objects.create(job=job)
    Item.objects.filter(job=job).update(batch=old)
    item = Item.objects.get(job=job, note=notes[0])
    assert RequestBuilder(job).candidates_lookup(old)(item.custom_id) == [notes[1].path]

"""A stored selection: ids as JSON [first, last] ranges, read back; older formats refused."""

import base64
import json
import pickle

import pytest

from curation.engine import selection
from ingest.models import Note


@pytest.mark.parametrize(
    "ids, ranges",
    [
        ([], []),
        ([7], [[7, 7]]),
        ([3, 1, 2], [[1, 3]]),
        ([1, 2, 4, 5, 5, 9], [[1, 2], [4, 5], [9, 9]]),
        (range(1, 100_001), [[1, 100_000]]),
    ],
)
def test_ids_become_ranges_and_back(ids, ranges):
    assert selection.id_ranges(ids) == ranges
    assert selection.ids_from_ranges(ranges) == sorted(set(ids))
    assert selection.ranges_count(ranges) == len(set(ids))
    stored = json.loads(json.dumps(selection.selection_from_ids(ids)))  # as a JSONField keeps it
    assert selection.selection_ids(stored) == sorted(set(ids))


def test_a_hundred_thousand_scattered_ids_stay_small_when_mostly_consecutive():
    ids = [i for i in range(1, 100_001) if i % 1000]  # a gap every 1,000 notes
    stored = json.dumps(selection.selection_from_ids(ids))
    assert len(stored) < 4000
    assert selection.selection_ids(json.loads(stored)) == ids


def test_an_older_pickled_query_is_refused_with_a_clear_message(db):
    query = base64.b64encode(pickle.dumps(Note.objects.all().query)).decode()
    with pytest.raises(selection.SelectionFormatError, match="older version.*run the action again"):
        selection.selection_ids({"query": query})


@pytest.mark.parametrize(
    "stored",
    [None, [], [[1, 2]], {"ranges": [[2, 1]]}, {"ranges": [[1]]}, {"ranges": [["1", "2"]]},
     {"ranges": "1-2"}, {"ranges": [[True, 2]]}, {"ids": [1, 2]}],
)  # fmt: skip
def test_an_unknown_format_is_refused(stored):
    with pytest.raises(selection.SelectionFormatError, match="not in a format"):
        selection.selection_ids(stored)


def test_ranges_q_selects_exactly_the_ranges(db, make_notes):
    notes = make_notes(12)
    wanted = [n.id for n in notes if n.id % 3]
    ranges = selection.id_ranges(wanted)
    found = set()
    for condition in selection.ranges_q(ranges, "id"):
        found.update(Note.objects.filter(condition).values_list("id", flat=True))
    assert sorted(found) == wanted


def test_selection_of_reads_a_queryset_once_as_ranges(db, make_notes):
    notes = make_notes(5)
    stored = selection.selection_of(Note.objects.exclude(id=notes[2].id))
    assert stored == {"ranges": [[notes[0].id, notes[1].id], [notes[3].id, notes[4].id]]}

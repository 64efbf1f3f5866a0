"""Two moderators at the same instant, in two real database sessions (PostgreSQL row locks).

SQLite serializes writers for the whole transaction, so the race cannot happen there; the
stale-page case for SQLite is covered in test_note_page and test_decide.
"""

import threading

import pytest
from django.db import connection

from curation.models import Review, Suggestion
from curation.review.decisions import ReviewConflict, suggestion_decide, suggestions_decide

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"
    ),
]


def _race(*calls):
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(i, call):
        from django.db import connection as conn

        try:
            barrier.wait(timeout=10)
            outcomes[i] = call()
        except Exception as exc:  # recorded and asserted on below
            outcomes[i] = exc
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def test_same_suggestion_two_moderators(make_note, make_suggestion, moderator, moderator2):
    for _ in range(5):
        s = make_suggestion(make_note(), "description", "x")
        outcomes = _race(
            lambda s=s: suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved"),
            lambda s=s: suggestion_decide(suggestion_id=s.pk, user=moderator2, decision="rejected"),
        )
        conflicts = [o for o in outcomes if isinstance(o, ReviewConflict)]
        reviews = [o for o in outcomes if isinstance(o, Review)]
        assert (len(conflicts), len(reviews)) == (1, 1), outcomes
        assert "already decided" in str(conflicts[0])
        assert Review.objects.filter(suggestion=s).count() == 1
        assert Suggestion.objects.get(pk=s.pk).state == reviews[0].decision


def test_bulk_and_single_never_both_decide(make_note, make_suggestion, moderator, moderator2):
    suggestions = [make_suggestion(make_note(), "description", "x") for _ in range(50)]
    target = suggestions[25]
    outcomes = _race(
        lambda: suggestions_decide(
            queryset=Suggestion.objects.all(), user=moderator, decision="approved"
        ),
        lambda: suggestion_decide(suggestion_id=target.pk, user=moderator2, decision="rejected"),
    )
    assert not any(isinstance(o, Exception) and not isinstance(o, ReviewConflict) for o in outcomes)
    assert Review.objects.count() == 50
    assert Review.objects.filter(suggestion=target).count() == 1
    assert not Suggestion.objects.filter(state="pending").exists()

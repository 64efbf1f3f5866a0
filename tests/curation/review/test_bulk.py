"""suggestions_decide: bulk approval/rejection in a fixed number of queries, human edits kept."""

import pytest

from curation.models import Item, Review, Suggestion
from curation.review.decisions import (
    BulkResult,
    ReviewError,
    ReviewForbidden,
    approved_values,
    suggestion_decide,
    suggestions_decide,
)
from curation.review.locks import note_lock_claim
from ingest.models import Note


def _many(vault, job, n_notes):
    notes = Note.objects.bulk_create(
        Note(vault=vault, path=f"bulk/{i}.md", folder="bulk", tags=["old"], frontmatter={})
        for i in range(n_notes)
    )
    items = Item.objects.bulk_create(
        Item(job=job, note=note, custom_id=f"bulk-{job.pk}-{note.pk}", state="succeeded")
        for note in notes
    )
    Suggestion.objects.bulk_create(
        Suggestion(item=item, note_id=item.note_id, job=job, field=field, value=value, model="m")
        for item in items
        for field, value in (("tags", ["ai/x"]), ("description", "d"), ("related", []))
    )
    return notes


def _bulk_approve(queryset, user):
    return suggestions_decide(queryset=queryset, user=user, decision="approved")


@pytest.mark.parametrize("n_notes", [10, 3334])
def test_bulk_approve_query_count_does_not_grow(
    vault, make_job, moderator, django_assert_max_num_queries, n_notes
):
    job = make_job()
    _many(vault, job, n_notes)
    total = Suggestion.objects.count()
    with django_assert_max_num_queries(12):
        result = _bulk_approve(Suggestion.objects.filter(job=job), moderator)
    assert result.decided == total >= n_notes * 3
    assert Review.objects.filter(decision="approved").count() == total
    assert not Suggestion.objects.filter(state="pending").exists()
    review = Review.objects.select_related("suggestion").filter(suggestion__field="tags").first()
    assert review.value == ["ai/x"] and review.before == ["old"] and review.reviewer == moderator


def test_bulk_approve_never_overwrites_a_human_edit(make_note, make_suggestion, make_job, moderator):
    note = make_note()
    first = make_suggestion(note, "tags", ["a"], job=make_job())
    suggestion_decide(suggestion_id=first.pk, user=moderator, decision="edited", value=["human"])
    later_job = make_job()
    later = make_suggestion(note, "tags", ["machine"], job=later_job)
    other = make_suggestion(make_note(), "tags", ["fine"], job=later_job)
    result = _bulk_approve(Suggestion.objects.all(), moderator)
    assert (result.decided, result.superseded) == (1, 1)
    assert Suggestion.objects.get(pk=later.pk).state == "superseded"
    assert Suggestion.objects.get(pk=other.pk).state == "approved"
    assert approved_values(note_ids=[note.pk])[note.pk]["tags"]["value"] == ["human"]


def test_bulk_reject_and_skip_locked_notes(make_note, make_suggestion, moderator, moderator2):
    held, free = make_note(), make_note()
    s_held = make_suggestion(held, "description", "x")
    s_free = make_suggestion(free, "description", "y")
    note_lock_claim(note_id=held.pk, user=moderator2)
    result = suggestions_decide(
        queryset=Suggestion.objects.all(), user=moderator, decision="rejected", comment="bad"
    )
    assert (result.decided, result.locked) == (1, 1)
    assert Suggestion.objects.get(pk=s_held.pk).state == "pending"
    review = Review.objects.get(suggestion=s_free)
    assert (review.decision, review.value, review.comment) == ("rejected", None, "bad")
    assert "rejected 1 suggestion(s)" in result.summary("rejected")


def test_bulk_only_decides_pending_in_the_queryset(make_note, make_suggestion, make_job, moderator):
    job_a, job_b = make_job(), make_job()
    a = make_suggestion(make_note(), "description", "a", job=job_a)
    b = make_suggestion(make_note(), "description", "b", job=job_b)
    suggestion_decide(suggestion_id=a.pk, user=moderator, decision="rejected")
    result = _bulk_approve(Suggestion.objects.filter(job__in=[job_a]), moderator)
    assert result == BulkResult(decided=0, superseded=0, locked=0)
    assert Suggestion.objects.get(pk=b.pk).state == "pending"
    assert Review.objects.count() == 1


def test_bulk_refused(make_note, make_suggestion, viewer, curator, moderator):
    make_suggestion(make_note(), "description", "a")
    for user in (viewer, curator):
        with pytest.raises(ReviewForbidden):
            _bulk_approve(Suggestion.objects.all(), user)
    with pytest.raises(ReviewError):
        suggestions_decide(queryset=Suggestion.objects.all(), user=moderator, decision="edited")
    assert not Review.objects.exists()

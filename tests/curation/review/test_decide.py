"""suggestion_decide: one decision per Review row, conditional state moves, human edits win."""

import pytest

from curation.models import Review, Suggestion
from curation.review.decisions import (
    ReviewConflict,
    ReviewError,
    ReviewForbidden,
    ReviewLocked,
    approved_values,
    suggestion_decide,
    suggestions_supersede,
)
from curation.review.locks import note_lock_claim


def test_approve_records_review_with_before_and_after(make_note, make_suggestion, moderator):
    note = make_note(tags=["ai"], frontmatter={"tags": ["ai"], "description": "old"})
    s = make_suggestion(note, "description", "A new line.")
    review = suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved")
    s.refresh_from_db()
    assert s.state == Suggestion.State.APPROVED
    assert (review.decision, review.value, review.before) == ("approved", "A new line.", "old")
    assert review.reviewer == moderator
    assert approved_values(note_ids=[note.pk])[note.pk]["description"]["value"] == "A new line."


def test_reject_and_edit(make_note, make_suggestion, moderator):
    note = make_note()
    tags = make_suggestion(note, "tags", ["ai/agents", "python"])
    desc = make_suggestion(note, "description", "machine words")
    suggestion_decide(suggestion_id=tags.pk, user=moderator, decision="rejected", comment="no")
    review = suggestion_decide(
        suggestion_id=desc.pk, user=moderator, decision="edited", value="  human\nwords "
    )
    assert review.value == "human words"
    assert Suggestion.objects.get(pk=tags.pk).state == "rejected"
    assert Suggestion.objects.get(pk=desc.pk).state == "edited"
    values = approved_values(note_ids=[note.pk])[note.pk]
    assert "tags" not in values
    assert values["description"]["decision"] == "edited"


def test_tags_keep_some_is_edit_keep_all_is_approval_keep_none_is_rejection(
    make_note, make_suggestion, moderator
):
    n1, n2, n3 = make_note(), make_note(), make_note()
    s1 = make_suggestion(n1, "tags", ["a", "b/c", "d"])
    s2 = make_suggestion(n2, "tags", ["a", "b"])
    s3 = make_suggestion(n3, "tags", ["a"])
    r1 = suggestion_decide(suggestion_id=s1.pk, user=moderator, decision="edited", value=["b/c"])
    r2 = suggestion_decide(suggestion_id=s2.pk, user=moderator, decision="edited", value=["a", "b"])
    r3 = suggestion_decide(suggestion_id=s3.pk, user=moderator, decision="edited", value=[])
    assert (r1.decision, r1.value) == ("edited", ["b/c"])
    assert (r2.decision, r2.value) == ("approved", ["a", "b"])
    assert (r3.decision, r3.value) == ("rejected", None)


def test_second_moderator_gets_conflict_and_sees_first_decision(
    make_note, make_suggestion, moderator, moderator2
):
    s = make_suggestion(make_note(), "description", "text")
    # Both loaded the page while it was pending; the first one to submit wins.
    suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved", expected_state="pending")
    with pytest.raises(ReviewConflict) as caught:
        suggestion_decide(
            suggestion_id=s.pk, user=moderator2, decision="rejected", expected_state="pending"
        )
    assert "mod already decided" in str(caught.value)
    assert caught.value.review.reviewer == moderator
    assert Review.objects.filter(suggestion=s).count() == 1
    assert Suggestion.objects.get(pk=s.pk).state == "approved"


def test_redeciding_keeps_history(make_note, make_suggestion, moderator, moderator2):
    s = make_suggestion(make_note(), "description", "text")
    suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved")
    suggestion_decide(
        suggestion_id=s.pk, user=moderator2, decision="rejected", expected_state="approved"
    )
    assert list(Review.objects.filter(suggestion=s).values_list("decision", flat=True)) == [
        "rejected",
        "approved",
    ]
    assert approved_values(note_ids=[s.note_id]) == {}


def test_human_edit_survives_later_jobs_suggestion(
    make_note, make_suggestion, make_job, moderator
):
    note = make_note()
    first = make_suggestion(note, "description", "machine one", job=make_job())
    suggestion_decide(suggestion_id=first.pk, user=moderator, decision="edited", value="human")
    later = make_suggestion(note, "description", "machine two", job=make_job())
    with pytest.raises(ReviewConflict, match="edit already decides"):
        suggestion_decide(suggestion_id=later.pk, user=moderator, decision="approved")
    assert Suggestion.objects.get(pk=later.pk).state == "superseded"
    assert approved_values(note_ids=[note.pk])[note.pk]["description"]["value"] == "human"
    # A newer *edit* may replace the old one.
    third = make_suggestion(note, "description", "machine three", job=make_job())
    suggestion_decide(suggestion_id=third.pk, user=moderator, decision="edited", value="human 2")
    assert approved_values(note_ids=[note.pk])[note.pk]["description"]["value"] == "human 2"


def test_supersede_marks_older_and_edited_fields(make_note, make_suggestion, make_job, moderator):
    note = make_note()
    old = make_suggestion(note, "tags", ["a"], job=make_job())
    new = make_suggestion(note, "tags", ["b"], job=make_job())
    assert suggestions_supersede() == 1
    assert Suggestion.objects.get(pk=old.pk).state == "superseded"
    assert Suggestion.objects.get(pk=new.pk).state == "pending"


def test_refused_for_viewer_and_unknown_values(make_note, make_suggestion, viewer, moderator):
    note = make_note("a.md")
    s = make_suggestion(note, "related", ["b.md"])
    with pytest.raises(ReviewForbidden):
        suggestion_decide(suggestion_id=s.pk, user=viewer, decision="approved")
    with pytest.raises(ReviewError, match="No such note"):
        suggestion_decide(suggestion_id=s.pk, user=moderator, decision="edited", value=["zz.md"])
    with pytest.raises(ReviewError, match="itself"):
        suggestion_decide(suggestion_id=s.pk, user=moderator, decision="edited", value=["a.md"])
    with pytest.raises(ReviewError, match="Unknown decision"):
        suggestion_decide(suggestion_id=s.pk, user=moderator, decision="maybe")
    assert Suggestion.objects.get(pk=s.pk).state == "pending"


def test_decision_refused_while_another_moderator_holds_the_lock(
    make_note, make_suggestion, moderator, moderator2
):
    s = make_suggestion(make_note(), "description", "x")
    note_lock_claim(note_id=s.note_id, user=moderator)
    with pytest.raises(ReviewLocked, match="mod is reviewing"):
        suggestion_decide(suggestion_id=s.pk, user=moderator2, decision="approved")
    suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved")


def test_superuser_can_decide(make_note, make_suggestion, superuser):
    s = make_suggestion(make_note(), "description", "x")
    assert suggestion_decide(suggestion_id=s.pk, user=superuser, decision="approved").pk


def test_supersede_scoped_to_the_notes_of_a_queryset(make_note, make_suggestion, make_job):
    a, b = make_note(), make_note()
    old_a = make_suggestion(a, "tags", ["x"], job=make_job())
    old_b = make_suggestion(b, "tags", ["x"], job=make_job())
    later = make_job()
    make_suggestion(a, "tags", ["y"], job=later)
    make_suggestion(b, "tags", ["y"], job=make_job())
    assert suggestions_supersede(queryset=Suggestion.objects.filter(job=later)) == 1
    assert Suggestion.objects.get(pk=old_a.pk).state == "superseded"
    assert Suggestion.objects.get(pk=old_b.pk).state == "pending"


def test_supersede_by_note_ids_follows_the_same_rule(make_note, make_suggestion, make_job):
    """The engine's form (`note_ids`; its own SQL on PostgreSQL): older and human-edited fields
    win over pending ones, only on the notes named, and a second call changes nothing."""
    a, b, c = make_note(), make_note(), make_note()
    old_tags = make_suggestion(a, "tags", ["x"], job=make_job())
    new_tags = make_suggestion(a, "tags", ["y"], job=make_job())
    alone = make_suggestion(a, "description", "only one")
    edited = make_suggestion(b, "description", "human")
    Suggestion.objects.filter(pk=edited.pk).update(state=Suggestion.State.EDITED)
    after_edit = make_suggestion(b, "description", "machine")
    make_suggestion(c, "tags", ["x"], job=make_job())
    untouched = make_suggestion(c, "tags", ["x"], job=make_job())  # c is not named
    Suggestion.objects.filter(pk=untouched.pk).update(state=Suggestion.State.APPROVED)
    outside = Suggestion.objects.filter(note=c).order_by("pk").first()

    assert suggestions_supersede(note_ids=[a.pk, b.pk, a.pk]) == 2
    states = dict(Suggestion.objects.values_list("pk", "state"))
    assert states[old_tags.pk] == "superseded" and states[after_edit.pk] == "superseded"
    assert states[new_tags.pk] == states[alone.pk] == states[outside.pk] == "pending"
    assert states[edited.pk] == "edited"
    assert suggestions_supersede(note_ids=[a.pk, b.pk]) == 0
    assert suggestions_supersede(note_ids=[]) == 0

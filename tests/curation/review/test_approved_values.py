"""approved_values: the one rule export uses to know which decided value to write."""

from curation.models import Suggestion
from curation.review.decisions import approved_values, suggestion_decide


def test_pending_and_rejected_give_nothing(make_note, make_suggestion, moderator):
    note = make_note()
    make_suggestion(note, "tags", ["a"])
    s = make_suggestion(note, "description", "d")
    suggestion_decide(suggestion_id=s.pk, user=moderator, decision="rejected")
    assert approved_values() == {}


def test_newest_approval_wins_and_rejection_withdraws(
    make_note, make_suggestion, make_job, moderator
):
    note = make_note()
    old = make_suggestion(note, "description", "one", job=make_job())
    suggestion_decide(suggestion_id=old.pk, user=moderator, decision="approved")
    new = make_suggestion(note, "description", "two", job=make_job())
    suggestion_decide(suggestion_id=new.pk, user=moderator, decision="approved")
    assert approved_values(note_ids=[note.pk])[note.pk]["description"]["value"] == "two"
    suggestion_decide(
        suggestion_id=new.pk, user=moderator, decision="rejected", expected_state="approved"
    )
    assert approved_values(note_ids=[note.pk])[note.pk]["description"]["value"] == "one"


def test_edit_beats_later_plain_approval_even_if_forced(
    make_note, make_suggestion, make_job, moderator
):
    note = make_note()
    edited = make_suggestion(note, "tags", ["x", "y"], job=make_job())
    suggestion_decide(suggestion_id=edited.pk, user=moderator, decision="edited", value=["x"])
    later = make_suggestion(note, "tags", ["z"], job=make_job())
    # Even if a later suggestion's state were moved by hand, its plain approval loses.
    Suggestion.objects.filter(pk=later.pk).update(state="pending")
    from curation.models import Review

    Review.objects.create(suggestion=later, decision="approved", value=["z"], reviewer=moderator)
    value = approved_values(note_ids=[note.pk])[note.pk]["tags"]
    assert (value["value"], value["decision"], value["exported"]) == (["x"], "edited", False)


def test_note_ids_as_queryset_and_fields_independent(make_note, make_suggestion, moderator):
    from ingest.models import Note

    a, b = make_note(), make_note()
    for note in (a, b):
        for field, value in (("tags", ["t"]), ("related", [])):
            s = make_suggestion(note, field, value)
            suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved")
    result = approved_values(note_ids=Note.objects.filter(pk=a.pk).values("pk"))
    assert list(result) == [a.pk]
    assert set(result[a.pk]) == {"tags", "related"}

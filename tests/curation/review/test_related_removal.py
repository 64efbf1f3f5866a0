"""A related note a moderator unticked on one note is written on neither note of the pair,
even when the other note's approved suggestion proposes the same link."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import Review
from curation.review.decisions import related_removals, suggestion_decide
from curation.review.export import vault_export
from ingest import notes
from ingest.importer import vault_import
from ingest.models import Note

pytestmark = pytest.mark.django_db

N18, N39, N7 = "Programming Note 18.md", "Programming Note 39.md", "Programming Note 7.md"


@pytest.fixture
def vault(make_vault):
    root = make_vault({N18: "Eighteen.\n", N39: "Thirty-nine.\n", N7: "Seven.\n"})
    vault, _ = vault_import(root=root, name="v")
    return vault


@pytest.fixture
def suggest(vault, make_job, make_suggestion):
    def build(path, related):
        return make_suggestion(note(path), "related", related, job=make_job(vault=vault))

    return build


def note(path: str) -> Note:
    return Note.objects.get(path=path)


def related(vault, path: str) -> list:
    data = (Path(vault.root) / path).read_bytes()
    return notes.parse(data, path=path).metadata.get("related", [])


def decide(suggestion, user, decision, value=None, **extra):
    return suggestion_decide(
        suggestion_id=suggestion.pk, user=user, decision=decision, value=value, **extra
    )


@pytest.mark.parametrize("other_first", [False, True])
def test_an_unticked_link_is_written_on_neither_note(vault, suggest, moderator, other_first):
    s18, s39 = suggest(N18, [N39, N7]), suggest(N39, [N18])
    if other_first:
        decide(s39, moderator, "approved")
    review = decide(s18, moderator, "edited", [N7])
    if not other_first:
        decide(s39, moderator, "approved")
    assert related_removals(note_ids=[note(N18).pk]) == {note(N18).pk: {N39: review}}

    summary = vault_export(vault=vault)
    assert summary.ok and summary.vetoed == [(N39, N18)]
    assert related(vault, N18) == ["[[Programming Note 7]]"]
    assert related(vault, N39) == []
    assert related(vault, N7) == ["[[Programming Note 18]]"]
    assert vault_export(vault=vault).written == []  # 39's approval is carried out: done


def test_unticking_every_related_note_is_a_rejection_that_still_removes_each(
    vault, suggest, moderator
):
    s18, s39 = suggest(N18, [N39]), suggest(N39, [N18, N7])
    review = decide(s18, moderator, "edited", [])
    assert (review.decision, review.value) == ("rejected", [])
    decide(s39, moderator, "approved")
    vault_export(vault=vault)
    assert related(vault, N18) == []
    assert related(vault, N39) == ["[[Programming Note 7]]"]


def test_rejecting_the_whole_list_declines_only_that_notes_side(vault, suggest, moderator):
    s18, s39 = suggest(N18, [N39]), suggest(N39, [N18])
    decide(s18, moderator, "rejected")
    decide(s39, moderator, "approved")
    assert related_removals() == {}
    vault_export(vault=vault)
    assert related(vault, N18) == ["[[Programming Note 39]]"]
    assert related(vault, N39) == ["[[Programming Note 18]]"]


def test_a_later_decision_on_the_same_note_keeping_the_pair_lifts_the_removal(
    vault, suggest, moderator
):
    first = suggest(N18, [N39, N7])
    decide(first, moderator, "edited", [N7])
    decide(suggest(N39, [N18]), moderator, "approved")
    again = suggest(N18, [N39, N7])
    review = decide(again, moderator, "edited", [N39])
    assert related_removals() == {note(N18).pk: {N7: review}}
    vault_export(vault=vault)
    assert related(vault, N18) == ["[[Programming Note 39]]"]
    assert related(vault, N39) == ["[[Programming Note 18]]"]
    assert related(vault, N7) == []


def test_a_newer_suggestion_approved_for_the_note_lifts_an_untick_of_every_box(
    vault, suggest, moderator
):
    decide(suggest(N18, [N39]), moderator, "edited", [])
    decide(suggest(N18, [N39]), moderator, "approved")
    assert related_removals() == {}
    vault_export(vault=vault)
    assert related(vault, N39) == ["[[Programming Note 18]]"]


def test_through_the_page_the_bulk_command_and_export_vault(
    vault, suggest, moderator, client
):
    s18 = suggest(N18, [N39, N7])
    suggest(N39, [N18])
    client.force_login(moderator)
    page = reverse("curation:review_note", args=[note(N18).pk])
    client.post(page, {"suggestion_id": s18.pk, "action": "edit", "expected_state": "pending",
                       "keep": [N7]})  # fmt: skip
    assert Review.objects.get(suggestion=s18).decision == "edited"
    out = StringIO()
    call_command("review", "approve", "--all", "--as", "mod", stdout=out)
    assert "approved 1 suggestion(s)" in out.getvalue()

    html = client.get(reverse("curation:review_note", args=[note(N39).pk])).content.decode()
    assert f"Link removed on {N18} by mod" in html

    out = StringIO()
    call_command("export_vault", "--vault", "v", stdout=out)
    assert "links a moderator removed left out 1" in out.getvalue()
    assert related(vault, N18) == ["[[Programming Note 7]]"]
    assert related(vault, N39) == []

"""The `review` command: roles, scope, summary, and human edits kept."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from curation.models import Review, Suggestion
from curation.review.decisions import suggestion_decide


def run(*args):
    out = StringIO()
    call_command("review", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_approve_job_as_moderator(make_note, make_suggestion, make_job, moderator):
    job, other = make_job(), make_job()
    mine = make_suggestion(make_note("Ünï 🚀.md"), "tags", ["ai"], job=job)
    theirs = make_suggestion(make_note(), "tags", ["ai"], job=other)
    out = run("approve", "--job", str(job.pk), "--as", "mod")
    assert "approved 1 suggestion(s)" in out
    assert Suggestion.objects.get(pk=mine.pk).state == "approved"
    assert Suggestion.objects.get(pk=theirs.pk).state == "pending"
    assert Review.objects.get().reviewer == moderator


def test_reject_all_as_superuser(make_note, make_suggestion, superuser):
    for _ in range(3):
        make_suggestion(make_note(), "description", "x")
    assert "rejected 3 suggestion(s)" in run("reject", "--all", "--as", "root")
    assert set(Suggestion.objects.values_list("state", flat=True)) == {"rejected"}


def test_approve_all_never_overwrites_human_edit(make_note, make_suggestion, make_job, moderator):
    note = make_note()
    first = make_suggestion(note, "description", "m1", job=make_job())
    suggestion_decide(suggestion_id=first.pk, user=moderator, decision="edited", value="human")
    make_suggestion(note, "description", "m2", job=make_job())
    out = run("approve", "--all", "--as", "mod")
    assert "approved 0 suggestion(s); 1 superseded" in out
    assert Review.objects.filter(decision="approved").count() == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["approve", "--all", "--as", "viewer"], "viewer is not a moderator"),
        (["approve", "--all", "--as", "curator"], "curator is not a moderator"),
        (["approve", "--all", "--as", "ghost"], "no user named 'ghost'"),
        (["approve", "--job", "999", "--as", "mod"], "no job 999"),
    ],
)
def test_refusals(make_note, make_suggestion, viewer, curator, moderator, args, message):
    make_suggestion(make_note(), "description", "x")
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not Review.objects.exists()


def test_scope_and_user_are_required(moderator):
    with pytest.raises(CommandError, match="--job ID or --all"):
        run("approve", "--as", "mod")
    with pytest.raises(CommandError, match="--as USERNAME"):
        run("approve", "--all")
    with pytest.raises(CommandError):
        run("approve", "--all", "--job", "1", "--as", "mod")

"""A description the person wrote (one our export did not write) is theirs: bulk approval and
export keep it; only a decision on that one suggestion, made seeing it, replaces it.

Suggestions come from the real engine (`curate --wait` against the emulator), decisions and
exports through the commands, as the defect was seen.
"""

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import Review, Suggestion
from curation.review.decisions import suggestion_decide
from ingest.models import Note

pytestmark = pytest.mark.django_db

OWN = "My own hand written description of compost."
COMPOST = (
    f"---\ntitle: Compost Guide\ndescription: {OWN}\ntags: [garden]\n---\n"
    "# Compost Guide\n\nCompost turns kitchen scraps into soil over a few months.\n"
)
BARE = "---\ntitle: Compost Guide\ntags: [garden]\n---\n# Compost Guide\n\nCompost turns kitchen scraps into soil over a few months.\n"  # noqa: E501


def command(name, *args):
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def description_in(path) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith("description:"):
            return line.removeprefix("description:").strip()
    return None


def edit(path, text):
    time.sleep(0.01)
    path.write_text(text)


@pytest.fixture
def passes(emulator, make_vault, fast_polls, moderator):
    """import -> curate (tags, description) -> review approve --all -> export_vault, as often
    as asked; returns the vault folder and the last approve and export outputs."""
    root = make_vault({"Compost Guide.md": COMPOST})

    def run(files=None):
        for rel, text in (files or {}).items():
            edit(root / rel, text)
        command("import_vault", str(root), "--name", "life")
        command("curate", "--vault", "life", "--fields", "tags,description", "--mode", "sync",
                "--wait")  # fmt: skip
        approved = command("review", "approve", "--all", "--as", moderator.username)
        exported = command("export_vault", "--vault", "life")
        return approved, exported

    run.root = root
    return run


def test_bulk_approval_and_export_keep_the_notes_own_description(passes):
    approved, exported = passes()
    path = passes.root / "Compost Guide.md"
    assert "approved 1 suggestion(s)" in approved  # the tags
    assert "1 kept: the note's own description" in approved
    assert description_in(path) == OWN
    assert "garden" in path.read_text() and Note.objects.get().tags != ["garden"]  # tags merged
    assert Suggestion.objects.get(field="description").state == Suggestion.State.PENDING


def test_a_description_edited_in_obsidian_between_passes_is_kept(passes):
    passes({"Compost Guide.md": BARE})
    path = passes.root / "Compost Guide.md"
    written = description_in(path)
    assert written and written != OWN  # ours: nothing of the person's was there
    mine = path.read_text().replace(f"description: {written}", "description: My own words now")
    approved, exported = passes({"Compost Guide.md": mine})
    assert "1 kept: the note's own description" in approved
    assert description_in(path) == "My own words now"


def test_a_description_the_app_wrote_is_replaced_by_a_newer_approval(passes):
    passes({"Compost Guide.md": BARE})
    path = passes.root / "Compost Guide.md"
    first = description_in(path)
    head, end, body = path.read_text().rpartition("---\n")  # the body only: a new first line
    body = body.replace("Compost turns kitchen scraps", "Hot composting turns garden waste")
    approved, _ = passes({"Compost Guide.md": head + end + body})
    assert "kept: the note's own description" not in approved
    assert description_in(path) not in (None, first)


def test_the_review_page_shows_the_own_description_and_approving_there_replaces_it(
    passes, client, moderator
):
    passes()
    suggestion = Suggestion.objects.get(field="description")
    client.force_login(moderator)
    url = reverse("curation:review_note", args=[suggestion.note_id])
    page = client.get(url).content.decode()
    assert "<strong>Now:</strong>" in page and OWN in page
    assert "the note&#x27;s own description" in page or "the note's own description" in page
    client.post(url, {"suggestion_id": suggestion.pk, "action": "approve",
                      "expected_state": "pending"})  # fmt: skip
    review = Review.objects.get(suggestion=suggestion)
    assert review.decision == "approved" and review.replaces_own and review.before == OWN
    command("export_vault", "--vault", "life")
    assert description_in(passes.root / "Compost Guide.md") not in (None, OWN)


def test_export_keeps_the_own_description_over_an_approval_not_made_on_purpose(passes, moderator):
    passes()
    suggestion = Suggestion.objects.get(field="description")
    review = suggestion_decide(suggestion_id=suggestion.pk, user=moderator, decision="approved")
    assert review.replaces_own
    Review.objects.filter(pk=review.pk).update(replaces_own=False)  # as a bulk approval was
    out = command("export_vault", "--vault", "life")
    assert "1 approved description(s) not written: the note has its own description" in out
    assert "own descriptions kept 1" in out
    assert description_in(passes.root / "Compost Guide.md") == OWN


def test_a_description_put_back_by_a_revert_counts_as_the_notes_own(passes, moderator):
    passes()
    suggestion = Suggestion.objects.get(field="description")
    suggestion_decide(suggestion_id=suggestion.pk, user=moderator, decision="approved")
    out = command("export_vault", "--vault", "life")
    path = passes.root / "Compost Guide.md"
    assert description_in(path) != OWN and Note.objects.get().own_description() is None
    run = out.split("export run ")[1].split()[0]
    command("export_vault", "--revert", run, "--as", moderator.username)
    assert description_in(path) == OWN and Note.objects.get().own_description() == OWN

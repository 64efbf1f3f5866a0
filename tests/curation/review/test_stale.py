"""Stale suggestions: a note edited on disk and re-imported after its suggestions were made.

Suggestions are made through the real engine (`curate --wait` against the emulator), so the
hash a suggestion records is the one the engine's insert sets.
"""

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import Job, NoteVersion, Review, Suggestion
from curation.review.decisions import ReviewStale, suggestion_decide
from curation.review.export import vault_export
from curation.review.stale import stale_suggestions
from ingest.importer import vault_import
from ingest.models import Note

pytestmark = pytest.mark.django_db

A = "---\ntitle: Fermenting\ntags: [food]\n---\n# Fermenting\n\nSauerkraut needs salt and time.\n"
B = "---\ntitle: Bread\n---\nSourdough bread rises slowly overnight.\n"
EDITED = A.replace("salt and time.", "salt, time and a cool cellar.")


def command(name, *args):
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def curated(emulator, make_vault, fast_polls):
    """A vault of two notes on disk, imported and curated (tags, description) in real time."""
    root = make_vault({"a.md": A, "b.md": B})
    vault, _ = vault_import(root=root, name="v")
    command("curate", "--vault", "v", "--fields", "tags,description", "--mode", "sync", "--wait")
    assert Suggestion.objects.count() == 4
    return root, vault


def edit_and_reimport(root, vault, text=EDITED):
    path = root / "a.md"
    time.sleep(0.01)
    path.write_text(text)
    vault_import(root=root, name=vault.name)


def test_suggestion_records_the_hash_and_the_text_it_was_made_for(curated):
    note = Note.objects.get(path="a.md")
    for suggestion in Suggestion.objects.filter(note=note):
        assert suggestion.note_hash == note.content_hash and not suggestion.is_stale
    version = NoteVersion.objects.get(note=note)
    assert version.content_hash == note.content_hash and "salt and time" in version.body


def test_reimport_after_an_edit_makes_the_open_suggestions_stale(curated):
    root, vault = curated
    edit_and_reimport(root, vault)
    stale = stale_suggestions()
    assert sorted(stale.values_list("note__path", flat=True)) == ["a.md", "a.md"]
    assert not Suggestion.objects.get(note__path="b.md", field="tags").is_stale


def test_bulk_approval_skips_stale_and_export_does_not_write_them(curated, moderator):
    root, vault = curated
    edit_and_reimport(root, vault)
    out = command("review", "approve", "--all", "--as", moderator.username)
    assert "approved 2 suggestion(s)" in out and "2 stale skipped" in out
    assert set(Suggestion.objects.filter(note__path="a.md").values_list("state", flat=True)) == {
        Suggestion.State.PENDING
    }
    summary = vault_export(vault=vault)
    assert summary.written == ["b.md"]
    assert (root / "a.md").read_text() == EDITED


def test_an_approval_made_before_the_edit_is_not_exported(curated, moderator):
    root, vault = curated
    command("review", "approve", "--all", "--as", moderator.username)
    edit_and_reimport(root, vault)
    summary = vault_export(vault=vault)
    assert summary.written == ["b.md"]
    assert (root / "a.md").read_text() == EDITED  # approved for other text: not written
    assert Review.objects.filter(suggestion__note__path="a.md", exported_at=None).count() == 2
    # ... and said so, where the export reports (not a silent "unchanged").
    assert summary.stale == 2 and "notes changed since held back 2" in summary.line()
    out = command("export_vault", "--vault", "v")
    assert "2 approval(s) held back: their notes changed after the suggestion" in out


def test_approving_one_needs_a_confirmation_recorded_on_the_review(curated, moderator):
    root, vault = curated
    edit_and_reimport(root, vault)
    tags = Suggestion.objects.get(note__path="a.md", field="tags")
    with pytest.raises(ReviewStale):
        suggestion_decide(suggestion_id=tags.pk, user=moderator, decision="approved")
    review = suggestion_decide(
        suggestion_id=tags.pk, user=moderator, decision="approved", confirm_stale=True
    )
    assert review.stale_confirmed and review.note_hash == Note.objects.get(path="a.md").content_hash
    summary = vault_export(vault=vault)
    assert summary.written == ["a.md"]
    text = (root / "a.md").read_text()
    assert "a cool cellar" in text and text.count("tags:") == 1
    assert set(tags.value) <= set(Note.objects.get(path="a.md").tags)


def test_the_queue_filters_and_marks_stale_and_offers_no_one_click_approval(
    client, curated, moderator
):
    root, vault = curated
    edit_and_reimport(root, vault)
    client.force_login(moderator)
    url = reverse("admin:curation_suggestion_changelist")
    page = client.get(url, {"stale": "yes"}).content.decode()
    assert page.count('title="the note changed since this was suggested">stale</span>') == 2
    assert "b.md" not in page and "Look and confirm" in page
    current = client.get(url, {"stale": "no"}).content.decode()
    assert "b.md" in current and ">stale</span>" not in current
    # The bulk action through the admin skips them too.
    ids = list(Suggestion.objects.values_list("pk", flat=True))
    response = client.post(
        url, {"action": "approve_selected", "_selected_action": ids}, follow=True
    )
    assert "2 stale skipped" in response.content.decode()
    assert Suggestion.objects.filter(note__path="a.md", state="pending").count() == 2


def test_the_note_page_shows_what_changed_and_asks_for_the_confirmation(
    client, curated, moderator
):
    root, vault = curated
    edit_and_reimport(root, vault)
    note = Note.objects.get(path="a.md")
    tags = Suggestion.objects.get(note=note, field="tags")
    client.force_login(moderator)
    url = reverse("curation:review_note", args=[note.pk])
    page = client.get(url).content.decode()
    assert "stale: made for other text" in page
    assert "-Sauerkraut needs salt and time." in page
    assert "+Sauerkraut needs salt, time and a cool cellar." in page
    assert 'name="confirm_stale"' in page
    post = {"suggestion_id": tags.pk, "expected_state": "pending", "action": "approve"}
    refused = client.post(url, post, follow=True).content.decode()
    assert "made for other text" in refused
    assert Suggestion.objects.get(pk=tags.pk).state == Suggestion.State.PENDING
    client.post(url, {**post, "confirm_stale": "1"})
    review = Review.objects.get(suggestion=tags)
    assert review.stale_confirmed and review.reviewer == moderator
    audit = client.get(
        reverse("admin:curation_review_changelist"), {"stale_confirmed__exact": "1"}
    ).content.decode()
    assert "a.md" in audit and "mod" in audit


def test_our_own_export_does_not_make_the_other_suggestions_stale(curated, moderator):
    root, vault = curated
    tags = Suggestion.objects.get(note__path="a.md", field="tags")
    suggestion_decide(suggestion_id=tags.pk, user=moderator, decision="approved")
    assert vault_export(vault=vault).written == ["a.md"]
    description = Suggestion.objects.get(note__path="a.md", field="description")
    assert not description.is_stale
    suggestion_decide(suggestion_id=description.pk, user=moderator, decision="approved")
    assert vault_export(vault=vault).written == ["a.md"]
    assert "description:" in (root / "a.md").read_text()


def test_curate_stale_reruns_only_the_stale_notes(curated, fast_polls):
    root, vault = curated
    edit_and_reimport(root, vault)
    out = command("curate", "--stale", "--fields", "tags", "--mode", "sync", "--wait")
    job = Job.objects.order_by("-id").first()
    assert list(job.items.values_list("note__path", flat=True)) == ["a.md"]
    assert out.strip().endswith(f"job {job.id} succeeded: succeeded 1; cost ${job.cost}")
    fresh = Suggestion.objects.get(job=job)
    assert not fresh.is_stale
    old = Suggestion.objects.exclude(job=job).get(note__path="a.md", field="tags")
    from curation.review.decisions import suggestions_supersede

    suggestions_supersede()
    old.refresh_from_db()
    assert old.state == Suggestion.State.SUPERSEDED
    with pytest.raises(Exception, match="choose the notes"):
        command("curate", "--fields", "tags")


def test_kept_texts_stay_bounded(curated, moderator):
    root, vault = curated
    note = Note.objects.get(path="a.md")
    edit_and_reimport(root, vault)
    command("curate", "--path", "a.md", "--fields", "tags", "--mode", "sync", "--wait")
    # The old text is still needed: the first job's suggestions are open and stale.
    assert NoteVersion.objects.filter(note=note).count() == 2
    command("review", "reject", "--all", "--as", moderator.username)
    edit_and_reimport(root, vault, text=EDITED + "more\n")
    command("curate", "--path", "a.md", "--fields", "tags", "--mode", "sync", "--wait")
    hashes = set(NoteVersion.objects.filter(note=note).values_list("content_hash", flat=True))
    assert hashes == {Note.objects.get(pk=note.pk).content_hash}


def test_curate_stale_finds_a_note_edited_after_its_suggestions_were_exported(
    curated, moderator, fast_polls
):
    """Approved and exported suggestions were made for the old text too: a note edited on
    disk since is stale whatever its suggestions' state; one only our export wrote is not."""
    from django.core.management.base import CommandError

    root, vault = curated
    command("review", "approve", "--all", "--as", moderator.username)
    assert "written 2" in command("export_vault", "--vault", "v")
    with pytest.raises(CommandError, match="no curatable notes matched --stale"):
        command("curate", "--stale", "--mode", "sync", "--wait")  # our own writes: not stale
    time.sleep(0.01)
    path = root / "a.md"
    path.write_text(path.read_text() + "\nA new paragraph about brine.\n")
    assert "updated 1," in command("import_vault", str(root), "--name", "v")

    with pytest.raises(CommandError, match="no curatable notes matched --path b.md"):
        command("curate", "--stale", "--path", "b.md", "--mode", "sync", "--wait")
    command("curate", "--stale", "--path", "a.md", "--fields", "tags", "--mode", "sync", "--wait")
    job = Job.objects.order_by("-id").first()
    assert list(job.items.values_list("note__path", flat=True)) == ["a.md"]
    # Its description was still suggested for the old text: the note stays stale for it.
    command("curate", "--vault", "v", "--stale", "--mode", "sync", "--wait")
    job = Job.objects.order_by("-id").first()
    assert list(job.items.values_list("note__path", flat=True)) == ["a.md"]
    with pytest.raises(CommandError, match="no curatable notes matched --vault v --stale"):
        command("curate", "--vault", "v", "--stale", "--mode", "sync", "--wait")

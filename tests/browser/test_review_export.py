"""Browser: a moderator reviews one note while a second moderator sees the lock; then export
writes the decisions into the markdown file on disk."""

from pathlib import Path

import pytest

from curation.models import Review, Suggestion
from ingest.models import Note
from ingest.notes import load_yaml, split

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_review_with_lock_then_export(open_session, users, sample_vault, curated):
    notes = Note.objects.filter(vault=sample_vault, folder="AI", state=Note.State.OK)
    job = curated(notes.values_list("id", flat=True))
    assert job.state == job.State.SUCCEEDED
    # A note whose suggested tags include two the note does not have yet.
    for s in Suggestion.objects.filter(job=job, field="tags").select_related("note"):
        new = [t for t in s.value if t not in s.note.tags]
        if len(new) >= 2:
            tags, note = s, s.note
            break
    else:
        pytest.fail("the emulator suggested no note two new tags")
    keep, drop = new[0], new[1]
    description = Suggestion.objects.get(job=job, note=note, field="description")
    file = Path(sample_vault.root) / note.path
    before = file.read_bytes()

    alice = open_session("alice")
    alice.login("alice")
    page = alice.go(f"/curation/review/note/{note.pk}/")
    page.wait_for_selector("#lock.mine")
    alice.shot("opens the note, holds the lock")

    bob = open_session("bob")
    bob.login("bob")
    bob_page = bob.go(f"/curation/review/note/{note.pk}/")
    bob_page.wait_for_selector("#lock.other")
    bob.shot("sees alice lock")
    assert "alice is reviewing this note" in bob_page.inner_text("#lock")
    # Bob's forms are disabled while alice holds the lock: nothing can be recorded.
    card = bob_page.locator(f"#suggestion-{description.pk}")
    assert card.locator("button[value=approve]").is_disabled()
    assert not Review.objects.filter(reviewer__username="bob").exists()

    # Alice keeps one suggested tag and drops another.
    card = page.locator(f"#suggestion-{tags.pk}")
    card.locator(f"input[name=keep][value='{drop}']").uncheck()
    alice.shot("keeps one tag, drops another")
    card.locator("button[value=edit]").click()
    page.wait_for_selector(".messagelist .success")
    alice.shot("tags decided")
    # Then writes her own description.
    card = page.locator(f"#suggestion-{description.pk}")
    card.locator("textarea[name=value]").fill("Alice's own one-line description.")
    card.locator("button[value=edit]").click()
    page.wait_for_selector(".messagelist .success")
    alice.shot("description edited")

    decided = Review.objects.filter(reviewer__username="alice").order_by("id")
    assert [r.suggestion.field for r in decided] == ["tags", "description"]
    assert keep in decided[0].value and drop not in decided[0].value
    assert file.read_bytes() == before  # nothing written before export

    # Export from the Vaults list, as the admin.
    admin = open_session("admin")
    admin.login("admin")
    vaults = admin.go("/ingest/vault/")
    vaults.check(f"#result_list input[name=_selected_action][value='{sample_vault.pk}']")
    vaults.select_option("select[name=action]", "export_approved_vaults")
    admin.shot("export action chosen")
    vaults.click("button[name=index]")
    vaults.wait_for_selector("#export-confirm")  # a preview first: nothing written yet
    assert file.read_bytes() == before
    admin.shot("export preview")
    vaults.click("#export-confirm button")
    vaults.wait_for_selector("#op-summary")
    admin.shot("exported")
    assert "Written:" in vaults.inner_text("#op-summary")
    assert "Vault Sample vault:" in vaults.inner_text("#op-result")

    after = file.read_text(encoding="utf-8")
    meta = load_yaml(split(after).yaml)
    assert keep in meta["tags"] and drop not in meta["tags"]
    assert meta["description"] == "Alice's own one-line description."
    assert split(after).body == split(before.decode("utf-8")).body

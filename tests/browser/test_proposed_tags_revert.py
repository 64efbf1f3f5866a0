"""Browser: a moderator sets "prefer existing tags", decides proposed tags once on their page,
exports, then reverts one note's export from its review page (the file's bytes come back)."""

from pathlib import Path

import pytest

from curation.models import ProposedTag, ProposedTagUse
from curation.review.export import vault_export
from ingest.models import ExportRecord, Note
from ingest.notes import parse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_proposed_tags_then_revert(open_session, users, sample_vault, curated):
    alice = open_session("alice")
    alice.login("alice")
    page = alice.go(f"/curation/review/tags/{sample_vault.pk}/proposed/")
    page.check("#policy input[value=prefer]")
    page.click("#policy button[type=submit]")
    page.wait_for_selector(".messagelist .success")
    alice.shot("policy set to prefer existing tags")

    notes = Note.objects.filter(vault=sample_vault, folder="AI", state=Note.State.OK)
    curated(notes.values_list("id", flat=True), fields=("tags",))
    proposed = list(ProposedTag.objects.filter(vault=sample_vault).order_by("tag"))
    assert len(proposed) >= 3, "the emulator proposed fewer than three new tags"
    approve, mapped, rejected = proposed[:3]
    receivers = set(ProposedTagUse.objects.filter(proposed=approve).values_list("note_id", flat=True))

    page = alice.go(f"/curation/review/tags/{sample_vault.pk}/proposed/")
    row = page.locator(f"#proposed tr[data-tag='{approve.tag}']")
    assert row.locator("td.count").inner_text() == str(len(receivers))
    alice.shot("proposed tags listed once with their counts")
    row.locator("button[value=approved]").click()
    page.wait_for_selector(".messagelist .success")
    row = page.locator(f"#proposed tr[data-tag='{mapped.tag}']")
    row.locator("input[name=mapped_to]").fill("ai")
    row.locator("button[value=mapped]").click()
    page.wait_for_selector(".messagelist .success")
    page.locator(f"#proposed tr[data-tag='{rejected.tag}'] button[value=rejected]").click()
    page.wait_for_selector(".messagelist .success")
    alice.shot("three tags decided")
    decided = page.inner_text("#decided")
    assert f"{approve.tag} approved" in decided and f"{mapped.tag} mapped" in decided
    assert "by alice" in decided
    assert page.locator(f"#proposed tr[data-tag='{approve.tag}']").count() == 0

    note = Note.objects.get(pk=sorted(receivers)[0])
    file = Path(sample_vault.root) / note.path
    before = file.read_bytes()
    vault_export(vault=sample_vault)
    after = file.read_bytes()
    assert approve.tag in parse(after, path=note.path).tags
    assert rejected.tag not in parse(after, path=note.path).tags

    page = alice.go(f"/curation/review/note/{note.pk}/")
    page.wait_for_selector("#revert-export")
    alice.shot("note page offers to revert its export")
    page.click("#revert-export")
    page.wait_for_selector(".messagelist .success")
    alice.shot("export reverted")
    assert "Reverted the export" in page.inner_text(".messagelist")
    assert file.read_bytes() == before
    record = ExportRecord.objects.get(note=note)
    assert record.reverted_by.username == "alice"

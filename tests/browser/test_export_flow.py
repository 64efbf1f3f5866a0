"""Browser: export is a flow. Preview (the diff per note, with counts) → "Export these N notes"
→ the summary; nothing is written before the confirmation. A conflict is listed with its
reason and can be re-imported from the summary."""

from pathlib import Path

import pytest

from curation.models import Operation, Review, Suggestion
from curation.review.decisions import suggestion_decide
from ingest.models import Note
from tests.browser.test_pages_fit import assert_fits, fitted

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_preview_confirm_summary_and_reimport_conflicts(open_session, users, sample_vault, curated):
    notes = list(Note.objects.filter(vault=sample_vault, folder="Cooking", state=Note.State.OK))
    job = curated([n.id for n in notes], fields=("description",))
    for s in Suggestion.objects.filter(job=job):
        suggestion_decide(suggestion_id=s.pk, user=users["admin"], decision="approved")
    root = Path(sample_vault.root)
    before = {n.path: (root / n.path).read_bytes() for n in notes}
    # One file edited on disk after import: the export must refuse it as a conflict.
    edited = notes[0]
    (root / edited.path).write_bytes(before[edited.path] + b"\nEdited by hand.\n")

    me = fitted(open_session("admin"))
    me.login("admin")
    page = me.go("/ingest/vault/")
    page.check(f"#result_list input[name=_selected_action][value='{sample_vault.pk}']")
    page.select_option("select[name=action]", "export_approved_vaults")
    page.click("button[name=index]")
    page.wait_for_selector("#export-confirm")
    assert_fits(me, "preview with diffs")
    n = len(notes) - 1
    assert f"Would write: {n}" in page.inner_text("#op-summary")
    assert "conflicts: 1" in page.inner_text("#op-summary")
    assert page.locator(".vc-diff-file").count() == n
    assert edited.path in page.inner_text(".vc-problems")
    # Nothing written yet.
    assert {p: (root / p).read_bytes() for p in before if p != edited.path} == {
        p: b for p, b in before.items() if p != edited.path
    }
    assert not Review.objects.filter(exported_at__isnull=False).exists()

    # Someone edits a second note between the preview and the confirmation.
    late = notes[1]
    (root / late.path).write_bytes(before[late.path] + b"\nEdited meanwhile.\n")
    page.click(f"#export-confirm button:text-is('Export these {n} notes')")
    page.wait_for_selector("#reimport-conflicts")
    assert_fits(me, "export summary")
    assert f"Written: {n - 1}" in page.inner_text("#op-summary")
    assert "conflicts: 1" in page.inner_text("#op-summary")
    assert late.path in page.inner_text(".vc-problems")
    assert "changed on disk" in page.inner_text(".vc-problems")
    unchanged = {edited.path, late.path}
    written = [p for p in before if p not in unchanged and (root / p).read_bytes() != before[p]]
    assert len(written) == n - 1
    export = Operation.objects.get(kind=Operation.Kind.EXPORT)
    assert export.state == Operation.State.SUCCEEDED and export.result["written"] == n - 1

    page.click("#reimport-conflicts button")
    page.wait_for_selector("#op-result")
    me.shot("conflicts re-imported")
    assert "updated 1" in page.inner_text("#op-result")
    reimport = Operation.objects.get(kind=Operation.Kind.IMPORT)
    assert reimport.params["runs"][0]["paths"] == [late.path]
    assert Note.objects.get(pk=late.pk).body.endswith("Edited meanwhile.\n")

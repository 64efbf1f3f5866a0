"""Browser: the whole story in one run, with the job carried by django-q2 inside the request
(tasks run inline in tests): curate a folder, review one note, export, see the file change."""

from pathlib import Path

import pytest

from curation.models import Job, Review, Suggestion
from ingest.models import Note
from ingest.notes import load_yaml, split

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_curate_review_export(open_session, users, sample_vault, emulator, settings):
    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05
    me = open_session("admin")
    me.login("admin")
    me.shot("dashboard before")

    # Curate the Cooking folder.
    page = me.go("/ingest/note/?folder=Cooking")
    rows = page.locator("#result_list tbody tr").count()
    assert rows == Note.objects.filter(vault=sample_vault, folder="Cooking").count() >= 2
    page.check("#action-toggle")
    page.select_option("select[name=action]", "curate_selected_notes")
    page.click("button[name=index]")
    page.wait_for_selector("#curate-form")
    page.click("#curate-form input[name=apply]")
    page.wait_for_selector("#op-job-link")  # the background operation made the job
    page.click("#op-job-link")
    page.wait_for_url("**/curation/jobs/*/")
    me.shot("job page")
    job = Job.objects.get()
    assert job.state == Job.State.SUCCEEDED  # run inline by django-q2's sync mode
    assert page.inner_text("#job-state").strip() == "Succeeded"
    assert page.inner_text("#job-done") == str(rows)

    # Alice reviews the first note: approves the suggested tags as they are and the
    # description with her own words.
    note = Note.objects.filter(folder="Cooking").order_by("path").first()
    tags = Suggestion.objects.get(job=job, note=note, field="tags")
    description = Suggestion.objects.get(job=job, note=note, field="description")
    alice = open_session("alice")
    alice.login("alice")
    review = alice.go(f"/curation/review/note/{note.pk}/")
    review.locator(f"#suggestion-{tags.pk} button[value=approve]").click()
    review.wait_for_selector(".messagelist .success")
    review.locator(f"#suggestion-{description.pk} textarea[name=value]").fill("Alice wrote this.")
    review.locator(f"#suggestion-{description.pk} button[value=edit]").click()
    review.wait_for_selector(".messagelist .success")
    alice.shot("reviewed")
    assert Review.objects.filter(reviewer__username="alice").count() == 2

    # Export only that note, from the Notes list.
    file = Path(sample_vault.root) / note.path
    before = file.read_text(encoding="utf-8")
    page = me.go("/ingest/note/?folder=Cooking")
    page.check(f"#result_list input[name=_selected_action][value='{note.pk}']")
    page.select_option("select[name=action]", "export_approved_notes")
    page.click("button[name=index]")
    page.wait_for_selector("#export-confirm")  # the preview comes first
    me.shot("export preview")
    assert file.read_text(encoding="utf-8") == before
    page.click("#export-confirm button")
    page.wait_for_selector("#op-summary")
    me.shot("exported")
    assert "Written: 1" in page.inner_text("#op-summary")
    after = file.read_text(encoding="utf-8")
    meta = load_yaml(split(after).yaml)
    assert set(tags.value) <= set(meta["tags"])
    assert meta["description"] == "Alice wrote this."
    assert split(after).body == split(before).body
    me.go("/")
    me.shot("dashboard after")

"""Tag consolidation: a vault-wide job asks the model (the emulator) about the whole tag list;
approved merges become tag renames that export writes into every note carrying the tag."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from curation.api import prompt
from curation.engine.consolidation import vault_tag_list
from curation.models import Job, TagConsolidation, TagRename
from curation.review.consolidation import consolidation_decide
from curation.review.decisions import ReviewError
from curation.review.export import vault_export
from ingest import notes
from ingest.importer import vault_import

pytestmark = pytest.mark.django_db

FILES = {
    "a.md": "---\ntags: [Python, agents]\n---\nA body.\n",
    "b.md": "---\ntags:\n  - python\n  - js\n---\nB body\r\n",
    "c.md": "---\ntitle: C  # keep me\ntags: [python, agent, coding/languages/javascript]\n---\nC.\n",
    "d.md": "---\ntags: [agents, cooking]\n---\nD.\n",
}


def command(*args):
    """`consolidate_tags v --wait`: the job runs here, through the engine, to its end."""
    out = StringIO()
    call_command("consolidate_tags", *(args or ("v",)), "--wait", stdout=out)
    return out.getvalue()


@pytest.fixture
def vault(emulator, make_vault):
    root = make_vault(FILES)
    vault, _ = vault_import(root=root, name="v")
    return vault


def test_the_request_lists_every_tag_with_counts_and_titles(vault):
    tags = vault_tag_list(vault_id=vault.pk)
    assert tags[0][:2] == ("agents", 2) and ("python", 2) in [t[:2] for t in tags]
    params = prompt.build_consolidation_request(tags, model="m")
    assert "- agents (2): a; d" in params["messages"][0]["content"]


def test_consolidation_job_proposes_merges_with_the_notes_they_touch(vault):
    out = command()
    job = Job.objects.get()
    assert job.state == Job.State.SUCCEEDED and job.mode == "sync" and job.cost > 0
    merges = {(m.old, m.new): m.notes for m in TagConsolidation.objects.filter(job=job)}
    assert merges == {("Python", "python"): 1, ("agent", "agents"): 1,
                      ("js", "coding/languages/javascript"): 1}  # fmt: skip
    assert f"job {job.pk}: 3 merge(s) proposed; cost ${job.cost}" in out
    assert not TagRename.objects.exists()  # nothing changes before a review


def test_approved_merges_are_exported_into_every_note_bodies_untouched(vault, client, moderator):
    command()
    root = Path(vault.root)
    before = {p: (root / p).read_bytes() for p in FILES}
    client.force_login(moderator)
    url = reverse("admin:curation_tagconsolidation_changelist")
    approve = list(TagConsolidation.objects.exclude(old="js").values_list("pk", flat=True))
    client.post(url, {"action": "approve_consolidations", "_selected_action": approve})
    reject = TagConsolidation.objects.get(old="js")
    client.post(url, {"action": "reject_consolidations", "_selected_action": [reject.pk]})
    assert TagRename.objects.filter(decided_by=moderator).count() == 2
    summary = vault_export(vault=vault)
    assert sorted(summary.written) == ["a.md", "c.md"]
    for path, data in before.items():
        now = (root / path).read_bytes()
        assert notes.parse(now, path=path).body == notes.parse(data, path=path).body
    tags = {p: notes.parse((root / p).read_bytes(), path=p).tags
            for p in FILES}  # fmt: skip
    assert tags["a.md"] == ["python", "agents"]
    assert tags["c.md"] == ["python", "agents", "coding/languages/javascript"]
    assert tags["b.md"] == ["python", "js"]  # the rejected merge changed nothing
    assert "title: C  # keep me" in (root / "c.md").read_text()
    audit = client.get(url, {"state__exact": "approved"}).content.decode()
    assert audit.count("mod</td>") == 2 and "Python" in audit and "js</" not in audit


def test_decided_once(vault, moderator, moderator2):
    command()
    merge = TagConsolidation.objects.first()
    consolidation_decide(consolidation_id=merge.pk, user=moderator, decision="rejected")
    with pytest.raises(ReviewError, match="already decided"):
        consolidation_decide(consolidation_id=merge.pk, user=moderator2, decision="approved")
    assert not TagRename.objects.exists()


def test_a_vault_without_tags_is_refused(emulator, make_vault):
    root = make_vault({"a.md": "plain\n"})
    vault_import(root=root, name="empty")
    with pytest.raises(CommandError, match="fewer than two tags"):
        command("empty")


def test_invalid_merges_are_dropped_in_code():
    message = {"content": [{"type": "tool_use", "name": prompt.CONSOLIDATION_TOOL, "input": {
        "merges": [
            {"old": "unknown", "new": "x"},  # not a tag of the vault
            {"old": "ai", "new": "ai/agents"},  # below itself
            {"old": "Py", "new": "python"},
            {"old": "py", "new": "other"},  # a second entry for the same tag
            {"old": "python", "new": "coding/python"},  # makes "Py -> python" a chain: dropped
        ]}}]}  # fmt: skip
    merges = prompt.parse_consolidation(message, tags=["ai", "Py", "python"])
    assert [(m.old, m.new) for m in merges] == [("python", "coding/python")]


def test_the_consolidation_job_shows_in_the_job_list_and_page(vault, client, superuser):
    command()
    job = Job.objects.get()
    out = StringIO()
    call_command("jobs", stdout=out)
    assert str(job.pk) in out.getvalue() and "succeeded" in out.getvalue()
    client.force_login(superuser)
    assert client.get(reverse("curation:job", args=[job.pk])).status_code == 200
    assert client.get(reverse("admin:curation_job_changelist")).status_code == 200


def test_an_approved_merge_is_a_few_queries_and_a_tag_rename(vault, moderator, django_assert_num_queries):
    command()
    merge = TagConsolidation.objects.get(old="js")
    moderator.has_perm("curation.review_suggestion")  # the permission cache, read once per user
    # UPDATE the state (the first decision wins), SELECT it back, INSERT the TagRename, UPDATE
    # the link to it: four statements in one transaction, for any vault size.
    with django_assert_num_queries(4 + 2):  # + the transaction's savepoint and release
        consolidation_decide(consolidation_id=merge.pk, user=moderator, decision="approved")
    rename = TagRename.objects.get()
    assert (rename.old, rename.new, rename.decided_by) == ("js", "coding/languages/javascript", moderator)
    merge.refresh_from_db()
    assert merge.rename == rename and merge.decided_by == moderator

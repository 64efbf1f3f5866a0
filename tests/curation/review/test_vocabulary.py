"""A vault's tag vocabulary: proposed tags decided once, "existing tags only" held in code.

The model is the emulator (through `curate --wait`): it always invents tags from the note's
words (`cabbage`, `fermentation`), and picks existing ones whose words match (`salt`).
"""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.api import prompt
from curation.engine.requests import RequestBuilder
from curation.models import (
    Item,
    Job,
    ProposedTag,
    ProposedTagUse,
    Suggestion,
    TagPolicy,
    Vocabulary,
)
from curation.review.decisions import ReviewError
from curation.review.export import vault_export
from curation.review.vocabulary import proposed_tag_decide, vault_vocabulary
from ingest import notes
from ingest.importer import vault_import
from ingest.models import Note, Vault

pytestmark = pytest.mark.django_db


def body(i):
    return f"---\ntags: [food]\n---\nFermentation of cabbage: fermentation needs cabbage, salt and patience {i}.\n"


OTHER = "---\ntags: [salt, cooking]  # kept\n---\nA pinch of it.\n"


def command(name, *args):
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def vault_with(emulator, make_vault, fast_polls):
    def build(policy):
        files = {f"n{i}.md": body(i) for i in range(3)} | {"other.md": OTHER}
        root = make_vault(files)
        vault, _ = vault_import(root=root, name="v")
        Vocabulary.objects.create(vault=vault, policy=policy)
        command(
            "curate", "--vault", "v", "--path", "n*.md", "--fields", "tags", "--mode", "sync",
            "--wait",
        )
        return root, vault

    return build


def tags_on_disk(root, path):
    return notes.parse((root / path).read_bytes(), path=path).tags


def body_on_disk(root, path):
    return notes.parse((root / path).read_bytes(), path=path).body


def test_prefer_makes_each_new_tag_a_proposed_tag_listed_once(vault_with, client, viewer):
    root, vault = vault_with(TagPolicy.PREFER)
    proposed = dict(ProposedTag.objects.values_list("tag", "state"))
    assert proposed == {"cabbage": "pending", "fermentation": "pending"}
    assert ProposedTagUse.objects.filter(proposed__tag="cabbage").count() == 3
    client.force_login(viewer)
    page = client.get(reverse("curation:review_proposed_tags", args=[vault.pk])).content.decode()
    assert page.count('data-tag="cabbage"') == 1
    assert '<td class="count">3</td>' in page and "n0.md" in page and "n2.md" in page
    assert "Approve" not in page  # a viewer reads, does not decide


def test_one_decision_settles_a_proposed_tag_on_every_note(vault_with, client, moderator):
    root, vault = vault_with(TagPolicy.PREFER)
    cabbage = ProposedTag.objects.get(tag="cabbage")
    needs = ProposedTag.objects.get(tag="fermentation")
    url = reverse("curation:review_proposed_tags", args=[vault.pk])
    client.force_login(moderator)
    client.post(url, {"proposed_id": cabbage.pk, "decision": "approved"})
    client.post(url, {"proposed_id": needs.pk, "decision": "mapped", "mapped_to": "cooking"})
    assert Suggestion.objects.filter(state="pending").count() == 3  # no suggestion decided
    summary = vault_export(vault=vault)
    assert sorted(summary.written) == ["n0.md", "n1.md", "n2.md"]
    for i in range(3):
        path = f"n{i}.md"
        # approved tag and mapped tag on every note; `salt` waits for its suggestion's review
        assert tags_on_disk(root, path) == ["food", "cooking", "cabbage"]  # the answer's order
        assert body_on_disk(root, path) == notes.parse(body(i).encode(), path=path).body
    assert "cabbage" in vault_vocabulary(vault_id=vault.pk)
    assert vault_export(vault=vault).written == []  # each use written once
    # Audit: who decided, on the page and in the admin.
    page = client.get(url).content.decode()
    assert "approved (joins the vocabulary) (3 notes) by mod" in page.lower()
    audit = client.get(reverse("admin:curation_proposedtag_changelist")).content.decode()
    assert "fermentation" in audit and "cooking" in audit and "mod" in audit
    # Decided once: a second decision is refused and changes nothing.
    response = client.post(url, {"proposed_id": cabbage.pk, "decision": "rejected"}, follow=True)
    assert "already decided" in response.content.decode()
    assert ProposedTag.objects.get(pk=cabbage.pk).state == "approved"


def test_a_rejected_proposed_tag_is_dropped_from_every_approved_suggestion(
    vault_with, moderator
):
    root, vault = vault_with(TagPolicy.PREFER)
    for tag in ProposedTag.objects.all():
        proposed_tag_decide(proposed_id=tag.pk, user=moderator, decision="rejected")
    command("review", "approve", "--all", "--as", moderator.username)
    vault_export(vault=vault)
    for i in range(3):
        assert tags_on_disk(root, f"n{i}.md") == ["food", "salt"]


def test_a_pending_proposed_tag_waits_even_when_its_suggestion_is_approved(vault_with, moderator):
    root, vault = vault_with(TagPolicy.PREFER)
    command("review", "approve", "--all", "--as", moderator.username)
    vault_export(vault=vault)
    assert tags_on_disk(root, "n0.md") == ["food", "salt"]
    cabbage = ProposedTag.objects.get(tag="cabbage")
    proposed_tag_decide(proposed_id=cabbage.pk, user=moderator, decision="approved")
    assert sorted(vault_export(vault=vault).written) == ["n0.md", "n1.md", "n2.md"]
    assert tags_on_disk(root, "n0.md") == ["food", "salt", "cabbage"]


def test_existing_only_never_exports_a_tag_outside_the_vocabulary(vault_with, moderator):
    root, vault = vault_with(TagPolicy.ONLY)
    vocabulary = set(vault_vocabulary(vault_id=vault.pk).values())
    item = Item.objects.get(note__path="n0.md")
    answered = item.result["content"][0]["input"]["tags"]
    assert "cabbage" in answered  # the model did answer a tag outside it
    assert not ProposedTag.objects.exists()
    for value in Suggestion.objects.values_list("value", flat=True):
        assert set(value) <= vocabulary
    command("review", "approve", "--all", "--as", moderator.username)
    vault_export(vault=vault)
    for path in ("n0.md", "n1.md", "n2.md", "other.md"):
        assert set(tags_on_disk(root, path)) <= vocabulary


def test_existing_only_prompt_holds_the_model_to_the_vocabulary(db, make_vault):
    root = make_vault({"a.md": "---\ntags: [zeta/one, alpha]\n---\nx\n", "b.md": "y\n"})
    vault, _ = vault_import(root=root, name="v")
    Vocabulary.objects.create(vault=vault, policy=TagPolicy.ONLY)
    job = Job.objects.create(vault=vault, fields=["tags"], model="m")
    note = Note.objects.get(path="b.md")
    item = Item.objects.create(job=job, note=note, custom_id="c1")
    params = RequestBuilder(job).params(item, note)
    system = params["system"][0]["text"]
    assert "use ONLY tags from the list" in system
    assert "Existing tags in this vault: " in system and "zeta/one" in system
    Vocabulary.objects.filter(vault=vault).update(policy=TagPolicy.FREE)
    free = RequestBuilder(job).params(item, note)["system"][0]["text"]
    assert "ONLY" not in free and free.startswith(prompt.INSTRUCTIONS)


def test_policy_is_set_on_the_page_by_moderators_only(client, moderator, viewer, db):
    vault = Vault.objects.create(name="v", root="/tmp/v")
    url = reverse("curation:review_proposed_tags", args=[vault.pk])
    client.force_login(viewer)
    assert client.post(url, {"policy": "only"}).status_code == 403
    client.force_login(moderator)
    client.post(url, {"policy": "only"})
    vocabulary = Vocabulary.objects.get(vault=vault)
    assert vocabulary.policy == "only" and vocabulary.changed_by == moderator
    with pytest.raises(ReviewError):
        proposed_tag_decide(proposed_id=0, user=moderator, decision="approved")
    tag = ProposedTag.objects.create(vault=vault, tag="brand/new")
    with pytest.raises(ReviewError, match="not an existing tag"):
        proposed_tag_decide(
            proposed_id=tag.pk, user=moderator, decision="mapped", mapped_to="nowhere"
        )
    assert ProposedTag.objects.get(pk=tag.pk).state == "pending"


def _many(vault, n):
    """n notes, each with a pending tag suggestion carrying one proposed tag (bulk, ORM)."""
    start = Note.objects.count()
    notes_ = Note.objects.bulk_create(
        [Note(vault=vault, path=f"n/{start + i}.md", title="t") for i in range(n)]
    )
    job = Job.objects.create(vault=vault, fields=["tags"], model="m")
    items = Item.objects.bulk_create(
        [Item(job=job, note=note, custom_id=f"q{start + i}") for i, note in enumerate(notes_)]
    )
    suggestions = Suggestion.objects.bulk_create(
        [
            Suggestion(item=item, note_id=item.note_id, job=job, field="tags", value=["big/new"])
            for item in items
        ]
    )
    tag, _ = ProposedTag.objects.get_or_create(vault=vault, tag="big/new")
    ProposedTagUse.objects.bulk_create(
        [ProposedTagUse(proposed=tag, suggestion=s, note_id=s.note_id) for s in suggestions]
    )
    return tag


def test_a_decision_over_10000_suggestions_takes_a_flat_number_of_queries(moderator):
    small_vault = Vault.objects.create(name="small", root="/tmp/small")
    big_vault = Vault.objects.create(name="big", root="/tmp/big")
    small = _many(small_vault, 10)
    big = _many(big_vault, 10_000)
    assert moderator.has_perm("curation.review_suggestion")  # the permission cache, loaded once
    counts = []
    for tag in (small, big):
        with CaptureQueriesContext(connection) as queries:
            proposed_tag_decide(proposed_id=tag.pk, user=moderator, decision="approved")
        counts.append(len(queries))
    print(f"queries for a proposed-tag decision: 10 suggestions {counts[0]}, 10,000 {counts[1]}")
    assert counts[0] == counts[1] == 3  # read it, one conditional UPDATE, read who decided
    assert ProposedTag.objects.get(pk=big.pk).uses.count() == 10_000


def test_an_approved_proposed_tag_skips_notes_changed_since(vault_with, moderator):
    root, vault = vault_with(TagPolicy.PREFER)
    edited = body(0).replace("patience", "great patience")
    (root / "n0.md").write_text(edited)
    vault_import(root=root, name="v")
    cabbage = ProposedTag.objects.get(tag="cabbage")
    proposed_tag_decide(proposed_id=cabbage.pk, user=moderator, decision="approved")
    assert sorted(vault_export(vault=vault).written) == ["n1.md", "n2.md"]
    assert (root / "n0.md").read_text() == edited


def test_the_page_decides_10000_suggestions_in_as_many_queries_as_10(client, moderator):
    small = _many(Vault.objects.create(name="small", root="/tmp/small"), 10)
    big = _many(Vault.objects.create(name="big", root="/tmp/big"), 10_000)
    client.force_login(moderator)
    counts = []
    for tag in (small, big):
        url = reverse("curation:review_proposed_tags", args=[tag.vault_id])
        with CaptureQueriesContext(connection) as queries:
            response = client.post(url, {"proposed_id": tag.pk, "decision": "rejected"})
        assert response.status_code == 302
        counts.append(len(queries))
    print(f"queries for a proposed-tag decision through the page: 10 {counts[0]}, 10,000 {counts[1]}")
    assert counts[0] == counts[1]
    assert ProposedTag.objects.get(pk=big.pk).state == ProposedTag.State.REJECTED

"""The tag tree with counts, new-tag detection, and rename/merge (service and page)."""

import pytest
from django.urls import reverse

from curation.models import TagRename
from curation.review.decisions import ReviewError, ReviewForbidden, suggestion_decide
from curation.review.taxonomy import (
    tag_is_new,
    tag_rename,
    tag_tree,
    tag_tree_flat,
    tags_renamed,
    vault_known_tags,
)


def flat(vault):
    return {node.path: (node.count, node.total) for _, node in tag_tree_flat(tag_tree(vault_id=vault.pk))}


def test_tree_counts_existing_and_approved_tags(vault, make_note, make_suggestion, moderator):
    make_note(tags=["ai/agents", "python"])
    make_note(tags=["ai/agents/frameworks"])
    n3 = make_note(tags=["ai"])
    pending = make_note()
    make_suggestion(pending, "tags", ["cooking"])  # pending: not in the tree
    s = make_suggestion(n3, "tags", ["ai/llm"])
    suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved")
    assert flat(vault) == {
        "ai": (1, 3),
        "ai/agents": (1, 2),
        "ai/agents/frameworks": (1, 1),
        "ai/llm": (1, 1),
        "python": (1, 1),
    }
    roots = tag_tree(vault_id=vault.pk)
    assert [r.path for r in roots] == ["ai", "python"]
    assert [c.name for c in roots[0].children] == ["agents", "llm"]


def test_new_tag_rule(vault, make_note):
    make_note(tags=["ai/agents"])
    known = vault_known_tags(vault_id=vault.pk)
    assert not tag_is_new("ai/agents", known)
    assert not tag_is_new("ai/agents/frameworks", known)  # extends an existing branch
    assert not tag_is_new("ai/robots", known)  # inside the ai branch
    assert tag_is_new("cooking", known)
    assert tag_is_new("ai/robots/arms", known)


def test_tags_renamed():
    r1 = TagRename(old="ml", new="ai/ml")
    r2 = TagRename(old="junk", new="")
    assert tags_renamed(["ml", "ml/deep", "ai/ml", "junk", "junk/x", "keep"], [r1, r2]) == [
        "ai/ml", "ai/ml/deep", "keep",
    ]  # fmt: skip


def test_rename_and_merge_reflected_in_tree(vault, make_note, moderator):
    make_note(tags=["ml", "ml/deep"])
    make_note(tags=["ai/ml"])
    rename = tag_rename(vault_id=vault.pk, old="#ml", new="ai/ml/", user=moderator)
    assert (rename.old, rename.new, rename.decided_by) == ("ml", "ai/ml", moderator)
    assert flat(vault) == {"ai": (0, 2), "ai/ml": (2, 2), "ai/ml/deep": (1, 1)}


def test_rename_refusals(vault, viewer, moderator):
    with pytest.raises(ReviewForbidden):
        tag_rename(vault_id=vault.pk, old="a", new="b", user=viewer)
    for old, new in [("", "b"), ("a", "a"), ("a", "a/b"), ("a b", "c")]:
        with pytest.raises(ReviewError):
            tag_rename(vault_id=vault.pk, old=old, new=new, user=moderator)
    assert not TagRename.objects.exists()


def test_taxonomy_page(client, vault, make_note, make_suggestion, moderator, viewer, nobody):
    note = make_note(tags=["ai/agents"])
    make_suggestion(note, "tags", ["ai/agents/x", "gardening"])
    url = reverse("curation:review_taxonomy_vault", args=[vault.pk])
    client.force_login(viewer)
    html = client.get(url).content.decode()
    assert 'data-tag="ai/agents"' in html and "gardening</span> in 1 suggestion" in html
    assert "ai/agents/x</span> in" not in html
    assert 'id="rename"' not in html
    assert client.post(url, {"old": "ai", "new": "x"}).status_code == 403
    client.force_login(moderator)
    page = client.post(url, {"old": "ai/agents", "new": "agents"}, follow=True)
    assert "Recorded ai/agents → agents" in page.content.decode()
    assert TagRename.objects.get().new == "agents"
    assert client.get(reverse("curation:review_taxonomy")).status_code == 302  # one vault
    client.force_login(nobody)
    assert client.get(url).status_code == 403


def test_known_tags_are_read_without_each_note_s_list_and_say_the_same(
        vault, make_note, make_suggestion, moderator, django_assert_max_num_queries):
    """vault_known_tags (the distinct tags unnested by the database, the approved ones, the
    renames) equals the tree of vault_note_tags, note by note, on a vault with every case."""
    from curation.review.taxonomy import tag_prefixes, vault_note_tags
    from ingest.models import Note, Vault

    make_note(tags=["ai/agents", "python", "Café/été"])
    make_note(tags=["ai/agents", "ml/deep"])
    odd = make_note(tags=["ignored"])
    Note.objects.filter(id=odd.id).update(tags={"not": "a list"})
    skipped = make_note(tags=["only-on-a-skipped-note"])
    Note.objects.filter(id=skipped.id).update(state=Note.State.SKIPPED)
    make_note(tags=["other-vault"], in_vault=Vault.objects.create(name="Other", root="/tmp/o"))
    approved = make_note(tags=["junk/x"])
    s = make_suggestion(approved, "tags", ["cooking/pasta", "ml"])
    suggestion_decide(suggestion_id=s.pk, user=moderator, decision="approved")
    rejected = make_note()
    s = make_suggestion(rejected, "tags", ["rejected-tag"])
    suggestion_decide(suggestion_id=s.pk, user=moderator, decision="rejected")
    make_suggestion(make_note(), "tags", ["pending-tag"])
    TagRename.objects.create(vault=vault, old="ml", new="ai/ml")
    TagRename.objects.create(vault=vault, old="junk", new="")

    expected = set()
    for tags in vault_note_tags(vault_id=vault.pk).values():
        for tag in tags:
            expected.update(tag_prefixes(tag))
    with django_assert_max_num_queries(4):
        known = vault_known_tags(vault_id=vault.pk)
    assert known == expected
    assert {"ai/ml", "ai/ml/deep", "cooking/pasta", "Café/été"} <= known
    assert not {"ml", "junk", "junk/x", "rejected-tag", "pending-tag", "other-vault",
                "only-on-a-skipped-note", "not"} & known  # fmt: skip

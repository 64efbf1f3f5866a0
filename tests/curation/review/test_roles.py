"""The roles made by the data migration, as Django sees them, and where each is let in."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from curation.review.decisions import pending_count_for
from curation.roles import can_review, can_view


def test_groups_exist_with_their_permissions(db):
    perms = {
        g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
        for g in Group.objects.filter(name__in=["Curator", "Moderator", "Viewer"])
    }
    assert set(perms) == {"Curator", "Moderator", "Viewer"}
    assert "curation.add_job" in perms["Curator"]
    assert "curation.review_suggestion" in perms["Moderator"]
    assert "curation.review_suggestion" not in perms["Curator"] | perms["Viewer"]
    assert "curation.add_job" not in perms["Moderator"] | perms["Viewer"]
    assert all(p.split(".")[1].startswith("view_") for p in perms["Viewer"])
    assert {"ingest.view_note", "curation.view_suggestion", "curation.view_review"} <= perms["Viewer"]


@pytest.mark.parametrize(
    "who, view, review, curate",
    [
        ("viewer", True, False, False),
        ("curator", True, False, True),
        ("moderator", True, True, False),
        ("superuser", True, True, True),
        ("nobody", False, False, False),
    ],
)
def test_role_rights(who, view, review, curate, request):
    user = request.getfixturevalue(who)
    assert (can_view(user), can_review(user), user.has_perm("curation.add_job")) == (
        view, review, curate,
    )  # fmt: skip
    assert (pending_count_for(user) is not None) is review


def test_inactive_moderator_cannot_review(moderator):
    moderator.is_active = False
    assert not can_review(moderator)


@pytest.mark.parametrize(
    "who, status",
    [("viewer", 200), ("curator", 200), ("moderator", 200), ("superuser", 200), ("nobody", 403)],
)
def test_admin_pages_by_role(client, who, status, request, make_note, make_suggestion):
    s = make_suggestion(make_note(), "description", "x")
    client.force_login(request.getfixturevalue(who))
    for name, args in [
        ("admin:curation_suggestion_changelist", []),
        ("admin:curation_suggestion_change", [s.pk]),
        ("admin:curation_review_changelist", []),
        ("admin:curation_tagrename_changelist", []),
        ("admin:ingest_note_changelist", []),
    ]:
        assert client.get(reverse(name, args=args)).status_code == status, name


def test_pending_count_leaves_out_notes_locked_by_others(
    make_note, make_suggestion, moderator, moderator2
):
    from curation.review.locks import note_lock_claim

    a, b = make_note(), make_note()
    make_suggestion(a, "tags", ["x"])
    make_suggestion(b, "tags", ["y"])
    note_lock_claim(note_id=a.pk, user=moderator2)
    assert pending_count_for(moderator) == 1
    assert pending_count_for(moderator2) == 2

"""The review queue in the admin: who sees it, who decides, filters, and bulk over the filtered set."""

import pytest
from django.urls import reverse

from curation.models import Review, Suggestion
from curation.review.decisions import suggestion_decide
from curation.review.locks import note_lock_claim

QUEUE = "admin:curation_suggestion_changelist"


@pytest.fixture
def queue(make_note, make_suggestion, make_job):
    job = make_job()
    a = make_note("ai/a.md", tags=["ai/agents"], frontmatter={"description": "old words here"})
    b = make_note("cook/b.md", tags=["food"])
    return {
        "job": job,
        "a_tags": make_suggestion(a, "tags", ["ai/agents/frameworks", "python"], job=job),
        "a_desc": make_suggestion(a, "description", "new words here", job=job),
        "b_tags": make_suggestion(b, "tags", ["food/pasta"], job=job),
        "b_rel": make_suggestion(b, "related", ["ai/a.md"], job=make_job()),
    }


def _post_action(client, action, ids, **extra):
    data = {"action": action, "_selected_action": [str(i) for i in ids], **extra}
    return client.post(reverse(QUEUE) + extra.pop("query", ""), data, follow=True)


@pytest.mark.parametrize("who", ["viewer", "moderator", "curator", "superuser"])
def test_queue_visible_to_roles(client, queue, who, request):
    client.force_login(request.getfixturevalue(who))
    page = client.get(reverse(QUEUE))
    assert page.status_code == 200
    assert "ai/a.md" in page.content.decode()
    form = page.context["action_form"]
    actions = [a[0] for a in form.fields["action"].choices] if form else []
    assert ("approve_selected" in actions) is (who in ("moderator", "superuser"))


def test_queue_refused_without_role(client, queue, nobody):
    client.force_login(nobody)
    assert client.get(reverse(QUEUE)).status_code == 403


def test_viewer_cannot_run_approve_action(client, queue, viewer):
    client.force_login(viewer)
    _post_action(client, "approve_selected", [queue["a_tags"].pk])
    assert not Review.objects.exists()
    assert Suggestion.objects.get(pk=queue["a_tags"].pk).state == "pending"


def test_moderator_approves_selected(client, queue, moderator):
    client.force_login(moderator)
    page = _post_action(client, "approve_selected", [queue["a_tags"].pk, queue["b_tags"].pk])
    assert "Approved 2 suggestion(s)" in page.content.decode()
    assert Suggestion.objects.get(pk=queue["a_desc"].pk).state == "pending"


def test_select_across_decides_whole_filtered_set(client, queue, moderator):
    client.force_login(moderator)
    client.post(
        reverse(QUEUE) + "?field__exact=tags",
        {"action": "reject_selected", "select_across": "1", "index": "0",
         "_selected_action": [str(queue["a_tags"].pk)]},
    )  # fmt: skip
    states = dict(Suggestion.objects.values_list("pk", "state"))
    assert states[queue["a_tags"].pk] == states[queue["b_tags"].pk] == "rejected"
    assert states[queue["a_desc"].pk] == states[queue["b_rel"].pk] == "pending"


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", {"a_tags", "a_desc", "b_tags", "b_rel"}),
        ("?field__exact=description", {"a_desc"}),
        ("?folder=cook", {"b_tags", "b_rel"}),
        ("?branch=ai", {"a_tags", "a_desc"}),
        ("?branch=food", {"b_tags", "b_rel"}),
        ("?new_tag=yes", {"a_tags"}),  # "python": no such branch; food/pasta extends food
        ("?new_tag=no", {"a_desc", "b_tags", "b_rel"}),
    ],
)
def test_filters(client, queue, moderator, query, expected):
    client.force_login(moderator)
    page = client.get(reverse(QUEUE) + query)
    assert page.status_code == 200
    shown = {o.pk for o in page.context["cl"].result_list}
    assert shown == {queue[k].pk for k in expected}


def test_job_and_vault_filters(client, queue, moderator, vault):
    client.force_login(moderator)
    page = client.get(reverse(QUEUE) + f"?job__id__exact={queue['job'].pk}")
    assert {o.pk for o in page.context["cl"].result_list} == {
        queue[k].pk for k in ("a_tags", "a_desc", "b_tags")
    }
    page = client.get(reverse(QUEUE) + f"?note__vault__id__exact={vault.pk}")
    assert len(page.context["cl"].result_list) == 4


def test_queue_shows_current_beside_suggested(client, queue, moderator, moderator2):
    note_lock_claim(note_id=queue["b_tags"].note_id, user=moderator2)
    client.force_login(moderator)
    html = client.get(reverse(QUEUE)).content.decode()
    assert "<del>old</del>" in html and "<ins>new</ins>" in html
    assert 'class="rv-chip rv-new"' in html and ">python<" in html
    assert "held by mod2" in html


def test_queue_defaults_to_pending_and_hides_superseded(
    client, make_note, make_suggestion, make_job, moderator
):
    note = make_note()
    first = make_suggestion(note, "description", "m1", job=make_job())
    suggestion_decide(suggestion_id=first.pk, user=moderator, decision="edited", value="human")
    later = make_suggestion(note, "description", "m2", job=make_job())
    client.force_login(moderator)
    page = client.get(reverse(QUEUE))
    assert list(page.context["cl"].result_list) == []
    assert Suggestion.objects.get(pk=later.pk).state == "superseded"
    page = client.get(reverse(QUEUE) + "?state__exact=all")
    assert len(page.context["cl"].result_list) == 2


@pytest.mark.parametrize("who, status", [("viewer", 200), ("moderator", 200), ("nobody", 403)])
def test_audit_list(client, queue, moderator, who, status, request):
    suggestion_decide(suggestion_id=queue["a_desc"].pk, user=moderator, decision="approved")
    client.force_login(request.getfixturevalue(who))
    page = client.get(reverse("admin:curation_review_changelist") + f"?reviewer__id__exact={moderator.pk}")
    assert page.status_code == status
    if status == 200:
        html = page.content.decode()
        assert "new words here" in html and "old words here" in html and "ai/a.md" in html


def test_nobody_can_change_or_delete_history(client, queue, moderator, superuser):
    review = suggestion_decide(suggestion_id=queue["a_desc"].pk, user=moderator, decision="approved")
    client.force_login(superuser)
    url = reverse("admin:curation_review_delete", args=[review.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Review.objects.filter(pk=review.pk).exists()


def test_row_buttons_decide_one_suggestion(client, queue, moderator, viewer):
    client.force_login(moderator)
    html = client.get(reverse(QUEUE)).content.decode()
    value = f'{queue["a_desc"].pk}:pending:approve'
    assert f'name="decide" value="{value}"' in html
    url = reverse("curation:review_decide") + "?next=" + reverse(QUEUE) + "%3Ffield__exact%3Dtags"
    page = client.post(url, {"decide": value})
    assert page.status_code == 302 and page["Location"].endswith("?field__exact=tags")
    assert Suggestion.objects.get(pk=queue["a_desc"].pk).state == "approved"
    # A stale button (the page was loaded while pending) gets the conflict message.
    page = client.post(url, {"decide": f'{queue["a_desc"].pk}:pending:reject'}, follow=True)
    assert "already decided" in page.content.decode()
    # Off-site "next" is ignored; viewers are refused.
    page = client.post(
        reverse("curation:review_decide") + "?next=https://evil.example/",
        {"decide": f'{queue["b_tags"].pk}:pending:reject'},
    )
    assert page["Location"] == reverse(QUEUE)
    client.force_login(viewer)
    html = client.get(reverse(QUEUE)).content.decode()
    assert 'name="decide"' not in html
    page = client.post(reverse("curation:review_decide"), {"decide": f'{queue["b_rel"].pk}:pending:approve'})
    assert page.status_code == 403
    assert Suggestion.objects.get(pk=queue["b_rel"].pk).state == "pending"


@pytest.mark.parametrize("n_notes", [10, 1000])
def test_bulk_action_over_filtered_set_has_bounded_queries(
    client, vault, make_job, moderator, django_assert_max_num_queries, n_notes
):
    from curation.models import Item
    from ingest.models import Note

    job = make_job()
    notes = Note.objects.bulk_create(
        Note(vault=vault, path=f"q/{i}.md", folder="q", tags=["x"]) for i in range(n_notes)
    )
    items = Item.objects.bulk_create(
        Item(job=job, note=n, custom_id=f"q-{n.pk}", state="succeeded") for n in notes
    )
    Suggestion.objects.bulk_create(
        Suggestion(item=i, note_id=i.note_id, job=job, field=f, value=["t"] if f == "tags" else "d", model="m")
        for i in items for f in ("tags", "description")
    )  # fmt: skip
    client.force_login(moderator)
    first = Suggestion.objects.filter(field="tags").first()
    with django_assert_max_num_queries(25):
        client.post(
            reverse(QUEUE) + "?field__exact=tags",
            {"action": "approve_selected", "select_across": "1", "index": "0",
             "_selected_action": [str(first.pk)]},
        )  # fmt: skip
    assert Suggestion.objects.filter(field="tags", state="approved").count() == n_notes
    assert Suggestion.objects.filter(field="description", state="pending").count() == n_notes

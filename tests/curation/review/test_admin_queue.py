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
    assert "mod2 is reviewing it until" in html and "UTC" in html
    assert 'class="vc-approve"' in html and "disabled" in html


def curate(note_ids, fields=("description",)):
    from curation.engine import jobs

    job = jobs.job_create(notes=list(note_ids), fields=list(fields))
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None)
    return job


def test_newer_suggestion_supersedes_when_stored_and_every_count_agrees(
    client, make_note, moderator, emulator, settings
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from curation.dashboard import dashboard_counts

    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05
    notes = [make_note(), make_note()]
    first = curate(n.id for n in notes)
    assert Suggestion.objects.filter(job=first, state="pending").count() == 2
    second = curate([notes[0].id])  # the first note again
    # Superseded when the newer suggestion was stored, before anyone opened the queue.
    old = Suggestion.objects.get(job=first, note=notes[0])
    assert old.state == "superseded"
    new = Suggestion.objects.get(job=second)
    assert new.state == "pending"

    client.force_login(moderator)
    with CaptureQueriesContext(connection) as ctx:
        page = client.get(reverse(QUEUE))
    writes = [q["sql"] for q in ctx.captured_queries
              if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))
              and "django_session" not in q["sql"]]  # fmt: skip
    assert writes == []  # the queue only reads
    shown = {s.pk for s in page.context["cl"].result_list}
    assert shown == {new.pk, Suggestion.objects.get(job=first, note=notes[1]).pk}
    assert dashboard_counts().suggestions_pending == len(shown) == 2
    progress = client.get(reverse("curation:job-progress", args=[second.id])).json()
    assert progress["pending"] == 1
    assert client.get(reverse("curation:job-progress", args=[first.id])).json()["pending"] == 1


def test_a_human_edit_wins_over_a_later_suggestion_at_once(
    client, make_note, moderator, emulator, settings
):
    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05
    note = make_note()
    first = curate([note.id])
    mine = Suggestion.objects.get(job=first)
    suggestion_decide(suggestion_id=mine.pk, user=moderator, decision="edited", value="human")
    later = curate([note.id])
    assert Suggestion.objects.get(job=later).state == "superseded"
    client.force_login(moderator)
    assert list(client.get(reverse(QUEUE)).context["cl"].result_list) == []
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
    from curation import operations
    from curation.models import Operation

    op = Operation.objects.first()
    if n_notes > 500:  # a large set is decided by the workers: the request only stored it
        assert op.kind == Operation.Kind.DECIDE and op.total == n_notes
        assert Suggestion.objects.filter(field="tags", state="approved").count() == 0
        assert operations.operation_run(operation_id=op.id) == Operation.State.SUCCEEDED
        op.refresh_from_db()
        assert op.result["decided"] == n_notes
    else:
        assert op is None
    assert Suggestion.objects.filter(field="tags", state="approved").count() == n_notes
    assert Suggestion.objects.filter(field="description", state="pending").count() == n_notes

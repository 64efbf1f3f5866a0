"""Every URL pattern, crawled as anonymous, as staff without permissions and as a Viewer.

Anonymous: sent to log in (or 403/404/405), never a page with data, never a 500.
Staff without permissions: 403/404/redirect, never data. Viewer: may read, but no POST
anywhere (forms, admin actions) changes a row.
"""

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import Group, User
from django.test import Client, RequestFactory

from tests.security.crawl import MARKER, all_urls, fingerprint, populate

pytestmark = pytest.mark.django_db

# Pages meant for people who are not logged in; they must still show no data.
PUBLIC = {"admin:login", "healthz", "admin:logout", "favicon"}  # the icon is public


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def data(django_user_model):
    owner = django_user_model.objects.create_superuser("crawl-owner", password="pw-crawl-owner")
    return populate(owner=owner)


def crawl(client, *, user=None, post_data=None):
    """(url, method, response) for GET and POST of every URL; re-logs in after a logout."""
    for url in all_urls():
        for method in ("get", "post"):
            if user is not None and "_auth_user_id" not in client.session:
                client.force_login(user)
            if method == "get":
                response = client.get(url.path)
            else:
                response = client.post(url.path, post_data or {})
            yield url, method, response


def describe(url, method, response):
    return f"{method.upper()} {url.path} ({url.name}) -> {response.status_code}"


def test_crawl_finds_the_admin_and_project_urls(data):
    names = {u.name for u in all_urls()}
    assert {"admin:index", "admin:login", "healthz", "admin:ingest_note_changelist",
            "admin:ingest_note_change"} <= names
    assert not data["unfilled"], f"no row could be made for {data['unfilled']}"


def test_anonymous_gets_nothing(data):
    client = Client(raise_request_exception=False)
    problems = []
    for url, method, response in crawl(client):
        status = response.status_code
        text = response.content.decode("utf-8", "replace")
        if MARKER in text:
            problems.append(describe(url, method, response) + " shows data")
        elif status >= 500:
            problems.append(describe(url, method, response))
        elif status == 200 and url.name not in PUBLIC:
            problems.append(describe(url, method, response) + " without login")
        elif status in (301, 302) and "/login/" not in response["Location"] \
                and url.name not in PUBLIC:
            problems.append(describe(url, method, response) + f" to {response['Location']}")
    assert problems == []


def test_staff_without_permissions_sees_no_data_and_changes_nothing(data):
    user = User.objects.create_user("crawl-noperm", password="x", is_staff=True)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    before = fingerprint()
    problems = []
    for url, method, response in crawl(client, user=user):
        text = response.content.decode("utf-8", "replace")
        if MARKER in text:
            problems.append(describe(url, method, response) + " shows data")
        elif response.status_code >= 500:
            problems.append(describe(url, method, response))
    assert problems == []
    assert fingerprint() == before


def viewer_user():
    user = User.objects.create_user("crawl-viewer", password="x", is_staff=True)
    group = Group.objects.filter(name="Viewer").first()
    if group is None:  # the roles migration is not there: a staff user with view rights only
        from django.contrib.auth.models import Permission

        group = Group.objects.create(name="Viewer")
        group.permissions.set(Permission.objects.filter(codename__startswith="view_"))
    user.groups.add(group)
    return user


def previews_dropped(user):
    """A viewer may preview the export: that records a preview operation and writes nothing
    else. Drop those rows before comparing, so every other change still counts."""
    from curation.models import Operation

    Operation.objects.filter(created_by=user, kind=Operation.Kind.PREVIEW).delete()


def test_viewer_reads_but_no_post_changes_anything(data):
    user = viewer_user()
    client = Client(raise_request_exception=False)
    client.force_login(user)
    before = fingerprint()
    problems = []
    for url, method, response in crawl(client, user=user):
        if response.status_code >= 500:
            problems.append(describe(url, method, response))
        if url.name.endswith(("_add", "_delete")) and response.status_code not in (403, 302, 404):
            problems.append(describe(url, method, response) + " (add/delete open to a viewer)")
    assert problems == []
    previews_dropped(user)
    assert fingerprint() == before


def admin_actions():
    """(changelist path, action name, selected ids) for every action of every ModelAdmin."""
    superuser = User.objects.get(username="crawl-owner")
    request = RequestFactory().get("/")
    request.user = superuser
    for model, model_admin in site._registry.items():
        ids = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)[:5]]
        path = f"/{model._meta.app_label}/{model._meta.model_name}/"
        for name in model_admin.get_actions(request):
            yield path, name, ids


@pytest.mark.parametrize("role", ["noperm", "viewer"])
def test_admin_actions_refused_without_the_permission(data, role):
    user = viewer_user() if role == "viewer" else User.objects.create_user(
        "crawl-noperm", password="x", is_staff=True
    )
    client = Client(raise_request_exception=False)
    client.force_login(user)
    before = fingerprint()
    actions = list(admin_actions())
    assert any(name == "delete_selected" for _, name, _ in actions)
    for path, name, ids in actions:
        response = client.post(
            path, {"action": name, "_selected_action": ids, "index": 0, "post": "yes"}
        )
        assert response.status_code < 500, f"{name} on {path} -> {response.status_code}"
        if role == "noperm":
            assert MARKER not in response.content.decode("utf-8", "replace")
    previews_dropped(user)
    assert fingerprint() == before

"""CSRF: every POST without a token is refused, and every POST form on every page carries one."""

from html.parser import HTMLParser

import pytest
from django.test import Client

from tests.security.crawl import all_urls, populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_superuser("csrf-owner", password="pw")
    populate(owner=user)
    return user


class PostForms(HTMLParser):
    """Each POST form on a page and whether it holds the csrfmiddlewaretoken input."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.current = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.current = {"action": attrs.get("action"), "id": attrs.get("id"),
                            "post": (attrs.get("method") or "get").lower() == "post",
                            "token": False}
            self.forms.append(self.current)
        elif tag == "input" and self.current is not None \
                and attrs.get("name") == "csrfmiddlewaretoken" and attrs.get("value"):
            self.current["token"] = True

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None


def test_every_url_refuses_a_post_without_token(superuser):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(superuser)
    refused = {}
    for url in all_urls():
        refused[url.path] = client.post(url.path, {"any": "thing"}).status_code
    assert refused and set(refused.values()) == {403}, {
        path: code for path, code in refused.items() if code != 403
    }


def test_login_post_without_token_is_refused(superuser):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "csrf-owner", "password": "pw"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_every_post_form_carries_a_token(superuser):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    pages = [("/login/", Client(enforce_csrf_checks=True))]
    client.force_login(superuser)
    pages += [(url.path, client) for url in all_urls() if url.name != "admin:logout"]
    post_forms, missing = 0, []
    for path, who in pages:
        response = who.get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        parser = PostForms()
        parser.feed(response.content.decode("utf-8", "replace"))
        for form in parser.forms:
            if form["post"]:
                post_forms += 1
                if not form["token"]:
                    missing.append((path, form["id"], form["action"]))
    assert post_forms > 10
    assert missing == []


def test_token_post_is_accepted(superuser):
    """The other half: the same client with a token gets through (the refusals are CSRF's)."""
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/login/", {"username": "csrf-owner", "password": "pw", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302

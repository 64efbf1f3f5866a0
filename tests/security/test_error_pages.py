"""Error pages: with DEBUG off, short and useful with no trace or setting; never an API key."""

import io
import logging
import re

import pytest
from django.test import Client

KEY = "sk-ant-api03-ERRPAGE-marker-5f0c2a"


@pytest.fixture
def boom_site(settings, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    settings.ROOT_URLCONF = "tests.security.urls_boom"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings


@pytest.fixture
def console():
    handler = next(h for h in logging.getLogger().handlers if type(h).__name__ == "SafeStreamHandler")
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    yield buffer
    handler.setStream(old)


@pytest.mark.django_db
def test_500_with_debug_off_is_plain_and_logged_redacted(boom_site, console):
    boom_site.DEBUG = False
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong (500)" in page
    for secret in (KEY, "Traceback", "RuntimeError", "SECRET_KEY", "DATABASES", "settings"):
        assert secret not in page
    log = console.getvalue()
    assert "Internal Server Error: /boom/" in log
    assert "RuntimeError: upstream refused key [redacted]" in log
    assert KEY not in log


ENVIRONMENT_MARKERS = ("Traceback", "RuntimeError", "SECRET_KEY", "DATABASES", "settings",
                       "PATH", "Request information", "META", "Local vars")  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("accept", ["text/html", "application/json", "*/*"])
def test_500_is_plain_with_a_request_id_even_with_debug_on(
    boom_site, console, django_user_model, debug, accept
):
    """The demo runs with DEBUG on: staff (here a superuser) still see only a request id."""
    boom_site.DEBUG = debug
    client = Client(raise_request_exception=False)
    client.force_login(django_user_model.objects.create_superuser("boom-admin", password="x"))
    response = client.get("/boom/", headers={"accept": accept})
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong (500)" in page
    for marker in (KEY, *ENVIRONMENT_MARKERS):
        assert marker not in page
    request_id = re.search(r"Request id: <code>([0-9a-f]{12})</code>", page).group(1)
    log = console.getvalue()
    assert f"request_id={request_id} GET /boom/ RuntimeError" in log
    assert "RuntimeError: upstream refused key [redacted]" in log
    assert KEY not in log


@pytest.mark.django_db
def test_debug_pages_setting_shows_the_technical_page_without_the_key(boom_site, console):
    boom_site.DEBUG = True
    boom_site.VAULTCMS_DEBUG_PAGES = True
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "RuntimeError" in page  # the technical page, for a developer who asked for it
    assert KEY not in page
    assert "[redacted]" in page


def test_debug_pages_are_off_by_default():
    from django.conf import settings

    assert settings.VAULTCMS_DEBUG_PAGES is False


@pytest.mark.django_db
def test_404_with_debug_off_is_the_custom_page(boom_site, django_user_model):
    boom_site.DEBUG = False
    user = django_user_model.objects.create_superuser("err-admin", password="x")
    client = Client()
    client.force_login(user)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found (404)" in page
    assert "urlpatterns" not in page and "Traceback" not in page and KEY not in page


def test_error_templates_exist_and_are_plain():
    from django.template.loader import get_template

    for name in ("400.html", "403.html", "404.html", "500.html", "429.html"):
        html = get_template(name).render({})
        assert "<script" not in html and "{{" not in html

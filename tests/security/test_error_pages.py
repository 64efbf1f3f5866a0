"""Error pages: with DEBUG off, short and useful with no trace or setting; never an API key."""

import io
import logging

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


@pytest.mark.django_db
def test_debug_page_never_shows_the_key(boom_site, console):
    boom_site.DEBUG = True
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "RuntimeError" in page  # the technical page, for developers
    assert KEY not in page
    assert "[redacted]" in page


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

"""The admin login answers 429 after too many failures for one username from one address."""

import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

LOGIN = "/login/"


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def fresh_address() -> str:
    # Unique per test: counters live in the shared cache (Redis in CI), never cleared wholesale.
    n = uuid.uuid4().int
    return f"127.{n % 250 + 1}.{n // 250 % 250 + 1}.{n // 62500 % 250 + 1}"


@pytest.fixture
def staff():
    name = f"moderator-{uuid.uuid4().hex[:8]}"
    return User.objects.create_user(name, password="right-password-123", is_staff=True)


def post_login(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/"})


def test_login_url_is_the_admin_login():
    assert reverse("admin:login") == LOGIN


@override_settings(VAULTCMS_LOGIN_ATTEMPTS=3, VAULTCMS_LOGIN_WINDOW_SECONDS=600)
def test_blocks_after_failures_even_with_the_right_password(staff):
    client = Client(REMOTE_ADDR=fresh_address())
    for _ in range(3):
        assert post_login(client, staff.username, "wrong").status_code == 200
    blocked = post_login(client, staff.username, "right-password-123")
    assert blocked.status_code == 429
    assert blocked["Retry-After"] == "600"
    assert b"Too many failed login attempts" in blocked.content
    assert b"10 minutes" in blocked.content
    assert "_auth_user_id" not in client.session


@override_settings(VAULTCMS_LOGIN_ATTEMPTS=3)
def test_other_address_and_other_user_are_not_blocked(staff):
    attacker = Client(REMOTE_ADDR=fresh_address())
    for _ in range(3):
        post_login(attacker, staff.username, "wrong")
    assert post_login(attacker, staff.username, "x").status_code == 429
    # The real user from another address still gets in.
    owner = Client(REMOTE_ADDR=fresh_address())
    assert post_login(owner, staff.username, "right-password-123").status_code == 302
    # The attacker's address may still try another username (up to the address limit).
    assert post_login(attacker, "someone-else", "wrong").status_code == 200


@override_settings(VAULTCMS_LOGIN_ATTEMPTS=3)
def test_success_resets_the_counter(staff):
    client = Client(REMOTE_ADDR=fresh_address())
    for _ in range(2):
        post_login(client, staff.username, "wrong")
    assert post_login(client, staff.username, "right-password-123").status_code == 302
    client.logout()
    for _ in range(2):
        assert post_login(client, staff.username, "wrong").status_code == 200
    assert post_login(client, staff.username, "right-password-123").status_code == 302


@override_settings(VAULTCMS_LOGIN_ATTEMPTS=2)
def test_one_address_spraying_usernames_is_blocked():
    client = Client(REMOTE_ADDR=fresh_address())
    for i in range(8):  # 2 attempts x factor 4
        assert post_login(client, f"user{i}-{uuid.uuid4().hex[:6]}", "guess").status_code == 200
    assert post_login(client, "yet-another", "guess").status_code == 429


@override_settings(VAULTCMS_LOGIN_ATTEMPTS=1)
def test_get_of_login_page_is_never_throttled():
    client = Client(REMOTE_ADDR=fresh_address())
    post_login(client, "nobody", "guess")
    assert post_login(client, "nobody", "guess").status_code == 429
    assert client.get(LOGIN).status_code == 200


def test_the_counters_live_in_a_cache_every_web_process_shares(settings):
    import os

    backend = settings.CACHES["login"]["BACKEND"]
    shared = "RedisCache" if os.environ.get("REDIS_URL") else "DatabaseCache"
    assert backend.rsplit(".", 1)[1] == shared  # never LocMem: each process would count alone


@override_settings(VAULTCMS_LOGIN_ATTEMPTS=3)
def test_a_look_alike_username_is_counted_with_the_real_one(staff):
    client = Client(REMOTE_ADDR=fresh_address())
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in staff.username)
    for name in (staff.username, full_width, f" {staff.username.upper()} "):
        assert post_login(client, name, "wrong").status_code == 200
    assert post_login(client, staff.username, "right-password-123").status_code == 429

"""Slows password guessing on the admin login: too many attempts for one username and address get 429.

Every login POST takes one of a limited number of slots *before* its password is checked, so
simultaneous attempts cannot all slip through between a check and a count. A slot is a cache
key taken with `cache.add`, which is atomic on every backend used here (LocMem, Redis's
SET NX, and the database cache's INSERT on a primary key), unlike `incr` on the database
cache (a read then a write). Each slot expires `window` seconds after it was taken; a
successful login gives its slots back and frees the username's.

The slots live in the `login` cache (settings.CACHES): Redis when REDIS_URL is set, else the
database cache, which every web process of one site shares.
"""

import hashlib
import math

from django.conf import settings
from django.contrib.auth.forms import UsernameField
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.urls import reverse

# One address trying many usernames is throttled too, more loosely (a shared office NAT).
ADDRESS_FACTOR = 4


def _cache():
    return caches["login"]  # shared by every web process: see settings.CACHES


def _limits() -> tuple[int, int]:
    attempts = settings.VAULTCMS_LOGIN_ATTEMPTS
    window = settings.VAULTCMS_LOGIN_WINDOW_SECONDS
    return attempts, window


def username_key(username: str) -> str:
    """The username as the login form will resolve it, folded so look-alikes share a key.

    Django's login form cleans the name with UsernameField (strip, then NFKC: full-width
    `ｖｉｃｔｉｍ` is `victim`). Case is folded on top: a case-insensitive backend must not
    give `Victim` an allowance of its own, and for a case-sensitive one sharing is only stricter.
    """
    try:
        cleaned = UsernameField().to_python(username) or ""
    except ValidationError:
        cleaned = username
    return cleaned.casefold()


def _prefixes(*, username: str, address: str) -> tuple[str, str]:
    # Hashed: a username may hold any character, and cache keys must not.
    pair = hashlib.sha256(f"{username_key(username)}\0{address}".encode()).hexdigest()
    addr = hashlib.sha256(address.encode()).hexdigest()
    return f"login-try:user:{pair}", f"login-try:addr:{addr}"


def _take_slot(prefix: str, *, slots: int, window: int) -> str | None:
    cache = _cache()
    for n in range(slots):
        key = f"{prefix}:{n}"
        if cache.add(key, 1, timeout=window):
            return key
    return None


def login_attempt_start(*, username: str, address: str) -> list[str] | None:
    """Take this attempt's slots (username+address, address); None when the limit is reached."""
    attempts, window = _limits()
    user_prefix, addr_prefix = _prefixes(username=username, address=address)
    user_slot = _take_slot(user_prefix, slots=attempts, window=window)
    if user_slot is None:
        return None
    addr_slot = _take_slot(addr_prefix, slots=attempts * ADDRESS_FACTOR, window=window)
    if addr_slot is None:
        _cache().delete(user_slot)  # refused: this attempt used nothing
        return None
    return [user_slot, addr_slot]


def login_succeeded(*, username: str, address: str, slots: list[str]) -> None:
    """A right password: this attempt was no failure, and the username starts afresh."""
    attempts, _ = _limits()
    user_prefix, _ = _prefixes(username=username, address=address)
    _cache().delete_many([*slots, *(f"{user_prefix}:{n}" for n in range(attempts))])


def login_attempts_reset(*, username: str, address: str) -> None:
    """Forget every attempt of this username and of this address (an operator's unlock)."""
    attempts, _ = _limits()
    user_prefix, addr_prefix = _prefixes(username=username, address=address)
    keys = [f"{user_prefix}:{n}" for n in range(attempts)]
    keys += [f"{addr_prefix}:{n}" for n in range(attempts * ADDRESS_FACTOR)]
    _cache().delete_many(keys)


class LoginThrottleMiddleware:
    """Answers 429 to a login POST once its username+address (or address) has tried too often."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != reverse("admin:login"):
            return self.get_response(request)
        username = request.POST.get("username", "")
        # REMOTE_ADDR, not X-Forwarded-For: a client can write any header it likes.
        address = request.META.get("REMOTE_ADDR", "")
        slots = login_attempt_start(username=username, address=address)
        if slots is None:
            _, window = _limits()
            response = render(
                request,
                "429.html",
                {"retry_minutes": max(1, math.ceil(window / 60))},
                status=429,
            )
            response["Retry-After"] = str(window)
            return response
        response = self.get_response(request)
        # The login view re-renders its form (200) on bad credentials and redirects on success.
        if response.status_code in (301, 302, 303):
            login_succeeded(username=username, address=address, slots=slots)
        return response

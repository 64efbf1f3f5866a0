"""Slows password guessing on the admin login: too many failures for one username and address get 429.

Counters live in the configured cache (LocMem in a single process, Redis across several web
workers), in a fixed window that starts with the first failure. A successful login clears
the counter for that username and address.
"""

import hashlib
import math

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render
from django.urls import reverse

# One address trying many usernames is throttled too, more loosely (a shared office NAT).
ADDRESS_FACTOR = 4


def _limits() -> tuple[int, int]:
    attempts = settings.VAULTCMS_LOGIN_ATTEMPTS
    window = settings.VAULTCMS_LOGIN_WINDOW_SECONDS
    return attempts, window


def _keys(*, username: str, address: str) -> tuple[str, str]:
    # Hashed: a username may hold any character, and cache keys must not.
    pair = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    addr = hashlib.sha256(address.encode()).hexdigest()
    return f"login-fail:user:{pair}", f"login-fail:addr:{addr}"


def _count(key: str) -> int:
    return cache.get(key, 0)


def _add_failure(key: str, *, window: int) -> None:
    cache.add(key, 0, timeout=window)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr: start a new window
        cache.set(key, 1, timeout=window)


def login_blocked(*, username: str, address: str) -> bool:
    attempts, _ = _limits()
    user_key, addr_key = _keys(username=username, address=address)
    return _count(user_key) >= attempts or _count(addr_key) >= attempts * ADDRESS_FACTOR


def record_login_failure(*, username: str, address: str) -> None:
    _, window = _limits()
    for key in _keys(username=username, address=address):
        _add_failure(key, window=window)


def clear_login_failures(*, username: str, address: str) -> None:
    user_key, _ = _keys(username=username, address=address)
    cache.delete(user_key)


class LoginThrottleMiddleware:
    """Answers 429 to a login POST once its username+address (or address) has failed too often."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != reverse("admin:login"):
            return self.get_response(request)
        username = request.POST.get("username", "")
        # REMOTE_ADDR, not X-Forwarded-For: a client can write any header it likes.
        address = request.META.get("REMOTE_ADDR", "")
        if login_blocked(username=username, address=address):
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
        if response.status_code == 200:
            record_login_failure(username=username, address=address)
        elif response.status_code in (301, 302, 303):
            clear_login_failures(username=username, address=address)
        return response

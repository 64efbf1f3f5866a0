"""The parallel runner's rate limiter and retry-after parsing, with a fake clock (no network)."""

import asyncio
from datetime import UTC, datetime

import pytest

from curation.engine.parallel import MAX_WAIT, RateLimiter, backoff, retry_after


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


WALL = 1_800_000_000.0


def limiter():
    clock = Clock()
    return RateLimiter(clock=clock, wall=lambda: WALL + (clock.now - 1000.0)), clock


def headers(remaining, reset_in, kind="requests", limit=50):
    reset = datetime.fromtimestamp(WALL + reset_in, UTC).isoformat().replace("+00:00", "Z")
    return {
        f"anthropic-ratelimit-{kind}-limit": str(limit),
        f"anthropic-ratelimit-{kind}-remaining": str(remaining),
        f"anthropic-ratelimit-{kind}-reset": reset,
    }


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date():
    assert retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert retry_after({"retry-after": "2.5"}) == 2.5
    assert retry_after({"retry-after": "Fri, 27 Nov 2026 10:00:05 GMT"}, now=datetime(
        2026, 11, 27, 10, 0, 0, tzinfo=UTC).timestamp()) == 5
    assert retry_after({"retry-after": "86400"}) == MAX_WAIT  # capped
    assert retry_after({}) is None and retry_after({"retry-after": "soon"}) is None
    assert 0 < backoff(0) < backoff(3) <= 30 * 1.25


def test_sends_freely_until_the_headers_say_the_room_is_gone():
    rl, clock = limiter()
    assert rl.delay() == 0  # nothing known yet: the concurrency bound alone applies
    rl.in_flight = 3
    rl.observe(headers(remaining=5, reset_in=10))
    assert rl.room() == 2 and rl.delay() == 0
    rl.in_flight = 5
    assert rl.room() == 0
    assert rl.delay() is None  # wait for an answer in flight: it will tell what is left
    rl.in_flight = 0
    rl.observe(headers(remaining=0, reset_in=10))
    assert rl.delay() == pytest.approx(10)  # nothing in flight: wait for the reset
    clock.now += 10.5
    assert rl.delay() == 0  # past the reset: one probe call...
    rl.in_flight = 1
    assert rl.delay() is None  # ...and no other until it answers
    rl.in_flight = 0
    rl.observe(headers(remaining=40, reset_in=5))
    assert rl.room() == 40


def test_an_answer_arriving_late_does_not_raise_the_count():
    rl, _ = limiter()
    rl.observe(headers(remaining=3, reset_in=10))
    rl.observe(headers(remaining=7, reset_in=10))  # processed earlier, arrived later
    assert rl.left["requests"] == 3
    rl.observe(headers(remaining=9, reset_in=8))  # older still (its window ended sooner)
    assert rl.left["requests"] == 3 and rl.reset["requests"] == pytest.approx(1010)
    rl.observe(headers(remaining=6, reset_in=12))  # the window moved on: newer news
    assert rl.left["requests"] == 6


def test_token_limits_count_by_the_tokens_one_call_uses():
    rl, clock = limiter()
    usage = {"input_tokens": 900, "output_tokens": 100, "cache_creation_input_tokens": 0}
    rl.observe({**headers(100, 10), **headers(2500, 4, kind="input-tokens")}, usage=usage)
    assert rl.room() == 2  # 2,500 input tokens left at 900 a call
    rl.in_flight = 2
    assert rl.delay() is None
    rl.in_flight = 0
    rl.observe({**headers(99, 10), **headers(500, 4, kind="input-tokens")}, usage=usage)
    assert rl.delay() == pytest.approx(4)  # the tokens reset first; requests are not short


def test_a_server_without_limit_headers_is_not_paced():
    rl, _ = limiter()
    rl.observe({})
    rl.in_flight = 100
    assert rl.delay() == 0


def test_a_429_blocks_every_call_until_its_retry_after():
    rl, clock = limiter()
    rl.block(2.0)
    assert rl.delay() == pytest.approx(2.0)
    clock.now += 2.0
    assert rl.delay() == 0


def test_acquire_waits_for_an_answer_then_goes():
    async def scenario():
        rl = RateLimiter()
        rl.observe({"anthropic-ratelimit-requests-remaining": "1",
                    "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z"})
        await rl.acquire()
        assert rl.in_flight == 1
        waiter = asyncio.create_task(rl.acquire())
        await asyncio.sleep(0.02)
        assert not waiter.done()  # no room: waits for the call in flight
        rl.release({"anthropic-ratelimit-requests-remaining": "5",
                    "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z"})
        await asyncio.wait_for(waiter, 1)
        assert rl.in_flight == 1

    asyncio.run(scenario())

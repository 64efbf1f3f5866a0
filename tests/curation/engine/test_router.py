"""The router and the batch planner: pure functions, no database."""

import pytest

from curation.engine.router import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS, choose_mode, plan_batches


@pytest.mark.parametrize(
    ("n", "requested", "urgent", "expected"),
    [
        (1, "auto", False, "sync"),
        (2, "auto", False, "batch"),
        (6, "auto", False, "batch"),
        (100_000, "auto", False, "batch"),
        (2, "auto", True, "parallel"),
        (1, "auto", True, "sync"),
        (1, "batch", False, "batch"),
        (50, "sync", False, "sync"),
        (50, "parallel", False, "parallel"),
        (0, "auto", False, "sync"),
    ],
)
def test_choose_mode(n, requested, urgent, expected):
    assert choose_mode(n, requested, urgent=urgent) == expected


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        choose_mode(3, "turbo")


def ranges(sizes, **limits):
    return list(plan_batches(sizes, **limits))


@pytest.mark.parametrize(("n", "expected"), [(0, 0), (1, 1), (9, 1), (10, 1), (11, 2), (25, 3)])
def test_splits_at_max_requests(n, expected):
    plan = ranges([1] * n, max_requests=10)
    assert len(plan) == expected
    assert all(stop - start <= 10 for start, stop in plan)
    # Contiguous, complete, in order: every request lands in exactly one batch.
    assert [i for start, stop in plan for i in range(start, stop)] == list(range(n))


def test_splits_at_max_bytes():
    plan = ranges([40, 40, 40, 10, 90, 5], max_requests=100, max_bytes=100)
    assert plan == [(0, 2), (2, 4), (4, 6)]


def test_a_request_over_the_byte_limit_gets_its_own_batch():
    assert ranges([5, 500, 5], max_requests=10, max_bytes=100) == [(0, 1), (1, 2), (2, 3)]


def test_limits_never_exceed_the_api_ceilings():
    n = MAX_BATCH_REQUESTS + 5
    plan = ranges(iter([1] * n), max_requests=10**9, max_bytes=10**12)
    assert plan == [(0, MAX_BATCH_REQUESTS), (MAX_BATCH_REQUESTS, n)]
    big = MAX_BATCH_BYTES // 2
    assert ranges([big, big, 1], max_requests=10) == [(0, 2), (2, 3)]


def test_streams_lazily():
    """The planner yields a batch as soon as it is closed, before reading the whole input."""
    consumed = []

    def sizes():
        for i in range(1000):
            consumed.append(i)
            yield 1

    first = next(plan_batches(sizes(), max_requests=3))
    assert first == (0, 3) and len(consumed) == 4


def test_bad_limits():
    with pytest.raises(ValueError):
        ranges([1], max_requests=0)

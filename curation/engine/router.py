"""The dual-mode router and the batch planner: pure functions, no Django, limits as inputs."""

from collections.abc import Iterable, Iterator

SYNC = "sync"
PARALLEL = "parallel"
BATCH = "batch"
AUTO = "auto"
MODES = (AUTO, SYNC, PARALLEL, BATCH)

# The Message Batches API's own ceilings: at most this many requests, this many bytes per batch.
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024


def choose_mode(n_items: int, requested: str = AUTO, *, urgent: bool = False) -> str:
    """How a job of `n_items` runs: an explicit mode is honoured; `auto` picks by size.

    auto: one item -> sync (the real-time Messages API); two or more -> batch (half price),
    unless the job is urgent, then parallel real-time calls.
    """
    if requested not in MODES:
        raise ValueError(f"unknown mode {requested!r} (choose from {', '.join(MODES)})")
    if requested != AUTO:
        return requested
    if n_items <= 1:
        return SYNC
    return PARALLEL if urgent else BATCH


def plan_batches(
    sizes: Iterable[int],
    *,
    max_requests: int,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[tuple[int, int]]:
    """Split requests (given by their sizes in bytes, in order) into batches.

    Yields half-open index ranges `(start, stop)` as soon as each batch is closed, so a
    caller can stream a large selection through it. No batch holds more than `max_requests`
    (capped at the API's 100,000) or more than `max_bytes` (capped at 256 MB) of requests;
    a single request larger than `max_bytes` still gets a batch of its own (the API then
    rejects it and its item fails with that reason, rather than being silently dropped).
    """
    max_requests = min(int(max_requests), MAX_BATCH_REQUESTS)
    max_bytes = min(int(max_bytes), MAX_BATCH_BYTES)
    if max_requests < 1 or max_bytes < 1:
        raise ValueError("max_requests and max_bytes must be positive")
    start = 0
    count = 0
    total = 0
    index = -1
    for index, size in enumerate(sizes):
        if count and (count >= max_requests or total + size > max_bytes):
            yield start, index
            start, count, total = index, 0, 0
        count += 1
        total += size
    if count:
        yield start, index + 1

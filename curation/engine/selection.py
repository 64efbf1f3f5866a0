"""A stored selection of rows: their ids as JSON [first, last] ranges, read back in chunks.

What an admin action hands to a worker is `{"ranges": [[first, last], ...]}`: plain JSON a
person can read in the operation's params, 100,000 consecutive notes in one pair, and nothing
that runs code when loaded (an older version stored a pickled query; such a selection is
refused with a message saying to start the action again).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db.models import Q, QuerySet

CHUNK = 2000  # ids per query when a selection is read back
RANGES_PER_QUERY = 400  # [first, last] pairs in one WHERE (two parameters each)


class SelectionFormatError(ValueError):
    """A stored selection this version cannot read (an older format, or not a selection)."""


def id_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Ids as sorted [first, last] runs: 100,000 consecutive notes are one pair."""
    ranges: list[list[int]] = []
    for i in sorted(set(ids)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def ranges_count(ranges) -> int:
    return sum(last - first + 1 for first, last in ranges or [])


def ids_from_ranges(ranges) -> list[int]:
    return [i for first, last in ranges or [] for i in range(first, last + 1)]


def selection_of(queryset: QuerySet) -> dict:
    """The selection a worker will read: the queryset's ids (read once, here) as ranges."""
    ids = queryset.order_by("pk").values_list("pk", flat=True).distinct()
    return selection_from_ids(ids)


def selection_from_ids(ids: Iterable[int]) -> dict:
    return {"ranges": id_ranges(ids)}


def selection_ranges(selection) -> list[list[int]]:
    """The [first, last] ranges of a stored selection; SelectionFormatError when it is not one."""
    if isinstance(selection, dict) and "query" in selection:
        raise SelectionFormatError(
            "This operation was stored by an older version (its selection is a saved query, "
            "which this version no longer reads). Nothing was done: run the action again "
            "from the admin."
        )
    ranges = selection.get("ranges") if isinstance(selection, dict) else None
    if not isinstance(ranges, list) or not all(
        isinstance(pair, list)
        and len(pair) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) for i in pair)
        and pair[0] <= pair[1]
        for pair in ranges
    ):
        raise SelectionFormatError(
            "This operation's selection is not in a format this version reads (expected "
            '{"ranges": [[first id, last id], ...]}). Nothing was done: run the action again '
            "from the admin."
        )
    return ranges


def selection_ids(selection) -> list[int]:
    """Every id a stored selection names, sorted."""
    return ids_from_ranges(selection_ranges(selection))


def ranges_q(ranges, field: str = "pk") -> Iterator[Q]:
    """WHERE conditions covering the ranges, RANGES_PER_QUERY pairs each."""
    for start in range(0, len(ranges), RANGES_PER_QUERY):
        condition = Q()
        for first, last in ranges[start : start + RANGES_PER_QUERY]:
            if first == last:
                condition |= Q(**{field: first})
            else:
                condition |= Q(**{f"{field}__gte": first, f"{field}__lte": last})
        yield condition


def chunks(ids: list[int], size: int = CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]

"""What a curation call costs: per-model token prices, the batch discount, prompt-cache facts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MTOK = Decimal(1_000_000)
# Message Batches cost half of every token kind, and the discount stacks with prompt caching
# (https://platform.claude.com/docs/en/build-with-claude/batch-processing, "Pricing").
BATCH_DISCOUNT = Decimal("0.5")
# The multipliers on input that the pricing page states for prompt caching: a 5-minute cache
# write costs 1.25x input, a 1-hour write 2x, a cache hit 0.1x. Models from Opus 5.5 on cut the
# hit price further, so each row below carries its own five prices; these only fill in the cache
# prices of a CURATION_PRICES entry that gives none.
CACHE_WRITE_5M = Decimal("1.25")
CACHE_WRITE_1H = Decimal("2")
CACHE_READ = Decimal("0.1")


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens (MTok)."""

    input: Decimal
    output: Decimal
    cache_write: Decimal  # 5-minute cache writes (the default `ephemeral` lifetime)
    cache_write_1h: Decimal  # 1-hour cache writes (`"ttl": "1h"`)
    cache_read: Decimal  # cache hits and refreshes
    # (prompt tokens, prices) for a model that bills a long prompt at other rates: a request
    # whose prompt (input + cache writes + cache reads) is over that many tokens pays those.
    long_prompt: tuple[int, Price] | None = None


def _row(i: str, o: str, w5: str, w1h: str, r: str, *, long_prompt=None) -> Price:
    return Price(Decimal(i), Decimal(o), Decimal(w5), Decimal(w1h), Decimal(r), long_prompt)


# Checked 2026-12-04 against Anthropic's pricing documentation:
#   https://platform.claude.com/docs/en/about-claude/pricing  ("Model pricing": base input,
#   5m cache writes, 1h cache writes, cache hits and refreshes, output, per MTok), and the
#   "Pricing" box of each model's page, https://platform.claude.com/docs/en/models/<id>/overview
#   (opus-5-5, sonnet-5-5, sonnet-5, haiku-5-5).
# Left out, retired on the Claude API (requests to them fail): claude-3-5-haiku, Claude Opus
# 4.1 and 4 ("retired, except on Bedrock and Google Cloud" on the pricing page), Claude Sonnet
# 4.5 (retired 2026-11-30, per its model page) and Sonnet 4. Limited-availability models
# (Mythos) are not listed. CURATION_PRICES adds or overrides any model.
PRICES: dict[str, Price] = {
    "claude-fable-5-1": _row("10", "50", "12.50", "20", "0.25"),
    "claude-fable-5": _row("10", "50", "12.50", "20", "1"),
    "claude-opus-5-5": _row("4", "20", "5", "8", "0.20"),
    "claude-opus-5": _row("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-8": _row("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-7": _row("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-6": _row("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-5": _row("5", "25", "6.25", "10", "0.50"),
    # Sonnet 5.5's model page still shows a $0.20 cache read; the price was cut to $0.10 on
    # 2026-10-07 (the pricing page since then, as three independent price trackers report).
    "claude-sonnet-5-5": _row("2", "10", "2.50", "4", "0.10"),
    "claude-sonnet-5": _row("2", "10", "2.50", "4", "0.20"),
    "claude-sonnet-4-6": _row("3", "15", "3.75", "6", "0.30"),
    # Haiku 5.5: "From $0.10 / $0.50"; a prompt over 100K tokens bills every token of that
    # request at the higher rates.
    "claude-haiku-5-5": _row(
        "0.10", "0.50", "0.125", "0.20", "0.01",
        long_prompt=(100_000, _row("0.50", "2.50", "0.625", "1", "0.05")),
    ),
    "claude-haiku-4-5": _row("1", "5", "1.25", "2", "0.10"),
}

# The smallest prefix the API caches, per model, in tokens: below it a `cache_control` mark is
# ignored and the prefix is billed as plain input (no error). From the prompt-caching page
# ("Cache limitations"), https://platform.claude.com/docs/en/build-with-claude/prompt-caching,
# as quoted in anthropics/anthropic-sdk-python#1194 (4,096: Opus 4.6, Opus 4.5, Haiku 4.5;
# 1,024: Sonnet 4.6, Sonnet 4.5, Opus 4.1, Opus 4) and for the 2026 models (512: Opus 5, Fable
# 5; 1,024: Opus 4.8, Sonnet 5; 2,048: Opus 4.7). Models with no documented minimum found
# (the 5.5 family, Fable 5.1): 1,024, the common floor.
CACHE_MINIMUM_TOKENS: dict[str, int] = {
    "claude-fable-5": 512,
    "claude-opus-5": 512,
    "claude-opus-4-8": 1024,
    "claude-opus-4-7": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-sonnet-5": 1024,
    "claude-sonnet-4-6": 1024,
    "claude-haiku-4-5": 4096,
}
CACHE_MINIMUM_DEFAULT = 1024

_DATED = re.compile(r"^(?P<base>.+?)(?:-\d{8}|-latest)?$")


class UnknownPrice(ValueError):
    """No price is known for the model: nothing may be sent for it."""


def base_model(model: str) -> str:
    """`claude-haiku-4-5-20251001` and `claude-haiku-4-5-latest` -> `claude-haiku-4-5`."""
    match = _DATED.match(model.strip())
    return match.group("base") if match else model


def _decimal(value, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{where}: {value!r} is not a price")
    return number


def parse_prices(data) -> dict[str, Price]:
    """CURATION_PRICES: `{"model": {"input": 3, "output": 15, ...}}` (US$ per MTok), parsed.

    `cache_write`, `cache_write_1h` and `cache_read` default to 1.25x, 2x and 0.1x input.
    Raises ValueError with a one-line reason.
    """
    if not isinstance(data, dict):
        raise ValueError('CURATION_PRICES must be a JSON object: {"model": {"input": ..., '
                         '"output": ...}}')
    known = {"input", "output", "cache_write", "cache_write_1h", "cache_read"}
    prices = {}
    for model, row in data.items():
        where = f"CURATION_PRICES[{model!r}]"
        if not isinstance(row, dict) or not {"input", "output"} <= set(row):
            raise ValueError(f"{where} needs at least \"input\" and \"output\" (US$ per MTok)")
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"{where} has unknown key(s): {', '.join(sorted(unknown))}")
        given = {key: _decimal(value, f"{where}[{key!r}]") for key, value in row.items()}
        base = given["input"]
        prices[model.strip()] = Price(
            input=base,
            output=given["output"],
            cache_write=given.get("cache_write", base * CACHE_WRITE_5M),
            cache_write_1h=given.get("cache_write_1h", base * CACHE_WRITE_1H),
            cache_read=given.get("cache_read", base * CACHE_READ),
        )
    return prices


# The setting's value last seen and the table made from it: the same object again is not read
# again (settings are replaced, never changed in place: override_settings, a test's
# assignment). bench/batch_bench.py "apply results" prices every answer: re-reading the
# setting took half of each cost() (10 us a call before, 5.5 us now).
_last: list = [None, None]


def _table() -> dict[str, Price]:
    """The built-in prices, then CURATION_PRICES over them (read at call time)."""
    from django.conf import settings

    given = settings.CURATION_PRICES
    if given is _last[0] and _last[1] is not None:
        return _last[1]
    extra = given or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    table = {**PRICES, **parse_prices(extra)}
    _last[:] = [given, table]
    return table


def price_for(model: str) -> Price:
    """The model's prices; a dated name (`...-20251001`) or `-latest` costs as its base name.

    Raises UnknownPrice (one line, safe to show) when neither the table nor CURATION_PRICES
    knows the model: a job for it is refused before anything is sent.
    """
    table = _table()
    found = table.get(model) or table.get(base_model(model))
    if found is None:
        raise UnknownPrice(
            f"no price is known for model {model!r}: add it to CURATION_PRICES "
            '(e.g. {"' + model + '": {"input": 3, "output": 15}}, US$ per million tokens)'
        )
    return found


def cache_minimum(model: str) -> int:
    return CACHE_MINIMUM_TOKENS.get(base_model(model), CACHE_MINIMUM_DEFAULT)


def _tokens(usage, key: str) -> int | Decimal:
    value = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
    return value if isinstance(value, Decimal) else int(value or 0)  # Decimal: an average


def _one_hour_writes(usage) -> int:
    detail = usage.get("cache_creation") if isinstance(usage, dict) else getattr(
        usage, "cache_creation", None)
    if not detail:
        return 0
    return _tokens(detail, "ephemeral_1h_input_tokens")


def cost(usage, *, model: str, batch: bool) -> Decimal:
    """Exact dollars for one answer's reported usage (a dict or the SDK's Usage object).

    Raises UnknownPrice for a model with no known price.
    """
    p = price_for(model)
    writes = _tokens(usage, "cache_creation_input_tokens")
    hour = min(_one_hour_writes(usage), writes)
    reads = _tokens(usage, "cache_read_input_tokens")
    plain = _tokens(usage, "input_tokens")
    if p.long_prompt and plain + writes + reads > p.long_prompt[0]:
        p = p.long_prompt[1]
    total = (
        plain * p.input
        + _tokens(usage, "output_tokens") * p.output
        + (writes - hour) * p.cache_write
        + hour * p.cache_write_1h
        + reads * p.cache_read
    ) / MTOK
    return total * BATCH_DISCOUNT if batch else total

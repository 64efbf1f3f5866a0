"""What a curation call costs: per-model token prices, batch discount, estimates before submitting."""

import logging
from dataclasses import dataclass
from decimal import Decimal

log = logging.getLogger(__name__)

MTOK = Decimal(1_000_000)
BATCH_DISCOUNT = Decimal("0.5")  # Message Batches cost half, stacking with prompt caching
DEFAULT_MODEL = "claude-haiku-4-5"
EST_OUTPUT_TOKENS = 150  # a tags + description + related answer is ~100-200 tokens


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: Decimal
    output: Decimal
    cache_write: Decimal  # 5-minute cache writes (1.25x input)
    cache_read: Decimal  # cache hits (0.1x input)


def _price(i: str, o: str, w: str, r: str) -> Price:
    return Price(Decimal(i), Decimal(o), Decimal(w), Decimal(r))


PRICES: dict[str, Price] = {
    "claude-haiku-4-5": _price("1", "5", "1.25", "0.10"),
    "claude-sonnet-4-5": _price("3", "15", "3.75", "0.30"),
    "claude-opus-4-5": _price("5", "25", "6.25", "0.50"),
    "claude-3-5-haiku": _price("0.80", "4", "1", "0.08"),
}
_warned: set[str] = set()


def price_for(model: str) -> Price:
    """The model's prices; dated names (`claude-haiku-4-5-20251001`) and `-latest` match their base."""
    if model in PRICES:
        return PRICES[model]
    matches = [name for name in PRICES if model.startswith(name + "-")]
    if matches:
        return PRICES[max(matches, key=len)]
    if model not in _warned:
        _warned.add(model)
        log.warning("No price known for model %r; costing it at %s prices", model, DEFAULT_MODEL)
    return PRICES[DEFAULT_MODEL]


def _tokens(usage, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
    return int(value or 0)


def cost(usage, *, model: str, batch: bool) -> Decimal:
    """Exact dollars for one answer's reported usage (a dict or the SDK's Usage object)."""
    p = price_for(model)
    total = (
        _tokens(usage, "input_tokens") * p.input
        + _tokens(usage, "output_tokens") * p.output
        + _tokens(usage, "cache_creation_input_tokens") * p.cache_write
        + _tokens(usage, "cache_read_input_tokens") * p.cache_read
    ) / MTOK
    return total * BATCH_DISCOUNT if batch else total


def estimate(
    *,
    n_items: int,
    avg_input_tokens: int,
    model: str,
    batch: bool,
    avg_output_tokens: int = EST_OUTPUT_TOKENS,
    cached_prefix_tokens: int = 0,
) -> Decimal:
    """Dollars expected before submitting: every item's input and a typical answer.

    With `cached_prefix_tokens` (part of `avg_input_tokens`), the first item writes the cache
    and the others read it.
    """
    if n_items <= 0:
        return Decimal(0)
    prefix = min(cached_prefix_tokens, avg_input_tokens)
    rest = avg_input_tokens - prefix
    usage = {
        "input_tokens": n_items * rest,
        "output_tokens": n_items * avg_output_tokens,
        "cache_creation_input_tokens": prefix,
        "cache_read_input_tokens": (n_items - 1) * prefix,
    }
    return cost(usage, model=model, batch=batch)

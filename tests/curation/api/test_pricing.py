"""Prices: the table (checked against the pricing page), CURATION_PRICES, unknown models refused."""

from decimal import Decimal

import pytest

from curation.api import pricing

USAGE = {"input_tokens": 1000, "output_tokens": 500, "cache_creation_input_tokens": 2000,
         "cache_read_input_tokens": 10_000}


@pytest.mark.parametrize(
    "model, realtime, batch",
    [
        # 1000*in + 500*out + 2000*5m-write + 10000*read, per million tokens
        ("claude-haiku-4-5", "0.007", "0.0035"),  # 1000 + 2500 + 2500 + 1000 = 7000
        ("claude-sonnet-4-6", "0.021", "0.0105"),  # 3000 + 7500 + 7500 + 3000 = 21000
        ("claude-opus-4-5", "0.035", "0.0175"),  # 5000 + 12500 + 12500 + 5000 = 35000
        ("claude-opus-5-5", "0.026", "0.013"),  # 4000 + 10000 + 10000 + 2000 = 26000
        ("claude-haiku-4-5-20251001", "0.007", "0.0035"),  # a dated name costs as its base
        ("claude-haiku-4-5-latest", "0.007", "0.0035"),
    ],
)
def test_cost_worked_examples(model, realtime, batch):
    assert pricing.cost(USAGE, model=model, batch=False) == Decimal(realtime)
    assert pricing.cost(USAGE, model=model, batch=True) == Decimal(batch)


def test_cost_of_a_single_cached_read_is_exact():
    usage = {"input_tokens": 7, "output_tokens": 0, "cache_read_input_tokens": 3}
    # 7 * $1 + 3 * $0.10 = $7.30 per million tokens
    assert pricing.cost(usage, model="claude-haiku-4-5", batch=False) == Decimal("0.0000073")


def test_one_hour_cache_writes_cost_twice_the_input_price():
    usage = {"input_tokens": 0, "cache_creation_input_tokens": 3000,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000,
                                "ephemeral_1h_input_tokens": 2000}}
    # 1000 * $1.25 + 2000 * $2 = $5.25 per million tokens
    assert pricing.cost(usage, model="claude-haiku-4-5", batch=False) == Decimal("0.00525")


def test_missing_usage_keys_count_as_zero():
    assert pricing.cost({"input_tokens": 1_000_000, "cache_read_input_tokens": None},
                        model="claude-sonnet-4-6", batch=True) == Decimal("1.5")


def test_the_claude_4_rows_follow_the_documented_cache_multipliers():
    """5-minute writes 1.25x input, 1-hour writes 2x, hits 0.1x: the pricing page's rule."""
    for model in ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-5", "claude-opus-4-6",
                  "claude-opus-4-7", "claude-opus-4-8"):
        p = pricing.PRICES[model]
        assert p.cache_write == p.input * Decimal("1.25"), model
        assert p.cache_write_1h == p.input * 2, model
        assert p.cache_read == p.input * Decimal("0.1"), model


def test_retired_models_are_not_priced():
    for model in ("claude-3-5-haiku", "claude-3-5-haiku-20241022", "claude-sonnet-4-5",
                  "claude-opus-4-1", "claude-opus-4", "claude-sonnet-4"):
        with pytest.raises(pricing.UnknownPrice):
            pricing.price_for(model)


def test_an_unknown_model_is_refused_with_a_one_line_reason():
    with pytest.raises(pricing.UnknownPrice) as info:
        pricing.cost(USAGE, model="mystery-model", batch=False)
    reason = str(info.value)
    assert "mystery-model" in reason and "CURATION_PRICES" in reason and "\n" not in reason


def test_a_near_name_is_not_taken_for_a_known_model():
    """`claude-opus-5-7` is not Opus 5 with a suffix: only a date or `-latest` may follow."""
    with pytest.raises(pricing.UnknownPrice):
        pricing.price_for("claude-opus-5-7")
    assert pricing.price_for("claude-opus-5-5").input == Decimal("4")


def test_curation_prices_adds_a_model_and_fills_in_cache_prices(settings):
    settings.CURATION_PRICES = {"my-model": {"input": 2, "output": "8"}}
    p = pricing.price_for("my-model")
    assert (p.input, p.output, p.cache_write, p.cache_write_1h, p.cache_read) == (
        Decimal(2), Decimal(8), Decimal("2.50"), Decimal(4), Decimal("0.2"))


def test_curation_prices_overrides_a_built_in_row(settings):
    settings.CURATION_PRICES = {"claude-haiku-4-5": {"input": 0.5, "output": 2.5,
                                                     "cache_read": 0.01}}
    assert pricing.price_for("claude-haiku-4-5-20251001").cache_read == Decimal("0.01")
    assert pricing.cost({"input_tokens": 2_000_000}, model="claude-haiku-4-5",
                        batch=False) == Decimal("1.0")


@pytest.mark.parametrize("bad, reason", [
    ({"m": {"input": 1}}, "needs at least"),
    ({"m": {"input": 1, "output": "lots"}}, "not a number"),
    ({"m": {"input": -1, "output": 2}}, "not a price"),
    ({"m": {"input": 1, "output": 2, "speed": 3}}, "unknown key"),
    (["m"], "JSON object"),
])
def test_curation_prices_errors_say_what_is_wrong(settings, bad, reason):
    settings.CURATION_PRICES = bad
    with pytest.raises(ValueError, match=reason):
        pricing.price_for("m")


def test_a_long_prompt_is_billed_at_the_long_prompt_rates():
    """Haiku 5.5 bills every token of a request whose prompt passes 100K at its higher rates."""
    short = {"input_tokens": 100_000, "output_tokens": 1000}
    long = {"input_tokens": 90_000, "cache_read_input_tokens": 10_001, "output_tokens": 1000}
    # 100000 * $0.10 + 1000 * $0.50 = $10,500 per million tokens
    assert pricing.cost(short, model="claude-haiku-5-5", batch=False) == Decimal("0.0105")
    # 90000 * $0.50 + 10001 * $0.05 + 1000 * $2.50
    assert pricing.cost(long, model="claude-haiku-5-5", batch=False) == Decimal("0.04800005")


def test_cache_minimum_per_model():
    assert pricing.cache_minimum("claude-haiku-4-5-20251001") == 4096
    assert pricing.cache_minimum("claude-sonnet-4-6") == 1024
    assert pricing.cache_minimum("claude-opus-5") == 512

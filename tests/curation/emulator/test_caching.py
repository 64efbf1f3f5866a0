"""The emulator's prompt cache and count_tokens, driven by the real SDK over HTTP.

What the real API does (prompt-caching and batch-processing pages): a prefix under the model's
minimum cacheable length is billed as plain input; an entry lives 5 minutes, renewed by each
hit; inside a batch caching is best effort; count_tokens counts the input a message is billed.
"""

import anthropic
import pytest

from curation.api import pricing
from curation.emulator import caching

from .test_emulator import TOOL, user_text

HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-6"


def marked(chars: int, ttl: str | None = None) -> list[dict]:
    mark = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": "Curate notes. " + "x" * chars, "cache_control": mark}]


def params(path="ai/a.md", *, model=HAIKU, chars=20_000, ttl=None, **extra):
    return {
        "model": model, "max_tokens": 512, "system": marked(chars, ttl), "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": "record_curation"},
        "messages": [{"role": "user", "content": user_text(path)}], **extra,
    }


@pytest.fixture
def sdk(emulator):
    client = anthropic.Anthropic(base_url=emulator.url, api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def clock(emulator):
    now = [1_000_000.0]
    emulator.clock = lambda: now[0]
    return now


def billed(usage) -> int:
    return usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens


def test_a_prefix_from_the_minimum_is_written_once_then_read(sdk, emulator):
    first = sdk.messages.create(**params("a.md")).usage
    second = sdk.messages.create(**params("b.md")).usage
    assert first.cache_creation_input_tokens >= pricing.cache_minimum(HAIKU)
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert 0 < second.input_tokens < 200  # only the user message is plain input
    assert emulator.stats()["cache_writes"] == 1 and emulator.stats()["cache_reads"] == 1


def test_a_prefix_under_the_minimum_is_billed_as_plain_input(sdk, emulator):
    """Haiku 4.5 caches from 4,096 tokens: the app's old ~370-token prefix never was."""
    usages = [sdk.messages.create(**params(f"{i}.md", chars=1_400)).usage for i in range(3)]
    for usage in usages:
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
        assert usage.input_tokens == billed(usages[0])
    assert emulator.stats()["cache_writes"] == 0 and emulator.stats()["cache_reads"] == 0


def test_the_minimum_is_the_models_own(sdk):
    """About 2,000 tokens: enough for Sonnet 4.6 (1,024), not for Haiku 4.5 (4,096)."""
    for model in (HAIKU, SONNET):
        sdk.messages.create(**params("a.md", model=model, chars=8_000))
    haiku = sdk.messages.create(**params("b.md", model=HAIKU, chars=8_000)).usage
    sonnet = sdk.messages.create(**params("b.md", model=SONNET, chars=8_000)).usage
    assert haiku.cache_read_input_tokens == 0 and haiku.cache_creation_input_tokens == 0
    assert sonnet.cache_read_input_tokens > 2000 > pricing.cache_minimum(SONNET)


def test_an_entry_lives_five_minutes_renewed_by_each_hit(sdk, emulator, clock):
    assert emulator.config.cache_seconds == 300  # the default: the documented 5 minutes
    assert sdk.messages.create(**params("a.md")).usage.cache_creation_input_tokens > 0
    clock[0] += 299
    assert sdk.messages.create(**params("b.md")).usage.cache_read_input_tokens > 0
    clock[0] += 299  # 598 s after the write, 299 s after the hit that renewed it
    assert sdk.messages.create(**params("c.md")).usage.cache_read_input_tokens > 0
    clock[0] += 301  # more than 5 minutes after the last use
    late = sdk.messages.create(**params("d.md")).usage
    assert late.cache_read_input_tokens == 0 and late.cache_creation_input_tokens > 0


def test_a_one_hour_entry_outlives_five_minutes(sdk, clock):
    first = sdk.messages.create(**params("a.md", ttl="1h")).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == first.cache_creation_input_tokens
    clock[0] += 3000
    assert sdk.messages.create(**params("b.md", ttl="1h")).usage.cache_read_input_tokens > 0
    clock[0] += 3601
    assert sdk.messages.create(**params("c.md", ttl="1h")).usage.cache_read_input_tokens == 0


def test_a_shorter_cache_life_is_configurable(sdk, emulator, clock):
    emulator.configure(cache_seconds=10)
    sdk.messages.create(**params("a.md"))
    clock[0] += 11
    assert sdk.messages.create(**params("b.md")).usage.cache_read_input_tokens == 0


def batch_usages(sdk, emulator, n=40):
    batch = sdk.messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": params(f"n{i}.md")} for i in range(n)])
    return [r.result.message.usage for r in sdk.messages.batches.results(batch.id)]


@pytest.mark.parametrize("share, reads", [(0.0, 0), (1.0, 39)])
def test_caching_inside_a_batch_is_best_effort(sdk, emulator, share, reads):
    emulator.configure(batch_cache_hits=share)
    usages = batch_usages(sdk, emulator)
    hits = sum(u.cache_read_input_tokens > 0 for u in usages)
    assert hits == reads
    assert sum(u.cache_creation_input_tokens > 0 for u in usages) == 40 - reads


def test_by_default_a_batch_misses_the_cache_often(sdk, emulator):
    assert emulator.config.batch_cache_hits == 0.3
    usages = batch_usages(sdk, emulator)
    hits = sum(u.cache_read_input_tokens > 0 for u in usages)
    assert 3 <= hits <= 25  # some requests hit, most pay for a write
    assert sum(billed(u) for u in usages) == 40 * billed(usages[0])


def test_a_batch_result_read_twice_is_billed_the_same(sdk, emulator):
    batch = sdk.messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": params(f"n{i}.md")} for i in range(5)])
    first = [r.result.message.usage for r in sdk.messages.batches.results(batch.id)]
    again = [r.result.message.usage for r in sdk.messages.batches.results(batch.id)]
    assert first == again


# --- count_tokens ----------------------------------------------------------------------------


def counted(sdk, p) -> int:
    body = {k: v for k, v in p.items() if k != "max_tokens"}
    return sdk.messages.count_tokens(**body).input_tokens


@pytest.mark.parametrize("chars", [100, 20_000])
def test_count_tokens_equals_the_input_a_message_is_billed(sdk, chars):
    p = params("a.md", chars=chars)
    before = counted(sdk, p)
    first = sdk.messages.create(**p).usage
    second = sdk.messages.create(**p).usage
    assert before == billed(first) == billed(second) > 0


def test_count_tokens_counts_tools_system_and_messages(sdk):
    bare = {"model": HAIKU, "messages": [{"role": "user", "content": "hello"}]}
    with_system = {**bare, "system": "You curate notes. " * 50}
    with_tools = {**with_system, "tools": [TOOL]}
    n = [sdk.messages.count_tokens(**p).input_tokens for p in (bare, with_system, with_tools)]
    assert 0 < n[0] < n[1] < n[2]


def test_count_tokens_is_no_message_and_no_note_attempt(sdk, emulator):
    emulator.configure(rpm=1, rate_window=60)
    for _ in range(3):  # not held to the messages rate limit either
        counted(sdk, params("a.md"))
    stats = emulator.stats()
    assert stats["messages"] == 0 and stats["notes"] == {} and stats["count_tokens"] == 3
    assert stats["cache_writes"] == 0


def test_count_tokens_refuses_what_the_api_refuses(sdk):
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        sdk.post("/v1/messages/count_tokens", body=params("a.md"),
                 cast_to=anthropic.types.MessageTokensCount)
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        sdk.messages.count_tokens(model=HAIKU, messages=[])


def test_split_puts_tools_and_marked_system_in_the_prefix():
    p = params("a.md", chars=4000)
    parts = caching.split(p)
    unmarked = caching.split({**p, "system": [{"type": "text", "text": p["system"][0]["text"]}]})
    assert parts.marked and not unmarked.marked
    assert parts.prefix > 1000 and parts.rest < 200
    assert abs(parts.total - unmarked.total) <= 1  # where the cut falls, not what is counted

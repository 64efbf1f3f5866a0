"""The built-in API emulator, driven by the real anthropic SDK (sync and async) over HTTP."""

import asyncio
import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from io import StringIO
from pathlib import Path

import anthropic
import pytest
from django.core.management import CommandError, call_command

from curation.emulator import Emulator
from curation.emulator import protocol as emulator_module
from curation.emulator.protocol import ApiProblem

MODEL = "claude-haiku-4-5"
TOOL = {
    "name": "record_curation",
    "description": "Record the curation of one note.",
    "input_schema": {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "description": {"type": "string"},
            "related": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["tags", "description", "related"],
    },
}
SYSTEM = [{
    "type": "text",
    "text": "Curate notes.\n\nExisting tags in this vault: ai/agents, cooking/baking",
    "cache_control": {"type": "ephemeral"},
}]


def user_text(path="ai/Agent Frameworks.md", body=None, candidates=("LangGraph Notes", "Sourdough")):
    body = body or ("Agent frameworks such as LangGraph orchestrate LLM agents with tools. "
                    "They help agents plan and call tools.")
    lines = [f"Note path: {path}", "Title: Agent Frameworks", "", "<note>", body, "</note>", "",
             "Candidate related notes (answer with their link names):"]
    lines += [f"- [[{name}]] ({name}.md)" for name in candidates]
    return "\n".join(lines)


def params(path="ai/Agent Frameworks.md", **extra):
    base = {
        "model": MODEL,
        "max_tokens": 512,
        "system": SYSTEM,
        "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": "record_curation"},
        "messages": [{"role": "user", "content": user_text(path)}],
    }
    base.update(extra)
    return base


@pytest.fixture
def sdk(emulator):
    client = anthropic.Anthropic(base_url=emulator.url, api_key="sk-test", max_retries=0)
    yield client
    client.close()


def sdk_with_retries(emulator, retries):
    return anthropic.Anthropic(base_url=emulator.url, api_key="sk-test", max_retries=retries)


def http(emulator, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(emulator.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# --- Messages --------------------------------------------------------------------------------


def test_forced_tool_answer_is_plausible_and_deterministic(sdk, emulator):
    first = sdk.messages.create(**params())
    assert first.stop_reason == "tool_use"
    [block] = first.content
    assert block.type == "tool_use" and block.name == "record_curation"
    assert set(block.input) == {"tags", "description", "related"}
    assert "ai/agents" in block.input["tags"]  # an existing tag that fits is reused
    assert all(t == t.lower() and " " not in t for t in block.input["tags"])
    assert any("/" in t for t in block.input["tags"])
    assert block.input["description"].startswith("Agent frameworks such as LangGraph")
    assert block.input["related"] == ["LangGraph Notes"]
    again = sdk.messages.create(**params())
    assert again.content[0].input == block.input
    assert emulator.stats()["notes"] == {"ai/Agent Frameworks.md": 2}


def test_answer_holds_only_the_fields_the_schema_asks_for(sdk):
    tool = {**TOOL, "input_schema": {"type": "object", "properties": {"description": {"type": "string"}}}}
    message = sdk.messages.create(**params(tools=[tool]))
    assert list(message.content[0].input) == ["description"]


def test_json_schema_output_format_answers_with_json_text(sdk):
    schema = {"type": "object", "properties": {"tags": {"type": "array"}}}
    p = params(output_config={"format": {"type": "json_schema", "schema": schema}})
    del p["tools"], p["tool_choice"]
    message = sdk.messages.create(**p)
    assert message.content[0].type == "text"
    assert list(json.loads(message.content[0].text)) == ["tags"]


def test_without_cache_control_everything_is_plain_input(sdk):
    usage = sdk.messages.create(**params(system="Curate notes.")).usage
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


def test_bearer_token_is_accepted(emulator):
    with anthropic.Anthropic(base_url=emulator.url, auth_token="tok", max_retries=0) as client:
        assert client.messages.create(**params()).type == "message"


def test_missing_key_is_401_in_the_api_error_shape(emulator):
    request = urllib.request.Request(emulator.url + "/v1/messages", method="POST",
                                     data=json.dumps(params()).encode())
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    body = json.loads(info.value.read())
    assert info.value.code == 401
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"model": None}, "model: Field required"),
        ({"messages": []}, "at least one message"),
        ({"tool_choice": {"type": "tool", "name": "other"}}, "Tool 'other' not found"),
    ],
)
def test_invalid_params_raise_bad_request(sdk, change, reason):
    body = {k: v for k, v in {**params(), **change}.items() if v is not None}
    with pytest.raises(anthropic.BadRequestError) as info:
        # The SDK's own post: messages.create would refuse a missing argument before sending.
        sdk.post("/v1/messages", body=body, cast_to=anthropic.types.Message)
    assert info.value.status_code == 400
    assert info.value.type == "invalid_request_error"
    assert reason in info.value.api_message


def test_unknown_batch_is_not_found(sdk):
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve("msgbatch_nope")


# --- Faults and rate limits ------------------------------------------------------------------


def test_429_with_retry_after_is_retried_by_the_sdk(emulator):
    emulator.configure(fault_429=1.0)
    with sdk_with_retries(emulator, 2) as client:
        message = client.messages.create(**params())
    assert message.content[0].type == "tool_use"
    stats = emulator.stats()
    assert stats["status_429"] == 1 and stats["messages"] == 2 and stats["messages_ok"] == 1
    assert stats["notes"] == {"ai/Agent Frameworks.md": 2}


def test_persistent_429_reaches_the_sdk_with_retry_after(sdk, emulator):
    emulator.configure(fault_429=1.0, fault_attempts=0, retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as info:
        sdk.messages.create(**params())
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.type == "rate_limit_error"


@pytest.mark.parametrize(
    "fault, error, status",
    [("fault_529", anthropic.OverloadedError, 529), ("fault_500", anthropic.InternalServerError, 500)],
)
def test_server_faults(sdk, emulator, fault, error, status):
    emulator.configure(**{fault: 1.0})
    with pytest.raises(error) as info:
        sdk.messages.create(**params())
    assert info.value.status_code == status
    assert emulator.stats()[f"status_{status}"] == 1
    assert sdk.messages.create(**params()).type == "message"  # only the first attempt failed


def test_fault_shares_are_deterministic_per_note(sdk, emulator):
    emulator.configure(fault_529=0.3, seed=7)

    def failing():
        failed = set()
        for i in range(100):
            try:
                sdk.messages.create(**params(f"n/{i}.md"))
            except anthropic.OverloadedError:
                failed.add(i)
        return failed

    first = failing()
    assert 15 <= len(first) <= 45
    emulator.reset()
    assert failing() == first
    assert emulator.stats()["status_529"] == len(first)


def test_rpm_limit_answers_429_with_ratelimit_headers(sdk, emulator):
    emulator.configure(rpm=2)
    raw = sdk.messages.with_raw_response.create(**params())
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert raw.parse().type == "message"
    sdk.messages.create(**params())
    with pytest.raises(anthropic.RateLimitError) as info:
        sdk.messages.create(**params())
    headers = info.value.response.headers
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 60
    stats = emulator.stats()
    assert stats["rate_limited"] == 1 and stats["status_429"] == 1
    assert stats["notes"]["ai/Agent Frameworks.md"] == 3


def test_rpm_window_passes_and_the_sdk_retry_succeeds(emulator):
    emulator.configure(rpm=1, rate_window=1.5)
    with sdk_with_retries(emulator, 3) as client:
        client.messages.create(**params())
        assert client.messages.create(**params()).type == "message"
    assert emulator.stats()["rate_limited"] >= 1


def test_malformed_answers_have_no_tool_block(sdk, emulator):
    emulator.configure(fault_malformed=1.0)
    message = sdk.messages.create(**params())
    assert [b.type for b in message.content] == ["text"]


def test_concurrent_calls_are_counted_in_flight(emulator):
    emulator.configure(latency=2.0)  # long enough to overlap on a loaded machine
    ready = threading.Barrier(4)
    errors = []

    def call(i):
        ready.wait(timeout=10)
        try:
            client.messages.create(**params(f"{i}.md"))
        except Exception as exc:  # reported below, a thread cannot fail the test itself
            errors.append(exc)

    with sdk_with_retries(emulator, 0) as client:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    stats = emulator.stats()
    assert stats["messages_ok"] == 4 and stats["in_flight"] == 0
    assert 2 <= stats["max_in_flight"] <= 4


# --- Message Batches -------------------------------------------------------------------------


def batch_requests(n, prefix="item", folder="notes"):
    return [{"custom_id": f"{prefix}-{i}", "params": params(f"{folder}/{i}.md")} for i in range(n)]


def test_batch_lifecycle_and_results_in_random_order(sdk, emulator):
    emulator.configure(batch_seconds=3600)
    batch = sdk.messages.batches.create(requests=batch_requests(30))
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 30 and batch.request_counts.succeeded == 0
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        sdk.messages.batches.results(batch.id)
    emulator.configure(batch_seconds=0)  # "finish" it: ends are fixed at creation, so shorten
    emulator.batches[batch.id].ends = emulator.batches[batch.id].created
    ended = sdk.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")
    assert ended.request_counts.succeeded == 30 and ended.request_counts.processing == 0
    results = list(sdk.messages.batches.results(batch.id))
    ids = [r.custom_id for r in results]
    assert sorted(ids) == sorted(f"item-{i}" for i in range(30))
    assert ids != [f"item-{i}" for i in range(30)]  # not in request order
    for r in results:  # each result belongs to its own request, whatever the order
        i = r.custom_id.split("-")[1]
        assert r.result.type == "succeeded"
        assert r.result.message.usage.service_tier == "batch"
        assert r.result.message.content[0].type == "tool_use"
    stats = emulator.stats()
    assert stats["batches"] == 1 and stats["batch_requests"] == 30
    assert stats["notes_ok"]["notes/7.md"] == 1 and int(i) >= 0


def test_batch_item_faults(sdk, emulator):
    emulator.configure(fault_errored=1.0)
    batch = sdk.messages.batches.create(requests=batch_requests(3))
    assert batch.request_counts.errored == 3
    for r in sdk.messages.batches.results(batch.id):
        assert r.result.type == "errored"
        assert r.result.error.error.type == "api_error"
    emulator.configure(fault_errored=0, fault_expired=1.0)
    batch = sdk.messages.batches.create(requests=batch_requests(3, "again", folder="other"))
    assert batch.request_counts.expired == 3
    assert {r.result.type for r in sdk.messages.batches.results(batch.id)} == {"expired"}
    stats = emulator.stats()
    assert stats["items_errored"] == 3 and stats["items_expired"] == 3


def test_first_attempt_faults_spare_the_retry_in_a_new_batch(sdk, emulator):
    emulator.configure(fault_errored=1.0)
    first = sdk.messages.batches.create(requests=batch_requests(2))
    retry = sdk.messages.batches.create(requests=batch_requests(2, "retry"))
    assert first.request_counts.errored == 2 and retry.request_counts.succeeded == 2
    assert emulator.stats()["notes"] == {"notes/0.md": 2, "notes/1.md": 2}


def test_invalid_params_in_a_batch_error_that_item_only(sdk):
    requests = batch_requests(2)
    del requests[1]["params"]["max_tokens"]
    batch = sdk.messages.batches.create(requests=requests)
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 1)
    errors = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert errors["item-1"].error.error.type == "invalid_request_error"
    assert "max_tokens" in errors["item-1"].error.error.message


@pytest.mark.parametrize(
    "requests, reason",
    [
        ([{"custom_id": "has space", "params": params()}], "custom_id"),
        ([{"custom_id": "x" * 65, "params": params()}], "custom_id"),
        ([{"custom_id": "same", "params": params()}] * 2, "Duplicate custom_id"),
        ([{"custom_id": "no-params"}], "params: Field required"),
        ([], "at least one request"),
    ],
)
def test_batch_validation(sdk, requests, reason):
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.batches.create(requests=requests)
    assert reason in info.value.api_message


def test_batch_of_more_than_100000_requests_is_refused(sdk, emulator, monkeypatch):
    tiny = {"custom_id": "r", "params": {}}
    with pytest.raises(ApiProblem, match="at most 100000") as info:
        emulator.create_batch({"requests": [tiny] * 100_001}, 1000)
    assert info.value.status == 400
    monkeypatch.setattr(emulator_module, "MAX_BATCH_REQUESTS", 3)  # the same check over HTTP
    with pytest.raises(anthropic.BadRequestError, match="at most 3"):
        sdk.messages.batches.create(requests=batch_requests(4))


def test_batch_over_the_byte_limit_is_413(sdk, emulator, monkeypatch):
    with pytest.raises(ApiProblem) as info:
        emulator.create_batch({"requests": []}, emulator_module.MAX_BATCH_BYTES + 1)
    assert info.value.status == 413
    monkeypatch.setattr(emulator_module, "MAX_BATCH_BYTES", 2000)
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk.messages.batches.create(requests=batch_requests(3))
    assert info.value.status_code == 413
    assert info.value.type == "request_too_large"


def test_cancel_moves_through_canceling_to_ended(sdk, emulator):
    emulator.configure(batch_seconds=3600, cancel_seconds=0)
    batch = sdk.messages.batches.create(requests=batch_requests(4))
    canceling = sdk.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = sdk.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.canceled == 4
    assert {r.result.type for r in sdk.messages.batches.results(batch.id)} == {"canceled"}
    assert sdk.messages.batches.cancel(batch.id).processing_status == "ended"  # idempotent
    assert emulator.stats()["batches_canceled"] == 1


def test_cancel_keeps_what_was_already_processed(sdk, emulator):
    emulator.configure(batch_seconds=3600, cancel_seconds=0)
    batch = sdk.messages.batches.create(requests=batch_requests(10))
    emulated = emulator.batches[batch.id]
    emulated.created -= 1800  # half of the processing time has passed
    emulated.ends -= 1800
    sdk.messages.batches.cancel(batch.id)
    counts = sdk.messages.batches.retrieve(batch.id).request_counts
    assert counts.succeeded == 5 and counts.canceled == 5


def test_list_paginates_newest_first(sdk):
    ids = [sdk.messages.batches.create(requests=batch_requests(1, f"b{i}")).id for i in range(5)]
    newest_first = list(reversed(ids))
    page = sdk.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more is True
    assert (page.first_id, page.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in sdk.messages.batches.list(limit=2)] == newest_first  # auto-paging
    after = sdk.messages.batches.list(limit=10, after_id=newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:] and after.has_more is False
    before = sdk.messages.batches.list(limit=1, before_id=newest_first[2])
    assert [b.id for b in before.data] == [newest_first[1]] and before.has_more is True
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.batches.list(limit=0)


def test_delete_an_ended_batch(sdk):
    batch = sdk.messages.batches.create(requests=batch_requests(1))
    assert sdk.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve(batch.id)


# --- The async SDK ---------------------------------------------------------------------------


def test_async_sdk_drives_every_endpoint(emulator):
    emulator.configure(fault_429=1.0)

    async def scenario():
        async with anthropic.AsyncAnthropic(base_url=emulator.url, api_key="k",
                                            max_retries=2) as client:
            messages = await asyncio.gather(
                *(client.messages.create(**params(f"async/{i}.md")) for i in range(3))
            )
            batch = await client.messages.batches.create(requests=batch_requests(3))
            got = await client.messages.batches.retrieve(batch.id)
            listed = [b.id async for b in client.messages.batches.list(limit=1)]
            results = [r async for r in await client.messages.batches.results(batch.id)]
            emulator.configure(batch_seconds=3600)
            other = await client.messages.batches.create(requests=batch_requests(1, "x"))
            canceled = await client.messages.batches.cancel(other.id)
            return messages, got, listed, results, canceled

    messages, got, listed, results, canceled = asyncio.run(scenario())
    assert all(m.content[0].type == "tool_use" for m in messages)
    assert got.processing_status == "ended"
    assert len(listed) == 1
    assert sorted(r.custom_id for r in results) == ["item-0", "item-1", "item-2"]
    assert canceled.processing_status == "canceling"
    assert emulator.stats()["status_429"] == 3  # one per note, each retried by the SDK


# --- Runtime control over HTTP, and the command ----------------------------------------------


def test_control_endpoints(emulator, sdk):
    sdk.messages.create(**params())
    status, stats = http(emulator, "GET", "/_emulator/stats")
    assert status == 200 and stats["messages"] == 1
    assert stats["notes"] == {"ai/Agent Frameworks.md": 1}
    status, config = http(emulator, "POST", "/_emulator/config", {"fault_529": 0.5, "rpm": 10})
    assert status == 200 and config["fault_529"] == 0.5 and emulator.config.rpm == 10
    status, body = http(emulator, "POST", "/_emulator/config", {"nonsense": 1})
    assert status == 400 and "unknown emulator setting" in body["error"]["message"]
    assert http(emulator, "POST", "/_emulator/reset", {})[0] == 200
    assert emulator.stats()["messages"] == 0


def test_start_stop_and_context_manager():
    with Emulator(port=0) as emu:
        with anthropic.Anthropic(base_url=emu.url, api_key="k", max_retries=0) as client:
            assert client.messages.create(**params()).type == "message"
    with pytest.raises(anthropic.APIConnectionError):
        anthropic.Anthropic(base_url=emu.url, api_key="k", max_retries=0).messages.create(**params())


def test_command_refuses_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match="cannot listen"):
            call_command("anthropic_emulator", "--port", str(port), stdout=StringIO())


def test_command_refuses_bad_shares():
    with pytest.raises(CommandError, match="fault-429"):
        call_command("anthropic_emulator", "--fault-429", "1.5", stdout=StringIO())


@pytest.mark.slow
def test_command_serves_over_http():
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "anthropic_emulator", "--port", "0", "--latency", "0",
         "--batch-seconds", "0", "--fault-529", "0.25", "--seed", "3"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, proc.stderr.read() if not line else line
        url = line.split("listening on ")[1].strip()
        with urllib.request.urlopen(url + "/_emulator/config", timeout=10) as response:
            config = json.loads(response.read())
        assert config["fault_529"] == 0.25 and config["seed"] == 3
        with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client:
            assert client.messages.batches.create(requests=batch_requests(1)).request_counts.succeeded == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_results_order_is_seeded(sdk, emulator):
    def order():
        batch = sdk.messages.batches.create(requests=batch_requests(20))
        return [r.custom_id for r in sdk.messages.batches.results(batch.id)]

    emulator.configure(seed=5)
    first = order()
    emulator.reset()
    assert order() == first
    emulator.reset()
    emulator.configure(seed=6)
    assert order() != first


def test_streaming_is_refused_in_the_api_shape(sdk):
    with pytest.raises(anthropic.BadRequestError, match="streaming is not supported"):
        sdk.post("/v1/messages", body={**params(), "stream": True}, cast_to=anthropic.types.Message)


def test_request_log_line_per_request(sdk, emulator):
    lines = []
    emulator.log = lines.append
    sdk.messages.create(**params())
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve("msgbatch_nope")
    assert lines[0].startswith("POST /v1/messages 200 ")
    assert lines[1].startswith("GET /v1/messages/batches/msgbatch_nope 404 ")


def test_input_token_limit_answers_429_with_token_headers(sdk, emulator):
    first = sdk.messages.with_raw_response.create(**params("a.md"))
    assert "anthropic-ratelimit-input-tokens-limit" not in first.headers  # off by default
    used = first.parse().usage
    emulator.reset()
    per_call = used.input_tokens + used.cache_creation_input_tokens
    emulator.configure(itpm=per_call + 10)
    raw = sdk.messages.with_raw_response.create(**params("a.md"))
    assert raw.headers["anthropic-ratelimit-input-tokens-limit"] == str(per_call + 10)
    assert int(raw.headers["anthropic-ratelimit-input-tokens-remaining"]) <= 10
    with pytest.raises(anthropic.RateLimitError, match="input tokens") as info:
        sdk.messages.create(**params("b.md"))
    assert info.value.response.headers["anthropic-ratelimit-input-tokens-remaining"] != ""
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert emulator.stats()["rate_limited"] == 1

"""What the emulator refuses like the real API (curation/emulator/refusals.py), through the real
SDK over HTTP: scripted faults on every endpoint, keys, models, parameters, limits, expiry."""

import time

import anthropic
import pytest

from tests.curation.emulator.test_emulator import MODEL, params

KEY = "sk-ant-test-emulator"


@pytest.fixture
def sdk(emulator):
    client = anthropic.Anthropic(base_url=emulator.url, api_key=KEY, max_retries=0)
    yield client
    client.close()


def ended_batch(sdk, n=2):
    batch = sdk.messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": params(path=f"notes/n{i}.md")} for i in range(n)
    ])
    return batch


# Each endpoint the engine uses, called the way the engine's client calls it.
CALLS = {
    "messages": lambda sdk, batch: sdk.messages.create(**params()),
    "batch_create": lambda sdk, batch: ended_batch(sdk),
    "batch_retrieve": lambda sdk, batch: sdk.messages.batches.retrieve(batch.id),
    "batch_list": lambda sdk, batch: list(sdk.messages.batches.list(limit=10)),
    "batch_results": lambda sdk, batch: list(sdk.messages.batches.results(batch.id)),
    "batch_cancel": lambda sdk, batch: sdk.messages.batches.cancel(batch.id),
}
ERRORS = {429: anthropic.RateLimitError, 529: anthropic.APIStatusError,
          500: anthropic.InternalServerError}


@pytest.mark.parametrize("endpoint", sorted(CALLS))
@pytest.mark.parametrize("status, retry_after", [(429, 1), (529, None), (500, 2)])
def test_scripted_fault_on_every_endpoint(sdk, emulator, endpoint, status, retry_after):
    batch = ended_batch(sdk)
    emulator.configure(script=[{"endpoint": endpoint, "status": status, "times": 1,
                                "retry_after": retry_after}])
    with pytest.raises(ERRORS[status]) as info:
        CALLS[endpoint](sdk, batch)
    exc = info.value
    assert exc.status_code == status
    assert exc.body["error"]["type"] == {429: "rate_limit_error", 529: "overloaded_error",
                                         500: "api_error"}[status]
    assert exc.request_id and exc.request_id.startswith("req_")
    assert exc.response.headers.get("retry-after") == (
        None if retry_after is None else str(retry_after))
    CALLS[endpoint](sdk, batch)  # `times: 1`: the next call is served
    assert emulator.stats()["scripted"] == {endpoint: 1}


@pytest.mark.parametrize("endpoint", sorted(CALLS))
def test_dropped_connection_on_every_endpoint(sdk, emulator, endpoint):
    batch = ended_batch(sdk)
    emulator.configure(script=[{"endpoint": endpoint, "status": "drop"}])
    with pytest.raises(anthropic.APIConnectionError):
        CALLS[endpoint](sdk, batch)
    CALLS[endpoint](sdk, batch)


def test_a_held_request_is_a_timeout_for_the_sdk(emulator):
    emulator.configure(script=[{"endpoint": "batch_retrieve", "status": 500, "delay": 1.0}])
    with anthropic.Anthropic(base_url=emulator.url, api_key=KEY, max_retries=0,
                             timeout=0.3) as sdk:
        batch = ended_batch(sdk)
        with pytest.raises(anthropic.APITimeoutError):
            sdk.messages.batches.retrieve(batch.id)


def test_the_sdk_waits_out_a_scripted_retry_after(emulator):
    emulator.configure(script=[{"endpoint": "batch_retrieve", "status": 429, "times": 1,
                                "retry_after": 1}])
    with anthropic.Anthropic(base_url=emulator.url, api_key=KEY, max_retries=1) as sdk:
        batch = ended_batch(sdk)
        started = time.monotonic()
        sdk.messages.batches.retrieve(batch.id)
        assert time.monotonic() - started >= 0.9


def test_a_configured_key_refuses_any_other_key(emulator):
    emulator.configure(api_key=KEY)
    with anthropic.Anthropic(base_url=emulator.url, api_key="sk-ant-revoked-1234",
                             max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as info:
            wrong.messages.batches.create(requests=[{"custom_id": "a", "params": params()}])
    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"
    assert "sk-ant-revoked" not in str(info.value.body)
    with anthropic.Anthropic(base_url=emulator.url, api_key=KEY, max_retries=0) as right:
        right.messages.create(**params())


def test_permission_denied_is_403(sdk, emulator):
    emulator.configure(permission_denied=True)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        sdk.messages.batches.list()
    assert info.value.body["error"]["type"] == "permission_error"


def test_unknown_model_is_404_not_found(sdk, emulator):
    with pytest.raises(anthropic.NotFoundError) as info:
        sdk.messages.create(**params(model="claude-nonexistent-9"))
    assert info.value.body["error"] == {"type": "not_found_error",
                                        "message": "model: claude-nonexistent-9"}
    emulator.configure(models="*")
    sdk.messages.create(**params(model="claude-nonexistent-9"))


def test_unknown_model_in_a_batch_errors_each_request(sdk, emulator):
    batch = sdk.messages.batches.create(requests=[
        {"custom_id": "a", "params": params(model="claude-nonexistent-9")},
        {"custom_id": "b", "params": params(model=MODEL)},
    ])
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert results["a"].type == "errored"
    assert results["a"].error.error.type == "not_found_error"
    assert results["a"].error.error.message == "model: claude-nonexistent-9"
    assert results["b"].type == "succeeded"


def test_unknown_top_level_parameter_is_400(sdk, emulator):
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(**params(), extra_body={"cache_prompt": True})
    assert info.value.body["error"]["message"] == "cache_prompt: Extra inputs are not permitted"
    emulator.configure(strict_params=False)
    sdk.messages.create(**params(), extra_body={"cache_prompt": True})


def test_batch_creates_have_a_limit_of_their_own(sdk, emulator):
    emulator.configure(batch_create_rpm=1, rate_window=60)
    ended_batch(sdk)
    with pytest.raises(anthropic.RateLimitError) as info:
        ended_batch(sdk)
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    sdk.messages.create(**params())  # messages are not counted against it
    sdk.messages.batches.list()


def test_a_batch_not_done_in_time_expires(sdk, emulator):
    emulator.configure(batch_seconds=30, expire_seconds=0.3)
    batch = ended_batch(sdk, n=3)
    assert batch.processing_status == "in_progress"
    assert (batch.expires_at - batch.created_at).total_seconds() == pytest.approx(0.3, abs=0.01)
    time.sleep(0.4)
    batch = sdk.messages.batches.retrieve(batch.id)
    assert batch.processing_status == "ended"
    assert batch.request_counts.expired == 3
    assert {r.result.type for r in sdk.messages.batches.results(batch.id)} == {"expired"}


def test_results_are_gone_after_the_retention_period(sdk, emulator):
    emulator.configure(retention_seconds=0.3)
    batch = ended_batch(sdk)
    assert len(list(sdk.messages.batches.results(batch.id))) == 2
    assert batch.archived_at is None
    time.sleep(0.4)
    assert sdk.messages.batches.retrieve(batch.id).archived_at is not None
    with pytest.raises(anthropic.NotFoundError):
        list(sdk.messages.batches.results(batch.id))


def test_output_token_limit_and_its_headers(sdk, emulator):
    emulator.configure(otpm=10, rate_window=60)
    first = sdk.messages.with_raw_response.create(**params())
    assert first.headers["anthropic-ratelimit-output-tokens-limit"] == "10"
    assert first.headers["anthropic-ratelimit-output-tokens-remaining"] == "0"
    assert first.headers["anthropic-ratelimit-output-tokens-reset"].endswith("Z")
    with pytest.raises(anthropic.RateLimitError) as info:
        sdk.messages.create(**params(path="notes/other.md"))
    headers = info.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["anthropic-ratelimit-output-tokens-remaining"] == "0"


def test_refusals_are_switched_over_the_control_api(emulator):
    import json
    import urllib.request

    body = json.dumps({"api_key": KEY, "script": [{"endpoint": "*", "status": 529}]}).encode()
    request = urllib.request.Request(emulator.url + "/_emulator/config", data=body,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        config = json.loads(response.read())
    assert config["api_key"] == KEY and config["script"][0]["status"] == 529
    with anthropic.Anthropic(base_url=emulator.url, api_key=KEY, max_retries=0) as sdk:
        with pytest.raises(anthropic.APIStatusError) as info:
            sdk.messages.batches.list()
        assert info.value.status_code == 529


def test_the_command_switches_refusals_by_flag():
    import json
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "anthropic_emulator", "--port", "0", "--api-key", KEY,
         "--models", "claude-haiku-4-5", "--lenient-params", "--batch-create-rpm", "5",
         "--otpm", "900", "--expire-seconds", "60", "--retention-seconds", "120",
         "--permission-denied"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, proc.stderr.read() if not line else line
        url = line.split("listening on ")[1].strip()
        with urllib.request.urlopen(url + "/_emulator/config", timeout=10) as response:
            config = json.loads(response.read())
        assert (config["api_key"], config["models"], config["strict_params"]) == (
            KEY, "claude-haiku-4-5", False)
        assert (config["batch_create_rpm"], config["otpm"], config["expire_seconds"],
                config["retention_seconds"], config["permission_denied"]) == (5, 900, 60, 120, True)
        with anthropic.Anthropic(base_url=url, api_key="sk-other", max_retries=0) as client:
            with pytest.raises(anthropic.AuthenticationError):
                client.messages.batches.list()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

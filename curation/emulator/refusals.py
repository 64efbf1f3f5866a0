"""What the real API refuses, and when: keys, models, parameters, limits, scripted endpoint faults.

Each rule is off or lenient by default where the old emulator was lenient, and switched by an
EmulatorConfig field (so by `emu.configure(...)` or `POST /_emulator/config`):

    api_key="sk-..."           any other key: 401 authentication_error
    permission_denied=True     every API call: 403 permission_error
    models="a,b" | "*"         unknown model: 404 not_found_error "model: X" ("": KNOWN_MODELS)
    strict_params=True         unknown top-level Messages parameter: 400 invalid_request_error
    batch_create_rpm=N         batch creates per rate_window, apart from `rpm`: 429 + retry-after
    otpm=N                     output tokens per rate_window: 429 + anthropic-ratelimit-output-tokens-*
    expire_seconds=S           a batch still in progress S after creation ends; unprocessed: expired
    retention_seconds=S        S after creation a batch's results are gone: archived_at, 404
    script=[{...}, ...]        scripted faults per endpoint (see FaultScript)

Facts, as checked (2026-12-04):
- Error types and statuses (400 invalid_request_error, 401 authentication_error, 403
  permission_error, 404 not_found_error, 429 rate_limit_error, 500 api_error, 529
  overloaded_error), the error body `{"type": "error", "error": {...}, "request_id": ...}` and
  the `request-id` header: https://docs.claude.com/en/api/errors
- Unknown model: 404 `{"type": "not_found_error", "message": "model: sonnet4"}`, as reported in
  https://github.com/anthropics/claude-code/issues/5349
- Unknown top-level parameter: 400 invalid_request_error "context_management: Extra inputs are
  not permitted", as reported in https://github.com/anthropics/claude-code/issues/14135
- Rate-limit headers `retry-after` and `anthropic-ratelimit-{requests,tokens,input-tokens,
  output-tokens}-{limit,remaining,reset}` (reset in RFC 3339): https://docs.claude.com/en/api/rate-limits
- The SDK honours `retry-after-ms`, then `retry-after` (seconds or a date), and retries 408,
  409, 429 and >= 500 unless `x-should-retry` says otherwise: anthropics/anthropic-sdk-python
  src/anthropic/_base_client.py (_parse_retry_after_header, _should_retry); an error's
  `request_id` is read from the `request-id` header: src/anthropic/_exceptions.py.
- Batches: the Batches API has its own rate limits (HTTP requests to its endpoints, and requests
  waiting in the processing queue); a batch not ended within 24 hours expires, its unprocessed
  requests ending `expired`; results can be downloaded for 29 days after creation; batches are
  scoped to a workspace (every key of the workspace sees them); each request's params are
  validated asynchronously and reported as that request's `errored` result:
  https://platform.claude.com/docs/en/build-with-claude/batch-processing
- `archived_at`: "the time at which the Message Batch was archived and its results became
  unavailable"; `expires_at`: 24 hours after creation:
  https://platform.claude.com/docs/en/api/messages/batches/retrieve
- The SDK's `batches.results()` first retrieves the batch, then GETs its `results_url`:
  src/anthropic/resources/messages/batches.py (results).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from curation.emulator.protocol import ApiProblem, rfc3339

# The Messages API's top-level parameters (src/anthropic/types/message_create_params.py of the
# SDK, 2.17), plus older ones the API still documents or accepted (temperature, top_k, top_p,
# mcp_servers, context_management, output_format).
KNOWN_PARAMS = frozenset("""
    model messages max_tokens system tools tool_choice metadata stop_sequences stream thinking
    service_tier container output_config inference_geo cache_control diagnostics speed
    user_profile_id workspace_id temperature top_k top_p mcp_servers context_management
    output_format
""".split())

# Model names the emulator knows (src/anthropic/types/model.py of the SDK, 2.17, plus the
# 4.x and 3.x names still listed on https://docs.claude.com/en/docs/about-claude/models).
KNOWN_MODELS = frozenset("""
    claude-fable-5-2 claude-mythos-5-2 claude-fable-5-1 claude-mythos-5-1 claude-fable-5
    claude-mythos-5 claude-mythos-preview
    claude-opus-5-5 claude-sonnet-5-5 claude-haiku-5-5 claude-opus-5 claude-sonnet-5
    claude-opus-4-8 claude-opus-4-7 claude-opus-4-6 claude-sonnet-4-6
    claude-opus-4-5 claude-opus-4-5-20251101 claude-haiku-4-5 claude-haiku-4-5-20251001
    claude-sonnet-4-5 claude-sonnet-4-5-20250929 claude-opus-4-1 claude-opus-4-1-20250805
    claude-opus-4-0 claude-opus-4-20250514 claude-sonnet-4-0 claude-sonnet-4-20250514
    claude-3-7-sonnet-latest claude-3-7-sonnet-20250219 claude-3-5-haiku-latest
    claude-3-5-haiku-20241022 claude-3-haiku-20240307
""".split())

# The endpoints a scripted fault can name (and "*": any of them).
ENDPOINTS = ("messages", "batch_create", "batch_retrieve", "batch_list", "batch_results",
             "batch_cancel", "batch_delete")


def endpoint_of(method: str, path: str) -> str:
    """The endpoint name of an API request (see ENDPOINTS); "" for an unknown one."""
    if path == "/v1/messages":
        return "messages" if method == "POST" else ""
    if path == "/v1/messages/batches":
        return {"POST": "batch_create", "GET": "batch_list"}.get(method, "")
    if path.startswith("/v1/messages/batches/"):
        if path.endswith("/results"):
            return "batch_results"
        if path.endswith("/cancel"):
            return "batch_cancel"
        return {"GET": "batch_retrieve", "DELETE": "batch_delete"}.get(method, "")
    return ""


def request_key(headers) -> str:
    key = headers.get("x-api-key") or ""
    auth = headers.get("authorization") or ""
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key


def check_key(config, headers) -> None:
    """401 without a key, or with another key than the configured one; 403 when denied."""
    key = request_key(headers)
    if not key:
        raise ApiProblem(401, "authentication_error", "x-api-key header is required.")
    if config.api_key and key != config.api_key:
        # Like the real API, the message names the problem, never the key sent.
        raise ApiProblem(401, "authentication_error", "invalid x-api-key")
    if config.permission_denied:
        raise ApiProblem(403, "permission_error",
                         "Your API key does not have permission to use the specified resource.")


def model_problem(config, params) -> ApiProblem | None:
    """404 not_found_error for a model the emulator does not know (None: known)."""
    model = params.get("model") if isinstance(params, dict) else None
    if not isinstance(model, str) or config.models.strip() == "*":
        return None
    known = ({m.strip() for m in config.models.split(",") if m.strip()}
             if config.models.strip() else KNOWN_MODELS)
    if model in known:
        return None
    return ApiProblem(404, "not_found_error", f"model: {model}")


def params_problem(config, params) -> ApiProblem | None:
    """400 invalid_request_error for an unknown top-level parameter (None: all known)."""
    if not config.strict_params or not isinstance(params, dict):
        return None
    for key in params:
        if key not in KNOWN_PARAMS:
            return ApiProblem(400, "invalid_request_error", f"{key}: Extra inputs are not permitted")
    return None


def wait_headers(wait: float) -> dict:
    return {"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(int(wait * 1000) + 1)}


class Window:
    """A sliding window of (time, amount) for one limit (requests or tokens per rate_window)."""

    def __init__(self):
        self.events: deque = deque()
        self.lock = threading.Lock()

    def used(self, now: float, span: float) -> float:
        while self.events and self.events[0][0] <= now - span:
            self.events.popleft()
        return sum(n for _, n in self.events)

    def admit(self, *, now: float, span: float, limit: float, need: float = 1) -> float | None:
        """Record `need` and return None when within `limit`; else seconds until room."""
        with self.lock:
            used = self.used(now, span)
            if self.events and used + need > limit:
                return max(0.001, self.events[0][0] + span - now)
            self.events.append((now, need))
            return None

    def add(self, *, now: float, amount: float) -> None:
        with self.lock:
            self.events.append((now, amount))

    def state(self, *, now: float, span: float, limit: float) -> tuple[float, float]:
        """(remaining, reset time) of the limit now."""
        with self.lock:
            used = self.used(now, span)
            reset = (self.events[0][0] + span) if self.events else now
        return max(0.0, limit - used), reset


class Limits:
    """The limits kept apart from `rpm`/`itpm`: batch creates, and output tokens."""

    def __init__(self):
        self.batch_creates = Window()
        self.output_tokens = Window()

    def admit_batch_create(self, config) -> None:
        if config.batch_create_rpm <= 0:
            return
        wait = self.batch_creates.admit(now=time.time(), span=config.rate_window,
                                        limit=config.batch_create_rpm)
        if wait is not None:
            raise ApiProblem(
                429, "rate_limit_error",
                f"Number of batch creates has exceeded your rate limit of "
                f"{config.batch_create_rpm} per {config.rate_window:g} s.", wait_headers(wait))

    def output_headers(self, config) -> dict:
        if config.otpm <= 0:
            return {}
        remaining, reset = self.output_tokens.state(now=time.time(), span=config.rate_window,
                                                    limit=config.otpm)
        return {
            "anthropic-ratelimit-output-tokens-limit": str(config.otpm),
            "anthropic-ratelimit-output-tokens-remaining": str(int(remaining)),
            "anthropic-ratelimit-output-tokens-reset": rfc3339(reset),
        }

    def admit_output(self, config) -> None:
        """Refuse a Messages call while the output tokens of the window are used up."""
        if config.otpm <= 0:
            return
        now = time.time()
        remaining, reset = self.output_tokens.state(now=now, span=config.rate_window,
                                                    limit=config.otpm)
        if remaining <= 0:
            wait = max(0.001, reset - now)
            raise ApiProblem(
                429, "rate_limit_error",
                f"This request would exceed the rate limit of {config.otpm} output tokens per "
                f"{config.rate_window:g} s.", {**wait_headers(wait), **self.output_headers(config)})

    def count_output(self, config, tokens: int) -> None:
        if config.otpm > 0:
            self.output_tokens.add(now=time.time(), amount=tokens)


DROP = "drop"


class FaultScript:
    """Scripted faults: each rule answers the next `times` requests to its endpoint.

    A rule: {"endpoint": "batch_create" (see ENDPOINTS, or "*"), "status": 429 | 529 | 500 |
    401 | 403 | 404 | "drop" | "ok", "times": 1, "retry_after": seconds or null, "delay":
    seconds}. "ok" serves the request after its delay (the work is done, the answer late).
    Rules are used in order: a request takes the first rule for its endpoint with times left.
    "drop" closes the connection without an answer (the SDK sees a connection error); `delay`
    holds the request that long first (past the client's timeout: a timeout).
    """

    KINDS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 409: "conflict_error", 413: "request_too_large",
             429: "rate_limit_error", 500: "api_error", 503: "api_error",
             529: "overloaded_error"}
    MESSAGES = {429: "Number of requests has exceeded your rate limit (scripted fault).",
                529: "Overloaded", 500: "Internal server error (scripted fault).",
                401: "invalid x-api-key",
                403: "Your API key does not have permission to use the specified resource."}

    def __init__(self):
        self.lock = threading.Lock()
        self.used: dict[int, int] = {}  # rule index -> times used (reset with the script)
        self.rules: list = []

    def take(self, rules: list, endpoint: str) -> dict | None:
        with self.lock:
            if rules is not self.rules:  # a new script was configured: start counting afresh
                self.rules, self.used = rules, {}
            for i, rule in enumerate(rules):
                if rule.get("endpoint", "*") not in ("*", endpoint):
                    continue
                if self.used.get(i, 0) < int(rule.get("times", 1)):
                    self.used[i] = self.used.get(i, 0) + 1
                    return rule
        return None

    def fault(self, rules: list, endpoint: str) -> ApiProblem | str | None:
        """The fault for this request: an ApiProblem, DROP, or None (serve it)."""
        if not rules or not endpoint:
            return None
        rule = self.take(rules, endpoint)
        if rule is None:
            return None
        if rule.get("delay"):
            time.sleep(float(rule["delay"]))
        status = rule.get("status", 529)
        if status == DROP:
            return DROP
        if status == "ok":  # only held (with `delay`), then served: a late answer
            return None
        status = int(status)
        headers = {}
        if rule.get("retry_after") is not None:
            headers = wait_headers(float(rule["retry_after"]))
            headers["retry-after"] = f"{float(rule['retry_after']):g}"
        return ApiProblem(status, self.KINDS.get(status, "api_error"),
                          rule.get("message") or self.MESSAGES.get(status, f"HTTP {status}"),
                          headers)

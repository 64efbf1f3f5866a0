"""A built-in emulator of the Anthropic Messages and Message Batches APIs, speaking real HTTP.

Used by `manage.py anthropic_emulator`, by `make demo` when no API key is set, by the tests
(the `emulator` fixture) and by the benches. It imports nothing from Django or the SDK.

    emu = Emulator(latency=0, batch_seconds=0).start()   # 127.0.0.1, free port
    emu.url                     # -> "http://127.0.0.1:PORT" (use as ANTHROPIC_BASE_URL)
    emu.configure(fault_429=0.2, rpm=60)                  # change at runtime
    emu.stats()                 # -> dict, see Emulator.stats
    emu.reset()                 # forget stats, batches, attempts and the prompt cache
    emu.stop()

Over HTTP: `GET /_emulator/stats`, `GET|POST /_emulator/config` (JSON of config fields),
`POST /_emulator/reset`.

Faults are deterministic: whether a note's request fails is a hash of (seed, kind, note key),
compared with the configured share, so the same notes fail in every run. By default a fault
hits only a note's first attempt (`fault_attempts=1`), so a retry succeeds; `fault_attempts=0`
makes the faulty notes fail on every attempt. A note is identified by the `Note path: ...`
line the client puts in every request (else by a hash of the messages).
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from curation.api.pricing import cache_minimum
from curation.emulator import protocol, refusals
from curation.emulator.answers import Prompt, answer_description, answer_for, read_prompt
from curation.emulator.caching import FIVE_MINUTES, ONE_HOUR_FACTOR, PromptCache, split
from curation.emulator.protocol import ApiProblem, count_tokens, rfc3339, unit, validate_params


@dataclass
class EmulatorConfig:
    """What the emulator does; every field can be changed at runtime."""

    latency: float = 0.0  # seconds added to each API request
    batch_seconds: float = 0.0  # how long a batch stays in_progress (0: ends at once)
    cancel_seconds: float = 0.2  # how long a canceled batch stays `canceling`
    fault_429: float = 0.0  # share of messages calls answered 429 rate_limit_error
    fault_529: float = 0.0  # share answered 529 overloaded_error
    fault_500: float = 0.0  # share answered 500 api_error
    fault_errored: float = 0.0  # share of batch items that end `errored`
    fault_expired: float = 0.0  # share of batch items that end `expired`
    fault_malformed: float = 0.0  # share of answers without a usable tool block
    fault_attempts: int = 1  # faults hit a note's first N attempts; 0: every attempt
    retry_after: float = 1.0  # seconds sent in retry-after with injected 429/529/500
    rpm: int = 0  # requests per window allowed (0: no limit)
    itpm: int = 0  # input tokens per window (uncached input + cache writes; 0: no limit)
    rate_window: float = 60.0  # the rpm window in seconds (tests shorten it)
    cache_seconds: float = FIVE_MINUTES  # a prompt-cache entry's life (a "1h" mark: 12 times it)
    cache_min_tokens: int = 0  # smallest cached prefix; 0: the model's documented minimum
    batch_cache_hits: float = 0.3  # share of batch requests that may hit a live cache entry
    seed: int = 0
    # What the real API refuses (curation/emulator/refusals.py has the rules and their sources).
    api_key: str = ""  # when set, any other key is answered 401 authentication_error
    permission_denied: bool = False  # every API call answered 403 permission_error
    models: str = ""  # known models, comma-separated ("": refusals.KNOWN_MODELS, "*": any)
    strict_params: bool = True  # unknown top-level Messages parameters: 400
    batch_create_rpm: int = 0  # batch creates per rate_window (0: no limit of their own)
    otpm: int = 0  # output tokens per rate_window (0: no limit)
    expire_seconds: float = 24 * 3600.0  # a batch not ended by then expires (the API's 24 h)
    retention_seconds: float = 29 * 24 * 3600.0  # results downloadable this long (29 days)
    script: list = field(default_factory=list)  # scripted endpoint faults (refusals.FaultScript)

    def update(self, changes: dict) -> None:
        known = {f.name: f.type for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown emulator setting: {key}")
            current = getattr(self, key)
            setattr(self, key, type(current)(value))


# --- The emulator ----------------------------------------------------------------------------


@dataclass
class BatchItem:
    custom_id: str
    params: dict
    note_key: str
    attempt: int
    outcome: str  # succeeded | errored | expired | invalid
    problem: str = ""
    message: dict | None = None  # its answer, made once: results read twice are the same
    problem_kind: str = "invalid_request_error"  # the error type of an `invalid` request


@dataclass
class EmulatedBatch:
    id: str
    created: float
    ends: float
    items: list[BatchItem]
    order: list[int]  # processing order (also the results order)
    status: str = "in_progress"
    cancel_at: float | None = None
    ended_at: float | None = None
    canceled_from: int | None = None  # items at order[k >= canceled_from] were canceled
    expired_from: int | None = None  # items at order[k >= expired_from] expired unprocessed
    counts: dict | None = None

    def processed_by(self, ts: float) -> int:
        n = len(self.items)
        span = self.ends - self.created
        if span <= 0 or ts >= self.ends:
            return n
        return min(n, int(n * (ts - self.created) / span))


class Emulator:
    """The server: start()/stop() in-process, or serve_forever() from the command."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **config):
        self.config = EmulatorConfig()
        self.config.update(config)
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self.log = None  # a callable taking one line per request (the command's --verbosity 2)
        self.clock = time.time  # the prompt cache's clock (a test may replace it)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle

    def bind(self) -> ThreadingHTTPServer:
        emulator = self

        class Handler(EmulatorHandler):
            pass

        Handler.emulator = emulator
        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        return server

    def start(self) -> Emulator:
        server = self.bind()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True,
            name="anthropic-emulator",
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        server = self._server or self.bind()
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- runtime control

    def configure(self, **changes) -> dict:
        with self._lock:
            self.config.update(changes)
            return asdict(self.config)

    def reset(self) -> None:
        with self._lock:
            self.batches: dict[str, EmulatedBatch] = {}
            self._batch_order: list[str] = []
            self.attempts: Counter = Counter()
            self.notes_ok: Counter = Counter()
            self.statuses: Counter = Counter()
            self._cache = PromptCache(clock=lambda: self.clock())
            self._window: deque = deque()
            self._token_window: deque = deque()
            self._seq = 0
            self._batch_seq = 0
            self.counters: Counter = Counter()
            self.in_flight = 0
            self.max_in_flight = 0
            self.limits = refusals.Limits()
            self.faults = refusals.FaultScript()

    def stats(self) -> dict:
        """Counters for tests and benches.

        requests: API requests received (/v1/...); messages: POST /v1/messages received;
        messages_ok: of those answered 200; in_flight / max_in_flight: messages calls being
        served now / at most at once; status_429, status_529, status_500: answers with that
        status (429 includes rpm limiting); rate_limited: 429s from the rpm limit;
        statuses: {status code: count} over all API answers; batches: batches created;
        batch_requests: requests in them; batches_canceled; items_succeeded/errored/
        expired/canceled: batch items as they ended; cache_writes / cache_reads: requests
        that wrote / read the prompt cache; count_tokens: count_tokens requests (no note's
        attempt); notes: {note path: messages sent for it (sync calls and batch requests,
        faulted ones included)}; notes_ok: {note path: answers}.
        """
        with self._lock:
            c = self.counters
            return {
                "requests": c["requests"],
                "messages": c["messages"],
                "messages_ok": c["messages_ok"],
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "status_429": self.statuses[429],
                "status_529": self.statuses[529],
                "status_500": self.statuses[500],
                "rate_limited": c["rate_limited"],
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "batches": c["batches"],
                "batch_requests": c["batch_requests"],
                "batches_canceled": c["batches_canceled"],
                "items_succeeded": c["items_succeeded"],
                "items_errored": c["items_errored"],
                "items_expired": c["items_expired"],
                "items_canceled": c["items_canceled"],
                "cache_writes": c["cache_writes"],
                "cache_reads": c["cache_reads"],
                "count_tokens": c["count_tokens"],
                # Scripted faults answered, per endpoint (refusals.FaultScript).
                "scripted": {k[len("scripted_"):]: v for k, v in c.items()
                             if k.startswith("scripted_")},
                "notes": dict(self.attempts),
                "notes_ok": dict(self.notes_ok),
            }

    # -- decisions

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._seq += 1
            seq = self._seq
        return f"{prefix}{seq:08d}{random.getrandbits(64):016x}"

    def _attempt(self, note_key: str) -> int:
        with self._lock:
            self.attempts[note_key] += 1
            return self.attempts[note_key]

    def _faulty(self, kind: str, note_key: str, attempt: int) -> bool:
        cfg = self.config
        share = getattr(cfg, f"fault_{kind}")
        if share <= 0:
            return False
        if cfg.fault_attempts and attempt > cfg.fault_attempts:
            return False
        return unit(cfg.seed, kind, note_key) < share

    def _http_fault(self, note_key: str, attempt: int) -> ApiProblem | None:
        wait = self.config.retry_after
        headers = {"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(int(wait * 1000))}
        # One draw decides among the three, so shares add up instead of shadowing each other.
        cfg = self.config
        if cfg.fault_attempts and attempt > cfg.fault_attempts:
            return None
        u = unit(cfg.seed, "http", note_key)
        if u < cfg.fault_429:
            return ApiProblem(429, "rate_limit_error", "Number of requests has exceeded your rate "
                              "limit (emulated fault).", {**headers, "x-should-retry": "true"})
        u -= cfg.fault_429
        if u < cfg.fault_529:
            return ApiProblem(529, "overloaded_error", "Overloaded (emulated fault).",
                              {**headers, "x-should-retry": "true"})
        u -= cfg.fault_529
        if u < cfg.fault_500:
            return ApiProblem(500, "api_error", "Internal server error (emulated fault).", headers)
        return None

    def rate_headers(self, now: float) -> tuple[dict, float | None]:
        """Rate-limit headers, and how long to wait when over the limit (None: allowed)."""
        cfg = self.config
        with self._lock:
            limit = cfg.rpm
            window = self._window
            while window and window[0] <= now - cfg.rate_window:
                window.popleft()
            if limit <= 0:
                reset = now
                remaining = 1_000_000
                wait = None
                limit = 1_000_000
            elif len(window) >= limit:
                wait = window[0] + cfg.rate_window - now
                reset = now + wait
                remaining = 0
            else:
                window.append(now)
                wait = None
                remaining = limit - len(window)
                reset = (window[0] if window else now) + cfg.rate_window
        headers = {
            "anthropic-ratelimit-requests-limit": str(limit),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": rfc3339(reset),
        }
        return headers, wait

    def _usage(self, params: dict, output: str, *, batch: bool, note_key: str) -> dict:
        """Tokens as billed; a marked prefix from the model's minimum is cached (see caching)."""
        parts = split(params)
        usage = {"input_tokens": parts.total, "output_tokens": count_tokens(output) + 8,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        cfg = self.config
        minimum = cfg.cache_min_tokens or cache_minimum(str(params.get("model") or ""))
        if not parts.marked or parts.prefix < minimum:
            return usage  # below the minimum the mark is ignored: all plain input
        seconds = cfg.cache_seconds * (ONE_HOUR_FACTOR if parts.ttl == "1h" else 1)
        may_hit = not batch or unit(cfg.seed, "batch-cache", parts.key, note_key) < cfg.batch_cache_hits
        hit = self._cache.use(parts.key, seconds=seconds, may_hit=may_hit)
        with self._lock:
            self.counters["cache_reads" if hit else "cache_writes"] += 1
        usage["input_tokens"] = parts.rest
        if hit:
            usage["cache_read_input_tokens"] = parts.prefix
        else:
            usage["cache_creation_input_tokens"] = parts.prefix
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": parts.prefix if parts.ttl == "5m" else 0,
                "ephemeral_1h_input_tokens": parts.prefix if parts.ttl == "1h" else 0,
            }
        return usage

    def message_for(self, params: dict, prompt: Prompt, *, malformed: bool, batch: bool) -> dict:
        tools = params.get("tools") or []
        choice = params.get("tool_choice") or {}
        tool = None
        if tools and choice.get("type") != "none":
            if choice.get("type") == "tool":
                tool = next(t for t in tools if t.get("name") == choice.get("name"))
            else:
                tool = tools[0]
        fmt = (params.get("output_config") or {}).get("format") or params.get("output_format")
        content: list[dict]
        if malformed:
            content = [{"type": "text", "text": "I could not decide on tags for this note."}]
            stop = "end_turn"
        elif tool is not None and isinstance(tool.get("input_schema"), dict):
            data = answer_for(prompt, tool["input_schema"])
            content = [{"type": "tool_use", "id": self._next_id("toolu_"),
                        "name": tool["name"], "input": data}]
            stop = "tool_use"
        elif isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
            data = answer_for(prompt, fmt["schema"])
            content = [{"type": "text", "text": json.dumps(data, ensure_ascii=False)}]
            stop = "end_turn"
        else:
            content = [{"type": "text", "text": answer_description(prompt)}]
            stop = "end_turn"
        usage = self._usage(params, json.dumps(content, ensure_ascii=False), batch=batch,
                            note_key=prompt.note_key)
        usage["service_tier"] = "batch" if batch else "standard"
        return {
            "id": self._next_id("msg_emu_"),
            "type": "message",
            "role": "assistant",
            "model": params.get("model"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    # -- endpoints (called by the handler; raise ApiProblem for errors)

    def token_budget(self, need: int, now: float) -> tuple[dict, float | None]:
        """Input-token headers, and how long to wait when `need` would pass the itpm limit."""
        cfg = self.config
        if cfg.itpm <= 0:
            return {}, None
        with self._lock:
            window = self._token_window
            while window and window[0][0] <= now - cfg.rate_window:
                window.popleft()
            used = sum(n for _, n in window)
            if window and used + need > cfg.itpm:
                wait = window[0][0] + cfg.rate_window - now
                reset = now + wait
            else:  # a lone request bigger than the limit still passes, as a fresh bucket would
                window.append((now, need))
                used += need
                wait = None
                reset = window[0][0] + cfg.rate_window
        return {
            "anthropic-ratelimit-input-tokens-limit": str(cfg.itpm),
            "anthropic-ratelimit-input-tokens-remaining": str(max(0, cfg.itpm - used)),
            "anthropic-ratelimit-input-tokens-reset": rfc3339(reset),
        }, wait

    def create_message(self, params, headers: dict | None = None) -> dict:
        """Answer one Messages call; `headers` receives the input-token limit headers, if any."""
        validate_params(params)
        for problem in (refusals.params_problem(self.config, params),
                        refusals.model_problem(self.config, params)):
            if problem is not None:
                raise problem
        self.limits.admit_output(self.config)
        prompt = read_prompt(params)
        attempt = self._attempt(prompt.note_key)
        fault = self._http_fault(prompt.note_key, attempt)
        if fault is not None:
            raise fault
        malformed = self._faulty("malformed", prompt.note_key, attempt)
        message = self.message_for(params, prompt, malformed=malformed, batch=False)
        usage = message["usage"]
        need = usage["input_tokens"] + usage["cache_creation_input_tokens"]
        limit_headers, wait = self.token_budget(need, time.time())
        if headers is not None:
            headers.update(limit_headers)
        if wait is not None:  # (its prompt-cache write above stays: harmless here)
            with self._lock:
                self.counters["rate_limited"] += 1
            raise ApiProblem(429, "rate_limit_error",
                             f"This request would exceed the rate limit of {self.config.itpm} "
                             f"input tokens per {self.config.rate_window:g} s.",
                             {"retry-after": str(max(1, math.ceil(wait))),
                              "retry-after-ms": str(int(wait * 1000) + 1)})
        self.limits.count_output(self.config, usage["output_tokens"])
        if headers is not None:
            headers.update(self.limits.output_headers(self.config))
        with self._lock:
            self.counters["messages_ok"] += 1
            self.notes_ok[prompt.note_key] += 1
        return message

    def count_message_tokens(self, params) -> dict:
        """POST /v1/messages/count_tokens: the input a message with these params is billed for.

        Same body as a message without `max_tokens` (the SDK's `messages.count_tokens`);
        answers `{"input_tokens": N}`. Free and never a message: no note attempt is counted.
        """
        if isinstance(params, dict) and "max_tokens" in params:
            raise ApiProblem(400, "invalid_request_error",
                             "max_tokens: Extra inputs are not permitted")
        validate_params({**params, "max_tokens": 1} if isinstance(params, dict) else params)
        with self._lock:
            self.counters["count_tokens"] += 1
        return {"input_tokens": split(params).total}

    def create_batch(self, body, size: int) -> dict:
        if size > protocol.MAX_BATCH_BYTES:
            raise ApiProblem(413, "request_too_large", "Request exceeds the maximum allowed "
                             f"number of bytes ({protocol.MAX_BATCH_BYTES}).")
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            raise ApiProblem(400, "invalid_request_error", "requests: Field required")
        requests = body["requests"]
        if not requests:
            raise ApiProblem(400, "invalid_request_error", "requests: at least one request is required")
        self.limits.admit_batch_create(self.config)
        if len(requests) > protocol.MAX_BATCH_REQUESTS:
            raise ApiProblem(400, "invalid_request_error",
                             f"requests: a batch holds at most {protocol.MAX_BATCH_REQUESTS} requests")
        seen: set[str] = set()
        for i, req in enumerate(requests):
            if not isinstance(req, dict):
                raise ApiProblem(400, "invalid_request_error", f"requests.{i}: Input should be an object")
            cid = req.get("custom_id")
            if not isinstance(cid, str) or not protocol.CUSTOM_ID.match(cid):
                raise ApiProblem(400, "invalid_request_error",
                                 f"requests.{i}.custom_id: String should match pattern "
                                 "'^[a-zA-Z0-9_-]{1,64}$'")
            if cid in seen:
                raise ApiProblem(400, "invalid_request_error",
                                 f"requests.{i}.custom_id: Duplicate custom_id '{cid}' in batch")
            seen.add(cid)
            if not isinstance(req.get("params"), dict):
                raise ApiProblem(400, "invalid_request_error", f"requests.{i}.params: Field required")
        items = []
        for req in requests:
            params = req["params"]
            try:
                validate_params(params)
                for found in (refusals.params_problem(self.config, params),
                              refusals.model_problem(self.config, params)):
                    if found is not None:
                        raise found
                problem, kind = "", ""
            except ApiProblem as exc:
                # The real API reports bad params per item, at the end (refusals.py).
                problem, kind = exc.message, exc.kind
            prompt = read_prompt(params) if not problem else None
            key = prompt.note_key if prompt else f"custom_id:{req['custom_id']}"
            attempt = self._attempt(key)
            if problem:
                outcome = "invalid"
            elif self._faulty("expired", key, attempt):
                outcome = "expired"
            elif self._faulty("errored", key, attempt):
                outcome = "errored"
            else:
                outcome = "succeeded"
            items.append(BatchItem(req["custom_id"], params, key, attempt, outcome, problem,
                                   problem_kind=kind or "invalid_request_error"))
        batch_id = self._next_id("msgbatch_emu_")
        now = time.time()
        order = list(range(len(items)))
        with self._lock:
            self._batch_seq += 1  # the order depends on the seed and the batch's number only
            rng = random.Random(f"{self.config.seed}:{self._batch_seq}")
        rng.shuffle(order)
        batch = EmulatedBatch(batch_id, now, now + max(0.0, self.config.batch_seconds), items, order)
        with self._lock:
            self.batches[batch_id] = batch
            self._batch_order.append(batch_id)
            self.counters["batches"] += 1
            self.counters["batch_requests"] += len(items)
            self._advance(batch, now)
            return self.batch_json(batch)

    def _finish(self, batch: EmulatedBatch, ts: float, canceled_from: int | None,
                expired_from: int | None = None) -> None:
        counts = Counter()
        for k, idx in enumerate(batch.order):
            item = batch.items[idx]
            if canceled_from is not None and k >= canceled_from:
                counts["canceled"] += 1
            elif expired_from is not None and k >= expired_from:
                counts["expired"] += 1
            elif item.outcome in ("succeeded",):
                counts["succeeded"] += 1
            elif item.outcome == "expired":
                counts["expired"] += 1
            else:
                counts["errored"] += 1
        batch.canceled_from = canceled_from
        batch.expired_from = expired_from
        batch.counts = {k: counts[k] for k in ("succeeded", "errored", "expired", "canceled")}
        batch.status = "ended"
        batch.ended_at = ts
        for key in ("succeeded", "errored", "expired", "canceled"):
            self.counters[f"items_{key}"] += counts[key]

    def _advance(self, batch: EmulatedBatch, now: float) -> None:
        expires = batch.created + self.config.expire_seconds
        if batch.status == "in_progress" and batch.ends > expires and now >= expires:
            # Not done in time: what was not processed by then ends `expired` (refusals.py).
            self._finish(batch, expires, None, batch.processed_by(expires))
        elif batch.status == "in_progress" and now >= batch.ends:
            self._finish(batch, batch.ends, None)
        elif batch.status == "canceling" and now >= batch.cancel_at + self.config.cancel_seconds:
            end = batch.cancel_at + self.config.cancel_seconds
            self._finish(batch, end, batch.processed_by(min(end, batch.ends)))

    def batch_json(self, batch: EmulatedBatch) -> dict:
        n = len(batch.items)
        counts = batch.counts or {"succeeded": 0, "errored": 0, "expired": 0, "canceled": 0}
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": {"processing": 0 if batch.counts else n, **counts},
            "ended_at": rfc3339(batch.ended_at) if batch.ended_at else None,
            "created_at": rfc3339(batch.created),
            "expires_at": rfc3339(batch.created + self.config.expire_seconds),
            "archived_at": (rfc3339(batch.created + self.config.retention_seconds)
                            if self._archived(batch) else None),
            "cancel_initiated_at": rfc3339(batch.cancel_at) if batch.cancel_at else None,
            "results_url": (f"{self.url}/v1/messages/batches/{batch.id}/results"
                            if batch.status == "ended" else None),
        }

    def _archived(self, batch: EmulatedBatch) -> bool:
        return time.time() >= batch.created + self.config.retention_seconds

    def _batch(self, batch_id: str) -> EmulatedBatch:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                raise ApiProblem(404, "not_found_error", f"No message batch with id '{batch_id}'.")
            self._advance(batch, time.time())
            return batch

    def get_batch(self, batch_id: str) -> dict:
        with self._lock:
            return self.batch_json(self._batch(batch_id))

    def cancel_batch(self, batch_id: str) -> dict:
        with self._lock:
            batch = self._batch(batch_id)
            if batch.status == "in_progress":
                batch.status = "canceling"
                batch.cancel_at = time.time()
                self.counters["batches_canceled"] += 1
            return self.batch_json(batch)

    def delete_batch(self, batch_id: str) -> dict:
        with self._lock:
            batch = self._batch(batch_id)
            if batch.status != "ended":
                raise ApiProblem(400, "invalid_request_error",
                                 "Message batch must be ended or canceled before deletion.")
            del self.batches[batch_id]
            self._batch_order.remove(batch_id)
            return {"id": batch_id, "type": "message_batch_deleted"}

    def list_batches(self, query: dict) -> dict:
        try:
            limit = int(query.get("limit", 20))
        except ValueError:
            raise ApiProblem(
                400, "invalid_request_error", "limit: Input should be an integer"
            ) from None
        if not 1 <= limit <= 1000:
            raise ApiProblem(400, "invalid_request_error", "limit: must be between 1 and 1000")
        with self._lock:
            ids = list(reversed(self._batch_order))  # newest first
            after, before = query.get("after_id"), query.get("before_id")
            for cursor in (after, before):
                if cursor and cursor not in self.batches:
                    raise ApiProblem(400, "invalid_request_error", f"Invalid cursor id '{cursor}'.")
            if after:
                rest = ids[ids.index(after) + 1:]
                page, has_more = rest[:limit], len(rest) > limit
            elif before:
                rest = ids[: ids.index(before)]
                page, has_more = rest[-limit:], len(rest) > limit
            else:
                page, has_more = ids[:limit], len(ids) > limit
            data = []
            for batch_id in page:
                batch = self.batches[batch_id]
                self._advance(batch, time.time())
                data.append(self.batch_json(batch))
        return {
            "data": data,
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }

    def iter_results(self, batch_id: str):
        """JSONL lines of an ended batch, in processing (random) order."""
        with self._lock:
            batch = self._batch(batch_id)
            if batch.status != "ended":
                raise ApiProblem(404, "not_found_error",
                                 f"Results for message batch '{batch_id}' are not available "
                                 "until it has ended.")
            if self._archived(batch):  # past the retention period (refusals.py)
                raise ApiProblem(404, "not_found_error",
                                 f"Results for message batch '{batch_id}' are no longer "
                                 "available.")
        for k, idx in enumerate(batch.order):
            item = batch.items[idx]
            if batch.canceled_from is not None and k >= batch.canceled_from:
                result = {"type": "canceled"}
            elif item.outcome == "expired" or (
                batch.expired_from is not None and k >= batch.expired_from
            ):
                result = {"type": "expired"}
            elif item.outcome == "invalid":
                result = {"type": "errored", "error": {
                    "type": "error", "request_id": self._next_id("req_emu_"),
                    "error": {"type": item.problem_kind, "message": item.problem}}}
            elif item.outcome == "errored":
                result = {"type": "errored", "error": {
                    "type": "error", "request_id": self._next_id("req_emu_"),
                    "error": {"type": "api_error",
                              "message": "Internal server error (emulated fault)."}}}
            else:
                if item.message is None:
                    prompt = read_prompt(item.params)
                    malformed = self._faulty("malformed", item.note_key, item.attempt)
                    item.message = self.message_for(item.params, prompt, malformed=malformed,
                                                    batch=True)
                result = {"type": "succeeded", "message": item.message}
                with self._lock:
                    self.notes_ok[item.note_key] += 1
            yield json.dumps({"custom_id": item.custom_id, "result": result},
                             ensure_ascii=False).encode("utf-8") + b"\n"


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VaultCMS-Anthropic-Emulator/1"
    emulator: Emulator

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without NODELAY each answer waits ~40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # quiet: the command prints its own line per request when asked

    # -- plumbing

    def _send(self, status: int, payload, headers: dict | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, problem: ApiProblem, headers: dict | None = None) -> None:
        request_id = self.emulator._next_id("req_emu_")
        body = {"type": "error", "error": {"type": problem.kind, "message": problem.message},
                "request_id": request_id}
        with self.emulator._lock:
            self.emulator.statuses[problem.status] += 1
        self._send(problem.status, body, {**(headers or {}), **problem.headers,
                                          "request-id": request_id})

    def _take_body(self, limit: int) -> None:
        """Read the request body (always, so a kept-alive connection stays in step)."""
        self._raw = b""
        length = int(self.headers.get("content-length") or 0)
        if length > limit:
            self.close_connection = True  # the unread body makes the connection unusable
            raise ApiProblem(413, "request_too_large",
                             f"Request exceeds the maximum allowed number of bytes ({limit}).")
        if length:
            self._raw = self.rfile.read(length)

    def _json(self):
        if not self._raw:
            return None
        try:
            return json.loads(self._raw)
        except ValueError:
            raise ApiProblem(
                400, "invalid_request_error", "Request body is not valid JSON."
            ) from None

    def _route(self, method: str) -> None:
        emu = self.emulator
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if path.startswith("/_emulator/"):
            return self._control(method, path)
        if not path.startswith("/v1/"):
            try:
                self._take_body(protocol.MAX_MESSAGE_BYTES)
            except ApiProblem as problem:
                return self._error(problem)
            return self._error(ApiProblem(404, "not_found_error", f"Not found: {path}"))
        with emu._lock:
            emu.counters["requests"] += 1
        is_message = method == "POST" and path == "/v1/messages"
        headers: dict = {}
        if is_message:
            with emu._lock:
                emu.counters["messages"] += 1
                emu.in_flight += 1
                emu.max_in_flight = max(emu.max_in_flight, emu.in_flight)
        try:
            self._take_body(protocol.MAX_BATCH_BYTES if path == "/v1/messages/batches" else protocol.MAX_MESSAGE_BYTES)
            endpoint = refusals.endpoint_of(method, path)
            fault = emu.faults.fault(emu.config.script, endpoint)
            if fault is not None:
                with emu._lock:
                    emu.counters[f"scripted_{endpoint}"] += 1
                if fault == refusals.DROP:
                    self.close_connection = True  # no answer at all: a dropped connection
                    return
                raise fault
            refusals.check_key(emu.config, self.headers)
            if emu.config.latency > 0:
                time.sleep(emu.config.latency)
            counting = path == "/v1/messages/count_tokens"  # rate-limited apart at the API
            headers, wait = ({}, None) if counting else emu.rate_headers(time.time())
            if wait is not None:
                with emu._lock:
                    emu.counters["rate_limited"] += 1
                if is_message:  # a rate-limited call still counts as a message sent for its note
                    try:
                        body = self._json()
                    except ApiProblem:
                        body = None
                    if isinstance(body, dict):
                        emu._attempt(read_prompt(body).note_key)
                raise ApiProblem(429, "rate_limit_error",
                                 f"This request would exceed the rate limit of "
                                 f"{emu.config.rpm} requests per {emu.config.rate_window:g} s.",
                                 {"retry-after": str(max(1, math.ceil(wait))),
                                  "retry-after-ms": str(int(wait * 1000) + 1)})
            self._dispatch(method, path, query, headers)
        except ApiProblem as problem:
            self._error(problem, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # an emulator bug must still answer in the API's shape
            self._error(ApiProblem(500, "api_error", f"Emulator error: {type(exc).__name__}"),
                        headers)
        finally:
            if is_message:
                with emu._lock:
                    emu.in_flight -= 1

    def _dispatch(self, method: str, path: str, query: dict, headers: dict) -> None:
        emu = self.emulator
        m = re.fullmatch(r"/v1/messages/batches/([^/]+)(/results|/cancel)?", path)
        if method == "POST" and path == "/v1/messages":
            return self._ok(emu.create_message(self._json(), headers), headers)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return self._ok(emu.count_message_tokens(self._json()), headers)
        if method == "POST" and path == "/v1/messages/batches":
            return self._ok(emu.create_batch(self._json(), len(self._raw)), headers)
        if method == "GET" and path == "/v1/messages/batches":
            return self._ok(emu.list_batches(query), headers)
        if m and method == "GET" and m.group(2) is None:
            return self._ok(emu.get_batch(m.group(1)), headers)
        if m and method == "DELETE" and m.group(2) is None:
            return self._ok(emu.delete_batch(m.group(1)), headers)
        if m and method == "POST" and m.group(2) == "/cancel":
            return self._ok(emu.cancel_batch(m.group(1)), headers)
        if m and method == "GET" and m.group(2) == "/results":
            return self._stream(emu.iter_results(m.group(1)), headers)
        raise ApiProblem(404, "not_found_error", f"Not found: {method} {path}")

    def _ok(self, payload, headers: dict) -> None:
        with self.emulator._lock:
            self.emulator.statuses[200] += 1
        self._send(200, payload, {**headers, "request-id": self.emulator._next_id("req_emu_")})

    def _stream(self, lines, headers: dict) -> None:
        first = next(lines, None)  # raises ApiProblem before any byte is sent
        with self.emulator._lock:
            self.emulator.statuses[200] += 1
        self.send_response(200)
        self.send_header("content-type", "application/binary")
        self.send_header("transfer-encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        chunk: list[bytes] = [first] if first else []
        size = len(first or b"")
        for line in lines:
            chunk.append(line)
            size += len(line)
            if size >= 65536:
                self._chunk(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self._chunk(b"".join(chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _control(self, method: str, path: str) -> None:
        emu = self.emulator
        try:
            self._take_body(1024 * 1024)
            if path == "/_emulator/stats" and method == "GET":
                return self._send(200, emu.stats())
            if path == "/_emulator/config":
                if method == "POST":
                    body = self._json()
                    if not isinstance(body, dict):
                        raise ApiProblem(400, "invalid_request_error", "config: send a JSON object")
                    try:
                        return self._send(200, emu.configure(**body))
                    except (ValueError, TypeError) as exc:
                        raise ApiProblem(400, "invalid_request_error", str(exc)) from None
                return self._send(200, asdict(emu.config))
            if path == "/_emulator/reset" and method == "POST":
                emu.reset()
                return self._send(200, {"reset": True})
            raise ApiProblem(404, "not_found_error", f"Not found: {method} {path}")
        except ApiProblem as problem:
            self._error(problem)

    def send_response(self, code, message=None):
        self._status = code
        super().send_response(code, message)

    _logged = True  # until _handle starts a request (send_error may answer before it)
    _start = 0.0

    def end_headers(self):
        # Log before the headers go out, so the line exists by the time the client has its
        # answer (a test reading the log right after a call must never find it missing).
        self._log_request()
        super().end_headers()

    def _log_request(self) -> None:
        log = self.emulator.log
        if log is not None and not self._logged:
            self._logged = True
            ms = (time.perf_counter() - self._start) * 1000
            log(f"{self.command} {self.path} {self._status} {ms:.0f} ms")

    def _handle(self, method: str) -> None:
        self._start, self._status, self._logged = time.perf_counter(), 0, False
        try:
            self._route(method)
        finally:
            self._log_request()  # a request that ended without an answer

    def do_GET(self):  # noqa: N802 - the stdlib's names
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")


"""The one module that talks to the Anthropic API (real or emulated): nothing else imports anthropic.

A narrow interface: SDK clients (`sync_client`, `async_client`), one real-time call
(`send_one`, `send_one_async`, `send_one_async_with_headers`), and the Message Batches calls
(`submit_batch`, `get_batch`, `list_batches`, `iter_results`, `cancel_batch`), and the free
`count_tokens` that the cost estimate counts requests with. What a request
says and how an answer is read live in `curation.api.prompt`; prices in `curation.api.pricing`.

Configuration: ANTHROPIC_BASE_URL (unset: the SDK's default, api.anthropic.com) and
ANTHROPIC_API_KEY, read from the environment at call time; with a base URL but no key a
placeholder key is sent (the emulator accepts any). SDK retries and timeout come from
settings.CURATION_SDK_MAX_RETRIES and CURATION_TIMEOUT_SECONDS. The key never appears in a log
line or an exception message: errors are rebuilt from the status and the API's own message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import anthropic
from django.conf import settings

from curation.api.prompt import Answer, InvalidAnswer, parse_answer, parse_consolidation

PLACEHOLDER_KEY = "emulator-no-key"  # sent when only a base URL is configured

@dataclass
class Outcome:
    state: str  # succeeded | errored | expired | canceled
    answer: Answer | None = None
    usage: dict = field(default_factory=dict)
    error: str = ""
    raw: dict | None = None

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"


@dataclass
class BatchStatus:
    id: str
    processing_status: str  # in_progress | canceling | ended
    request_counts: dict
    ended_at: datetime | None
    results_url: str | None = None


class ApiError(Exception):
    """A whole call failed (after the SDK's retries). The message is safe to store and show."""

    def __init__(self, reason: str, *, status: int | None = None, kind: str = "",
                 retryable: bool = True, headers: dict | None = None, request_id: str = "",
                 message: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.kind = kind
        self.retryable = retryable
        self.headers = headers or {}  # rate-limit and retry-after headers only (limit_headers)
        self.request_id = request_id  # the API's `request-id` header, when it answered
        self.message = message  # the API's own error message (key-free), when it answered

    @property
    def detail(self) -> str:
        """The reason with the API's request-id: what an item's error keeps of a failed call."""
        return with_request_id(self.reason, self.request_id)


def with_request_id(text: str, request_id: str | None) -> str:
    """`text (request-id req_...)`: the id the API's support asks for, when the API gave one."""
    return f"{text} (request-id {request_id})" if request_id else text


# --- SDK clients -------------------------------------------------------------------------------

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def _connection() -> tuple[str | None, str]:
    base_url = os.environ.get("ANTHROPIC_BASE_URL") or None
    key = os.environ.get("ANTHROPIC_API_KEY") or ""
    if not key:
        if not base_url:
            raise ApiError("ANTHROPIC_API_KEY is not set (set it, or point ANTHROPIC_BASE_URL "
                           "at the built-in emulator)", retryable=False)
        key = PLACEHOLDER_KEY
    return base_url, key


def _options() -> dict:
    return {
        "max_retries": settings.CURATION_SDK_MAX_RETRIES,
        "timeout": settings.CURATION_TIMEOUT_SECONDS,
    }


def sync_client() -> anthropic.Anthropic:
    """A shared SDK client for the current configuration (connection pool reused per process)."""
    base_url, key = _connection()
    opts = _options()
    cache_key = ("sync", base_url, key, opts["max_retries"], opts["timeout"])
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = anthropic.Anthropic(api_key=key, base_url=base_url, **opts)
            _clients[cache_key] = client
    return client


def async_client(*, max_retries: int | None = None) -> anthropic.AsyncAnthropic:
    """A new async SDK client (bound to the running event loop; close it when done).

    `max_retries=0` turns the SDK's own retries off for a caller that owns its retry policy
    (parallel mode waits out retry-after and rate limits across all its calls at once).
    """
    base_url, key = _connection()
    opts = _options()
    if max_retries is not None:
        opts["max_retries"] = max_retries
    return anthropic.AsyncAnthropic(api_key=key, base_url=base_url, **opts)


def reset_clients() -> None:
    """Forget cached clients (tests change ANTHROPIC_BASE_URL between cases)."""
    with _clients_lock:
        old = list(_clients.values())
        _clients.clear()
    for client in old:
        try:
            client.close()
        except Exception:  # closing a pool must never break a test teardown
            pass


LIMIT_HEADER_PREFIXES = ("anthropic-ratelimit-", "retry-after")


def limit_headers(headers) -> dict[str, str]:
    """The rate-limit and retry-after headers of a response (nothing else is kept)."""
    if not headers:
        return {}
    return {
        str(k).lower(): str(v)
        for k, v in headers.items()
        if str(k).lower().startswith(LIMIT_HEADER_PREFIXES)
    }


def _api_error(exc: Exception) -> ApiError:
    """A readable, key-free ApiError from an SDK exception."""
    if isinstance(exc, anthropic.APIStatusError):
        kind = getattr(exc, "type", None) or ""
        message = getattr(exc, "api_message", None) or ""
        if not kind or not message:
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            kind = kind or str(error.get("type") or "")
            message = message or str(error.get("message") or "")
        status = exc.status_code
        reason = _scrub(f"HTTP {status} {kind or 'error'}: {message or 'no message'}")
        retryable = status in (408, 409, 429) or status >= 500
        response = getattr(exc, "response", None)
        # The SDK reads `request-id` from the headers (src/anthropic/_exceptions.py).
        request_id = str(getattr(exc, "request_id", None) or "")[:200]
        return ApiError(reason[:1000], status=status, kind=kind, retryable=retryable,
                        headers=limit_headers(getattr(response, "headers", None)),
                        request_id=request_id, message=_scrub(message)[:1000])
    if isinstance(exc, anthropic.APITimeoutError):
        return ApiError("request timed out", kind="timeout")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        detail = f" ({type(cause).__name__})" if cause else ""
        return ApiError(f"could not connect to the API{detail}", kind="connection")
    detail = _scrub(str(exc))[:500]
    return ApiError(f"API client error: {type(exc).__name__}: {detail}", retryable=False)


def _scrub(text: str) -> str:
    """Defence in depth: an SDK message should never hold the key, but never pass it on."""
    key = os.environ.get("ANTHROPIC_API_KEY") or ""
    return text.replace(key, "[redacted]") if len(key) >= 8 else text


def _usage(message: dict) -> dict:
    usage = message.get("usage") or {}
    counts = {
        key: int(usage.get(key) or 0)
        for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                    "cache_read_input_tokens")
    }
    hour = int((usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0)
    if hour:  # 1-hour cache writes cost more than 5-minute ones (curation.api.pricing)
        counts["cache_creation"] = {"ephemeral_1h_input_tokens": hour}
    return counts


def _outcome(
    message: dict, *, fields, candidates, tags=None, request_id: str | None = None
) -> Outcome:
    """The outcome of one answer: a note's fields, or with `tags` (the tags a consolidation
    request listed) the merges it proposes (a list of prompt.TagMerge). `request_id`: the
    answer's, kept in the error of an answer that cannot be used."""
    usage = _usage(message)
    try:
        if tags is not None:
            answer = parse_consolidation(message, tags=tags)
        else:
            answer = parse_answer(message, fields=fields, candidates=candidates)
    except InvalidAnswer as exc:
        error = with_request_id(f"invalid answer: {exc}", request_id)
        return Outcome(state="errored", usage=usage, error=error, raw=message)
    return Outcome(state="succeeded", answer=answer, usage=usage, raw=message)


# --- Counting tokens -------------------------------------------------------------------------

# What POST /v1/messages/count_tokens accepts (SDK `messages.count_tokens`): a message's params
# without max_tokens and the sampling options.
COUNT_KEYS = ("model", "messages", "system", "tools", "tool_choice", "thinking",
              "output_config", "cache_control")
COUNT_TIMEOUT_SECONDS = 10.0


def count_tokens(params: dict) -> int:
    """Input tokens the API would bill for a message with these params (the free endpoint).

    One try, short timeout: the caller (the cost estimate) falls back to a local count.
    Raises ApiError when the count cannot be had.
    """
    body = {key: value for key, value in params.items() if key in COUNT_KEYS}
    try:
        once = sync_client().with_options(max_retries=0, timeout=COUNT_TIMEOUT_SECONDS)
        return int(once.messages.count_tokens(**body).input_tokens)
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None


# --- Real-time calls ---------------------------------------------------------------------------


def send_one(params: dict, *, fields, candidates, tags=None) -> Outcome:
    """One real-time Messages call (SDK retries included). Raises ApiError when the call fails.

    `tags`: the request is a consolidation request over these tags (see _outcome).
    """
    try:
        message = sync_client().messages.create(**params)
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None
    # The SDK keeps the answer's `request-id` header on the model (src/anthropic/_models.py).
    return _outcome(message.model_dump(), fields=fields, candidates=candidates, tags=tags,
                    request_id=getattr(message, "_request_id", None))


async def send_one_async(client, params: dict, *, fields, candidates, tags=None) -> Outcome:
    """send_one on an AsyncAnthropic client from async_client(), for parallel mode."""
    try:
        message = await client.messages.create(**params)
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None
    return _outcome(message.model_dump(), fields=fields, candidates=candidates, tags=tags,
                    request_id=getattr(message, "_request_id", None))


async def send_one_async_with_headers(
    client, params: dict, *, fields, candidates, tags=None
) -> tuple[Outcome, dict[str, str]]:
    """send_one_async that also returns the answer's rate-limit headers (see limit_headers).

    A failed call raises ApiError whose `.headers` hold the same (retry-after included).
    """
    try:
        response = await client.messages.with_raw_response.create(**params)
        message = await response.parse()
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None
    outcome = _outcome(message.model_dump(), fields=fields, candidates=candidates, tags=tags,
                       request_id=response.headers.get("request-id"))
    return outcome, limit_headers(response.headers)


# --- Message Batches ---------------------------------------------------------------------------


def _status(batch) -> BatchStatus:
    counts = batch.request_counts
    return BatchStatus(
        id=batch.id,
        processing_status=batch.processing_status,
        request_counts={
            key: int(getattr(counts, key, 0) or 0)
            for key in ("processing", "succeeded", "errored", "canceled", "expired")
        },
        ended_at=batch.ended_at,
        results_url=batch.results_url,
    )


def submit_batch(requests: Iterable[tuple[str, dict]]) -> BatchStatus:
    """Create one batch from (custom_id, params) pairs; the caller keeps it under the limits."""
    body = [{"custom_id": custom_id, "params": params} for custom_id, params in requests]
    try:
        # No SDK retry here: a create that failed late may still have made the batch, and a
        # blind retry would pay for it twice. The job engine reconciles instead (adopt or retry).
        once = sync_client().with_options(max_retries=0)
        return _status(once.messages.batches.create(requests=body))
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None


def get_batch(batch_id: str) -> BatchStatus:
    try:
        return _status(sync_client().messages.batches.retrieve(batch_id))
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None


def cancel_batch(batch_id: str) -> BatchStatus:
    try:
        return _status(sync_client().messages.batches.cancel(batch_id))
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None


def list_batches(*, since: datetime) -> list[BatchStatus]:
    """Batches created at or after `since`, oldest first (reconciles an unconfirmed submit)."""
    found = []
    try:
        for batch in sync_client().messages.batches.list(limit=100):  # newest first, paged
            if batch.created_at < since:
                break
            found.append(_status(batch))
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None
    return found[::-1]


def _lookup(fn: Callable, custom_id: str):
    try:
        return fn(custom_id)
    except (KeyError, LookupError):
        return None


def _item_outcome(result, *, fields, candidates, tags=None) -> Outcome:
    kind = result.type
    if kind == "succeeded":
        message = result.message.model_dump()
        if fields is None:
            return Outcome(state="errored", usage=_usage(message), error="unknown custom_id",
                           raw=message)
        return _outcome(message, fields=fields, candidates=candidates or [], tags=tags)
    if kind == "errored":
        error = getattr(result.error, "error", None)
        etype = getattr(error, "type", "") or "error"
        emsg = getattr(error, "message", "") or "no message"
        # An errored result carries the failed request's id (ErrorResponse.request_id).
        request_id = str(getattr(result.error, "request_id", None) or "")[:200]
        return Outcome(state="errored", error=with_request_id(f"{etype}: {emsg}"[:1000], request_id))
    if kind == "expired":
        return Outcome(state="expired", error="the batch expired before this request ran")
    if kind == "canceled":
        return Outcome(state="canceled", error="the batch was canceled before this request ran")
    return Outcome(state="errored", error=f"unknown result type {kind!r}")


def iter_results(
    batch_id: str, *, fields_for, candidates_for, tags_for=None
) -> Iterator[tuple[str, Outcome]]:
    """Stream (custom_id, Outcome) for an ended batch, in the API's (arbitrary) order.

    Map each custom_id to its row; never rely on position. An id `fields_for` does not know
    (KeyError or None) is still yielded, as errored "unknown custom_id". `tags_for` (a
    consolidation job's batch): custom_id -> the tags its request listed (see _outcome).
    """
    try:
        decoder = sync_client().messages.batches.results(batch_id)
    except anthropic.AnthropicError as exc:
        raise _api_error(exc) from None
    try:
        while True:
            try:
                line = next(decoder)
            except StopIteration:
                return
            except anthropic.AnthropicError as exc:
                raise _api_error(exc) from None
            except (ValueError, TypeError) as exc:  # a line the SDK could not decode
                raise ApiError(f"malformed results stream: {type(exc).__name__}") from None
            fields = _lookup(fields_for, line.custom_id)
            candidates = _lookup(candidates_for, line.custom_id) if fields is not None else None
            tags = _lookup(tags_for, line.custom_id) if tags_for and fields is not None else None
            yield line.custom_id, _item_outcome(
                line.result, fields=fields, candidates=candidates, tags=tags
            )
    finally:
        decoder.close()

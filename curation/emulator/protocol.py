"""The API's rules as the emulator enforces them: limits, request validation, error shapes."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

class ApiProblem(Exception):
    """An error answered in the API's JSON error shape."""

    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers or {}


def unit(*parts) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.blake2b(
        "\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass"), digest_size=8
    )
    return int.from_bytes(digest.digest(), "big") / 2**64


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


# --- Validation ------------------------------------------------------------------------------


def validate_params(params) -> None:
    """Raise ApiProblem(400) when a Messages request lacks what the real API requires."""

    def bad(message: str):
        raise ApiProblem(400, "invalid_request_error", message)

    if not isinstance(params, dict):
        bad("params: Input should be an object")
    if params.get("stream"):
        bad("stream: streaming is not supported by this emulator (nor inside a batch)")
    for key in ("model", "max_tokens", "messages"):
        if key not in params:
            bad(f"{key}: Field required")
    if not isinstance(params["model"], str) or not params["model"]:
        bad("model: Input should be a non-empty string")
    max_tokens = params["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        bad("max_tokens: Input should be a positive integer")
    messages = params["messages"]
    if not isinstance(messages, list) or not messages:
        bad("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            bad(f"messages.{i}.content: Field required")
    if messages[0].get("role") != "user":
        bad("messages: first message must use the \"user\" role")
    tools = params.get("tools") or []
    if not isinstance(tools, list):
        bad("tools: Input should be a valid list")
    names = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not tool.get("name"):
            bad(f"tools.{i}.name: Field required")
        if "type" not in tool and not isinstance(tool.get("input_schema"), dict):
            bad(f"tools.{i}.input_schema: Field required")
        names.add(tool["name"])
    choice = params.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            bad("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if choice["type"] == "tool" and choice.get("name") not in names:
            bad(f"tool_choice: Tool '{choice.get('name')}' not found in tools")
        if choice["type"] in ("any", "tool") and not tools:
            bad("tool_choice: tools must be provided when tool_choice is 'any' or 'tool'")



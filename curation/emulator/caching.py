"""How the emulator counts input tokens and caches prompt prefixes, as the real API bills them.

Facts from the prompt-caching page (https://platform.claude.com/docs/en/build-with-claude/
prompt-caching): the cached prefix is "tools, system, and messages, in that order, up to and
including the block designated with cache_control"; a prefix shorter than the model's minimum
cacheable length is not cached and is billed as plain input, without an error (the minimums
live in curation.api.pricing, their one home); an entry lives 5 minutes ("ttl": "1h": one
hour), "refreshed for no additional cost each time the cached content is used". Inside the
Message Batches API caching is best effort (the batch page reports hit rates "from 30% to
98%"), so a batch request may miss, and then writes, a prefix another request wrote.

count_tokens and billing share `split`, so `POST /v1/messages/count_tokens` always equals the
input a message is billed for (input + cache writes + cache reads).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

from curation.emulator.answers import text_of
from curation.emulator.protocol import count_tokens

FIVE_MINUTES = 300.0
ONE_HOUR_FACTOR = 12  # a "1h" entry lives twelve 5-minute lifetimes


@dataclass(frozen=True)
class Parts:
    """A request's input tokens, split where the API would cache it."""

    prefix: int  # tools, then system blocks up to the last one marked with cache_control
    rest: int  # everything after it (the messages included)
    marked: bool  # some system block carries cache_control
    ttl: str  # the last mark's lifetime: "5m" or "1h"
    key: str  # the cache entry's identity: the model and the prefix's exact text

    @property
    def total(self) -> int:
        return self.prefix + self.rest


def split(params: dict) -> Parts:
    system = params.get("system") or ""
    blocks = system if isinstance(system, list) else [{"type": "text", "text": system}]
    marks = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    cut = marks[-1] + 1 if marks else 0
    ttl = "5m"
    if marks and (blocks[marks[-1]].get("cache_control") or {}).get("ttl") == "1h":
        ttl = "1h"
    tools_text = json.dumps(params.get("tools") or [], sort_keys=True)
    prefix_text = "\n".join([tools_text] + [text_of([b]) for b in blocks[:cut]])
    rest_text = "\n".join(
        [text_of([b]) for b in blocks[cut:]]
        + [text_of(m.get("content")) for m in params.get("messages") or [] if isinstance(m, dict)]
    )
    key = hashlib.sha1(f"{params.get('model')}\x00{prefix_text}".encode()).hexdigest()
    return Parts(count_tokens(prefix_text), count_tokens(rest_text), bool(marks), ttl, key)


class PromptCache:
    """Entries that expire `seconds` after their last use (a hit renews them)."""

    def __init__(self, *, clock: Callable[[], float]):
        self.clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def use(self, key: str, *, seconds: float, may_hit: bool = True) -> bool:
        """True: a hit, the entry now lives `seconds` more. False: missed, written now."""
        now = self.clock()
        with self._lock:
            expiry = self._expiry.get(key)
            hit = may_hit and expiry is not None and expiry > now
            self._expiry[key] = max(expiry or 0.0, now + seconds)
            return hit

    def alive(self) -> int:
        now = self.clock()
        with self._lock:
            return sum(1 for expiry in self._expiry.values() if expiry > now)

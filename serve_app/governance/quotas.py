"""A key's limits and what it has used: requests and tokens per minute, tokens per day.

Pure bookkeeping, no Ray: the governor deployment (governor.py) keeps one `KeyUsage`
per key and asks it before each request. A minute is a sliding window of the last 60
seconds; a day is the UTC day. Tokens are counted when a response ends (prompt plus
completion), so a request is let in while the tokens already counted are under the
limits, and its own tokens count from then on.
"""

from __future__ import annotations

import collections
import datetime
import math
import time
from typing import Optional

from pydantic import BaseModel

from serve_app.config.keys import Limits

WINDOW_S = 60.0
MAX_LEASE = 64  # most requests one lease carries, however far a key is from its limits


class Refusal(BaseModel):
    reason: str  # requests_per_minute, tokens_per_minute, tokens_per_day
    message: str
    retry_after_s: int


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def _seconds_to_midnight() -> int:
    now = datetime.datetime.now(datetime.timezone.utc)
    tomorrow = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


class KeyUsage:
    """One key's counts: the last minute's requests and tokens, today's tokens, and totals."""

    def __init__(self, day: Optional[str] = None, day_tokens: int = 0):
        self.requests: collections.deque[float] = collections.deque()
        self.tokens: collections.deque[tuple[float, int]] = collections.deque()
        self.day, self.day_tokens = day or _today(), day_tokens
        self.total_requests = self.prompt_tokens = self.completion_tokens = 0
        self.refused: collections.Counter[str] = collections.Counter()

    def _forget_old(self, now: float) -> None:
        while self.requests and now - self.requests[0] >= WINDOW_S:
            self.requests.popleft()
        while self.tokens and now - self.tokens[0][0] >= WINDOW_S:
            self.tokens.popleft()
        if self.day != _today():
            self.day, self.day_tokens = _today(), 0

    def lease(self, limits: Limits, replicas: int, most: int = MAX_LEASE,
              now: Optional[float] = None) -> tuple[int, Optional[Refusal]]:
        """Requests an ingress replica may admit on its own: (n, None), all n counted now; or
        (0, why not). n is a share of what the key has left this minute, split among the
        `replicas` asking, halved again so some stays for the others: so it shrinks to one
        (a call per request, exact) as the key nears a limit. Tokens are known only after
        a response, so a token limit's share is what is left over this key's recent mean
        tokens per request."""
        now = time.monotonic() if now is None else now
        self._forget_old(now)
        refusal = self._refusal(limits, now)
        if refusal:
            self.refused[refusal.reason] += 1
            return 0, refusal
        rooms = [2 * max(1, replicas) * most]
        if limits.requests_per_minute is not None:
            rooms.append(limits.requests_per_minute - len(self.requests))
        minute_tokens = sum(n for _, n in self.tokens)
        per_request = max(1.0, minute_tokens / len(self.tokens)) if self.tokens else None
        for limit, used in ((limits.tokens_per_minute, minute_tokens),
                            (limits.tokens_per_day, self.day_tokens)):
            if limit is not None:  # before any token is known, one request at a time
                rooms.append(int((limit - used) / per_request) if per_request else 1)
        granted = max(1, min(rooms) // (2 * max(1, replicas)))
        self.requests.extend([now] * granted)
        self.total_requests += granted
        return granted, None

    def give_back(self, unused: int) -> None:
        """Leased requests an ingress replica did not use: the latest counted ones are uncounted."""
        unused = min(unused, len(self.requests))
        for _ in range(unused):
            self.requests.pop()
        self.total_requests -= unused

    def _refusal(self, limits: Limits, now: float) -> Optional[Refusal]:
        rpm, tpm, tpd = limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day
        if rpm is not None and len(self.requests) >= rpm:
            wait = WINDOW_S - (now - self.requests[0])
            return Refusal(reason="requests_per_minute", retry_after_s=max(1, math.ceil(wait)),
                           message=f"this key's limit of {rpm} requests per minute is reached")
        minute_tokens = sum(n for _, n in self.tokens)
        if tpm is not None and minute_tokens >= tpm:
            wait = WINDOW_S - (now - self.tokens[0][0])
            return Refusal(reason="tokens_per_minute", retry_after_s=max(1, math.ceil(wait)),
                           message=f"this key's limit of {tpm} tokens per minute is reached ({minute_tokens} used)")
        if tpd is not None and self.day_tokens >= tpd:
            return Refusal(reason="tokens_per_day", retry_after_s=_seconds_to_midnight(),
                           message=f"this key's budget of {tpd} tokens a day is spent ({self.day_tokens} used)")
        return None

    def count_tokens(self, prompt_tokens: int, completion_tokens: int, now: Optional[float] = None,
                     requests: int = 0) -> None:
        """Tokens once known (one request's, or several gathered); `requests`: requests to
        count too (those not counted by a lease)."""
        now = time.monotonic() if now is None else now
        self._forget_old(now)
        self.requests.extend([now] * requests)
        self.total_requests += requests
        total = prompt_tokens + completion_tokens
        if total:
            self.tokens.append((now, total))
        self.day_tokens += total
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def report(self, now: Optional[float] = None) -> dict:
        now = time.monotonic() if now is None else now
        self._forget_old(now)
        return {
            "requests": self.total_requests, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "refused": dict(self.refused),
            "last_minute": {"requests": len(self.requests), "tokens": sum(n for _, n in self.tokens)},
            "today": {"day": self.day, "tokens": self.day_tokens},
        }

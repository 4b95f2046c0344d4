"""The version of a value that one replica holds and every ingress replica copies: the routing
table (serving/routing_table.py, held by the manager) and the API keys (governance/governor.py).

Why versions and a long poll rather than a copy read on a timer: a copy holds a call open on
the holder (`wait_past`), which answers as soon as the value changes. A change then reaches
every copy within one call's latency, and a value that does not change costs nothing, however
many copies there are; read on a timer, each ingress replica had read every API key twice a
second, idle (docs/development.md has what that cost).

A version is (this holder's epoch, a counter): a holder that restarts starts a new epoch, so a
copy never mistakes its old version for the new holder's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any, Awaitable, Callable, Optional

logger = logging.getLogger("ray.serve")

Version = tuple[str, int]
RETRY_S = 1.0  # after a long poll that failed (the holder restarting)
NEW_HOLDER_PAUSE_S = 1.0  # after an answer from a holder of another epoch than the copy's


class Versioned:
    def __init__(self):
        self.version: Version = (uuid.uuid4().hex[:8], 0)
        self._changed: Optional[asyncio.Condition] = None  # made on the holder's event loop

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def bump(self) -> None:
        """The value changed: a new version, and every waiting copy answered."""
        async with self._condition():
            self.version = (self.version[0], self.version[1] + 1)
            self._condition().notify_all()

    async def wait_past(self, since: Optional[Version], wait_s: float) -> bool:
        """True as soon as the version is not `since`; False once `wait_s` passed without a change."""
        async with self._condition():
            if self.version == since and wait_s > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._condition().wait_for(lambda: self.version != since), wait_s)
            return self.version != since


def supersedes(version: Version, held: Optional[Version]) -> bool:
    """Whether a copy holding `held` takes `version`: not an older one of the same holder (a read
    that ends after a newer read or watch answer did), always a new holder's epoch."""
    return held is None or version[0] != held[0] or version[1] >= held[1]


async def follow(watch: Callable[[Optional[Version]], Awaitable[tuple[Version, Any]]],
                 held: Callable[[], Optional[Version]], install: Callable[[Version, Any], None], what: str) -> None:
    """A copy's side, forever: `watch(since)` is the holder's long poll, (version, value) or
    (version, None) when nothing changed; `held()` the version the copy holds; `install` takes a
    new value (and drops one that `supersedes` says is older than what it holds). While the holder cannot be reached, the copy keeps what it holds."""
    while True:
        since = held()
        try:
            version, value = await watch(since)
            if value is not None:
                install(version, value)
        except Exception as exc:  # the holder restarting: the last copy serves meanwhile
            logger.warning("%s did not answer (%s): serving from the last copy", what, exc)
            await asyncio.sleep(RETRY_S)
            continue
        if since is not None and version[0] != since[0]:
            # A new holder. While two answer (the old one still stopping in a rolling update, or a
            # config that gave it two replicas), each answers the other's epoch at once: pace the
            # copy rather than spin between them (tests/inprocess/test_keys_across_replicas.py).
            await asyncio.sleep(NEW_HOLDER_PAUSE_S)

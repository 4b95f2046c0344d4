"""The version of a value that one replica holds and every ingress replica copies: the routing
table (serving/routing_table.py, held by the manager) and the API keys (governance/governor.py).

Why versions and a long poll rather than a copy read on a timer: a copy holds a call open on
the holder (`wait_past`), which answers as soon as the value changes. A change then reaches
every copy within one call's latency, and a value that does not change costs nothing, however
many copies there are; read on a timer, each copy read the whole value twice a second, idle.

A version is (this holder's epoch, a counter): a holder that restarts starts a new epoch, so a
copy never mistakes its old version for the new holder's.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Optional

Version = tuple[str, int]


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

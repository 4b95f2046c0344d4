"""The routing table, published by the manager to every ingress replica (#31).

Why a publisher: each ingress replica used to ask Serve's controller for its whole state
once a second, so the controller's work grew with ingress replicas times models. Now the
manager (one replica) reads that state, one controller call per `interval_s` whatever the
number of ingress replicas, and at once after every change it applies itself; an ingress
replica holds a long poll on the manager (`watch`) that answers as soon as the table has a
new version. So a request does a dict lookup, an ingress's event loop handles the table
only when it changes, and a change made through the manager reaches every ingress replica
within one call's latency, one made outside it (`serve deploy`) within `interval_s`.

Versions and the long poll: serve_app/versioned.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional

from serve_app.serving.registry import ModelEntry, entries_from_raw
from serve_app.versioned import Version, Versioned

logger = logging.getLogger("ray.serve")

Table = dict[str, ModelEntry]


class TablePublisher:
    def __init__(self, read_state: Callable[[], Awaitable[dict]], interval_s: float = 1.0):
        """`read_state`: the controller's `get_serve_instance_details` answer (raises when it
        cannot be had; the last table stays)."""
        self._read_state, self.interval_s = read_state, interval_s
        self.versions = Versioned()
        self.table: Table = {}
        self._reading = asyncio.Lock()
        self._poller: Optional[asyncio.Task] = None

    @property
    def version(self) -> Version:
        return self.versions.version

    @property
    def _has_read(self) -> bool:
        """Whether any read succeeded: the first one makes version 1, whatever it found."""
        return self.version[1] > 0

    async def refresh(self) -> None:
        """Read Serve's state now; a new version when the table changed."""
        async with self._reading:
            table = entries_from_raw(await self._read_state())
            if table != self.table or not self._has_read:
                self.table = table
                await self.versions.bump()

    async def publish(self) -> None:
        """A change just applied, to every watcher now rather than at the next poll; a failed read
        is logged (the change stands, and the next poll publishes it)."""
        try:
            await self.refresh()
        except Exception as exc:
            logger.warning("could not publish the routing table after a change: %s", exc)

    async def watch(self, since: Optional[Version], wait_s: float, fresh: bool = False) -> tuple[Version, Optional[Table]]:
        """(version, table) as soon as the table's version is not `since`, or after `wait_s`
        with (version, None) when nothing changed. `fresh` reads Serve's state first (a name
        the caller did not find may have started a moment ago)."""
        self._ensure_polling()
        if fresh or not self._has_read:
            await self.refresh()
        changed = await self.versions.wait_past(since, wait_s)
        return self.version, (self.table if changed else None)

    def _ensure_polling(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # the controller restarting: the last table stays, and serves
                logger.warning("could not read Serve's state for the routing table: %s", exc)

"""Group commit: changes that arrive while one is being applied are applied together.

Each management call reads Serve's whole config, edits it and applies it back, and the
controller's apply costs the same for one change as for twenty. Taking turns one change at
a time (a lock) would queue a burst of N starts behind N full applies; here, whoever gets
the turn applies every change waiting at that moment in one pass, and each caller gets its
own change's result. A change that `apply_batch` defers (a second change to a model already
changed in this pass) waits for the next pass, in its order.

Written here rather than taken from a library: Serve's `@serve.batch` batches calls of a
replica's method by size and wait time, but a change must not wait for a timer when nothing
else is being applied, and the batch must be taken only when the previous apply is done.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, TypeVar

Change = TypeVar("Change")
Pending = tuple[Any, asyncio.Future]
# Applies a batch: sets each future it takes (a result or an exception), returns those it defers.
ApplyBatch = Callable[[list[Pending]], Awaitable[list[Pending]]]


class GroupCommit(Generic[Change]):
    def __init__(self, apply_batch: ApplyBatch):
        self._apply_batch = apply_batch
        # Held by each pass. Whoever applies a change of its own outside a pass (resume.py's
        # bring-back of a whole set of models) holds it too, so no pass runs meanwhile.
        self.turn = asyncio.Lock()
        self._waiting: list[Pending] = []

    async def submit(self, change: Change) -> Any:
        """The result `apply_batch` gave this change (or raises its exception)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((change, done))
        try:
            while not done.done():
                # Shielded: a caller that hangs up must not cut short a pass applying others' changes.
                await asyncio.shield(asyncio.ensure_future(self._pass()))
        except asyncio.CancelledError:
            self._waiting = [p for p in self._waiting if p[1] is not done]  # not taken yet: never applied
            raise
        return done.result()

    async def _pass(self) -> None:
        async with self.turn:
            if not self._waiting:
                return
            batch, self._waiting = self._waiting, []
            try:
                deferred = await self._apply_batch(batch)
            except BaseException as exc:  # noqa: BLE001  (every caller of this pass gets it: none hangs)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                deferred = []
            self._waiting[:0] = deferred

"""An llm replica's fair queue: who gets the next of its `max_num_seqs` places.

Requests beyond the places wait here (Serve hands a replica up to `max_ongoing_requests`,
so a queue forms here rather than in each caller's handle, first come first served).
When a place frees, the highest band with a waiting request goes first and, within the
band, the key that has received the least weighted service on this model so far: the
Virtual Token Counter of Sheng et al., "Fairness in Serving Large Language Models" (OSDI
2024). A key's counter grows by its tokens (prompt and completion, each with its
weight) divided by the key's weight, as they are produced, so a long generation counts
while it runs. A key that had nothing here is lifted to the least counter of the keys
that have (or to the last one's that left, when none has), so idling earns no credit.

A place is kept for whoever comes next: while another key, or the same key in another band,
has been here within RECENT_S, no key takes the last `reserved_places` free places in a band,
so a key that comes to a full model starts at once rather than at the next place to free
(when every answer is as long as the others, all places free together, and that wait is a
whole answer's), and a batch does not take the place of its own key's chat. A key alone in
one band is not held back. And a band whose `share_beside_higher` is below 1 (`batch`: a
quarter) holds no more of the places than that while a higher band's requests came within
RECENT_S, so the engine's batch stays small beside people's traffic.

Bounded: a band holds at most `max_queue` waiting and each waits at most `max_wait_s`.
Past either, a request is refused: 429 when its key holds more than its weight's share
of this replica (its own doing), 503 with Retry-After when the model itself is full. A
full band does not turn away a key under its share while another holds more than its
own: that key's newest waiting request makes room (and gets the 429).
A request whose caller goes away leaves the queue at once (its task is cancelled).

Pure asyncio, no Ray: deployments/llm.py holds one per replica.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import time
from typing import AsyncIterator, Optional, Protocol

from serve_app.config.fairness import BANDS, FairQueueArgs
from serve_app.fairness.ticket import Ticket

RECENT_S = 60.0  # a key seen this recently may come back: places are kept free for it
OVERLOADED_RETRY_S = 1
OVER_SHARE_RETRY_S = 2


class QueueRefusal(Exception):
    """A request this replica will not hold. `over_share`: its key holds more than its share (429);
    else the model is full (503). Plain arguments, so that Ray carries it back to the caller."""

    def __init__(self, message: str, retry_after_s: int, over_share: bool):
        super().__init__(message, retry_after_s, over_share)
        self.message, self.retry_after_s, self.over_share = message, retry_after_s, over_share


class Observer(Protocol):
    """What the queue reports (fairness/metrics.py sends it to Prometheus)."""

    def waited(self, band: str, seconds: float) -> None: ...

    def depth(self, band: str, waiting: int) -> None: ...

    def served(self, key: str, prompt_tokens: int, completion_tokens: int) -> None: ...


@dataclasses.dataclass
class Waiter:
    ticket: Ticket
    granted: asyncio.Future
    arrived: float
    order: int


class Meter:
    """A running request's tokens, counted toward its key's service as they are produced."""

    def __init__(self, queue: "FairQueue", ticket: Ticket):
        self.queue, self.ticket = queue, ticket
        self.prompt_tokens = self.completion_tokens = 0

    def count(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The request's totals so far (a chunk's counts are cumulative)."""
        more_prompt = max(0, prompt_tokens - self.prompt_tokens)
        more_completion = max(0, completion_tokens - self.completion_tokens)
        if more_prompt or more_completion:
            self.queue.serve(self.ticket, more_prompt, more_completion)
            self.prompt_tokens += more_prompt
            self.completion_tokens += more_completion


class FairQueue:
    def __init__(self, places: int, args: FairQueueArgs, observer: Optional[Observer] = None, clock=time.monotonic):
        self.places, self.args, self.observer, self.clock = places, args, observer, clock
        self.running = 0
        self.running_by: collections.Counter[tuple[str, str]] = collections.Counter()  # (key, band) -> running
        self.seen: dict[tuple[str, str], float] = {}  # (key, band) -> when it last came
        self.waiting: dict[str, dict[str, collections.deque[Waiter]]] = {band: {} for band in BANDS}
        self.held: collections.Counter[str] = collections.Counter()  # key -> its requests running or waiting
        self.weights: dict[str, float] = {}  # key -> its weight, as its latest request gave it
        self.service: collections.defaultdict[str, float] = collections.defaultdict(float)
        self._floor = 0.0  # the counter of the last key to leave
        self._order = itertools.count()

    def waiting_in(self, band: str) -> int:
        return sum(len(q) for q in self.waiting[band].values())

    @contextlib.asynccontextmanager
    async def turn(self, ticket: Ticket) -> AsyncIterator[Meter]:
        """Holds one of the places while the block runs; waits for it first if none is free."""
        self._arrive(ticket)
        try:
            # A free place with no one waiting who may take it (_grant gives free places to those who may).
            if self._may_start(ticket.key, ticket.band):
                self._start(ticket)
                self._report_wait(ticket.band, 0.0)
                # Again at each request, though unchanged: Ray's metrics agent may not be up when
                # the replica sets its first 0 (the cold tier's Prometheus then saw no series).
                self._report_depth(ticket.band)
            else:
                await self._wait(ticket)
        except BaseException:
            self._depart(ticket)
            raise
        try:
            yield Meter(self, ticket)
        finally:
            self._stop(ticket)
            self._depart(ticket)
            self._grant()

    def serve(self, ticket: Ticket, prompt_tokens: int, completion_tokens: int) -> None:
        cost = prompt_tokens * self.args.prompt_weight + completion_tokens * self.args.completion_weight
        self.service[ticket.key] += cost / ticket.weight
        if self.observer:
            self.observer.served(ticket.key, prompt_tokens, completion_tokens)

    def resize(self, places: int) -> None:
        self.places = places
        self._grant()

    async def _wait(self, ticket: Ticket) -> None:
        limits = getattr(self.args, ticket.band)
        if self.waiting_in(ticket.band) >= limits.max_queue and not self._make_room(ticket):
            raise self._refusal(ticket, f"{limits.max_queue} requests of its band ({ticket.band}) are waiting already")
        waiter = Waiter(ticket, asyncio.get_running_loop().create_future(), self.clock(), next(self._order))
        self.waiting[ticket.band].setdefault(ticket.key, collections.deque()).append(waiter)
        self._report_depth(ticket.band)
        try:
            async with asyncio.timeout(limits.max_wait_s):
                await waiter.granted
        except BaseException as exc:
            granted = waiter.granted
            if granted.done() and not granted.cancelled() and granted.exception() is None:  # given a place as it left
                self._stop(ticket)
                self._grant()
            else:  # still waiting (or pushed out by _make_room)
                self._drop(waiter)
            if isinstance(exc, TimeoutError):
                raise self._refusal(ticket, f"no place came free within {limits.max_wait_s:g}s") from None
            raise

    def _make_room(self, ticket: Ticket) -> bool:
        """In a full band, the newest waiting request of the key furthest over its share is refused
        (429) to make room for `ticket`'s, when its key is under its own share; else False."""
        shares = self._shares()
        if self.held[ticket.key] > shares[ticket.key]:
            return False
        over = [k for k in self.waiting[ticket.band] if k != ticket.key and self.held[k] > shares[k]]
        if not over:
            return False
        key = max(over, key=lambda k: self.held[k] / self.weights[k])
        pushed = self.waiting[ticket.band][key][-1]
        self._drop(pushed)
        if pushed.granted.done():  # its caller left a moment ago: its place is room enough
            return True
        pushed.granted.set_exception(QueueRefusal(
            f"this API key holds {self.held[key]} of the requests this model's replica holds, more than its share "
            f"({shares[key]:.0f}), and its band is full: a key under its share took its place; retry later",
            OVER_SHARE_RETRY_S, True))
        return True

    def _holding(self) -> int:
        """Requests this replica holds: running and waiting."""
        return self.running + sum(self.waiting_in(b) for b in BANDS)

    def _shares(self) -> dict[str, float]:
        """Each key's share of what this replica holds, by weight."""
        holding, total = self._holding(), sum(self.weights[k] for k in self.held)
        return {k: holding * self.weights[k] / total for k in self.held}

    def _grant(self) -> None:
        """Free places to the waiting requests that come first."""
        while self.running < self.places and (waiter := self._next()) is not None:
            self._drop(waiter)
            if waiter.granted.done():  # its caller left; it is leaving the queue
                continue
            self._start(waiter.ticket)
            waiter.granted.set_result(None)
            self._report_wait(waiter.ticket.band, self.clock() - waiter.arrived)

    def _next(self) -> Optional[Waiter]:
        for band in BANDS:
            queues = self.waiting[band]
            ready = [k for k in queues if self._may_start(k, band)]
            if ready:
                key = min(ready, key=lambda k: (self.service[k], queues[k][0].order))
                return queues[key][0]
        return None

    def _may_start(self, key: str, band: str) -> bool:
        """A place is free for `key`'s request in `band`: while another key (or this key in another
        band) was here within RECENT_S, the last `reserved_places` free places are kept for it."""
        now = self.clock()
        recent = [who for who, seen in self.seen.items() if now - seen < RECENT_S]
        kept = self.args.reserved_places if any(who != (key, band) for who in recent) else 0
        if self.running >= self.places or self.running_by[(key, band)] >= self.places - min(kept, self.places - 1):
            return False
        share = getattr(self.args, band).share_beside_higher
        if share < 1 and any(BANDS.index(b) < BANDS.index(band) for _, b in recent):  # people are here
            in_band = sum(n for (_, b), n in self.running_by.items() if b == band)
            return in_band < max(1, int(self.places * share))
        return True

    def _start(self, ticket: Ticket) -> None:
        self.running += 1
        self.running_by[(ticket.key, ticket.band)] += 1

    def _stop(self, ticket: Ticket) -> None:
        who = (ticket.key, ticket.band)
        self.running -= 1
        self.running_by[who] -= 1
        if self.running_by[who] <= 0:
            del self.running_by[who]

    def _drop(self, waiter: Waiter) -> None:
        queues = self.waiting[waiter.ticket.band]
        queue = queues.get(waiter.ticket.key)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del queues[waiter.ticket.key]
            self._report_depth(waiter.ticket.band)

    def _arrive(self, ticket: Ticket) -> None:
        self.weights[ticket.key] = ticket.weight
        now = self.clock()
        self.seen[(ticket.key, ticket.band)] = now
        for gone in [who for who, seen in self.seen.items() if now - seen >= RECENT_S]:
            del self.seen[gone]
        if not self.held[ticket.key]:  # VTC's lift: idling earns no credit
            busy = [self.service[k] for k, n in self.held.items() if n > 0]
            self.service[ticket.key] = max(self.service[ticket.key], min(busy) if busy else self._floor)
        self.held[ticket.key] += 1

    def _depart(self, ticket: Ticket) -> None:
        self.held[ticket.key] -= 1
        if self.held[ticket.key] <= 0:
            del self.held[ticket.key]
            self._floor = self.service[ticket.key]

    def _refusal(self, ticket: Ticket, why: str) -> QueueRefusal:
        """429 when other keys are here too and this one holds more than its weight's share of
        what the replica holds (places and queue); else 503: the model is full."""
        share = self._shares()[ticket.key]
        if len(self.held) > 1 and self.held[ticket.key] > share:
            return QueueRefusal(f"this API key holds {self.held[ticket.key]} of the {self._holding()} requests this model's "
                                f"replica holds, more than its share ({share:.0f}), and {why}; retry later",
                                OVER_SHARE_RETRY_S, True)
        return QueueRefusal(f"the model is saturated: all {self.places} places are taken and {why}; retry later",
                            OVERLOADED_RETRY_S, False)

    def _report_wait(self, band: str, seconds: float) -> None:
        if self.observer:
            self.observer.waited(band, seconds)

    def _report_depth(self, band: str) -> None:
        if self.observer:
            self.observer.depth(band, self.waiting_in(band))

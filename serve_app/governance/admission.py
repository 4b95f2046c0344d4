"""An ingress replica's side of API keys: its copy of the keys, admitting each request
(who it is, what it may call, its limits: asking the governor before a limited key's
request), telling the governor the tokens after, and each key's metrics.

The error boundary (http/boundary.py) calls `admit` before every route, the access
log (http/access_log.py) calls `finished` when the response ends.

The copy follows the governor's through a long poll (`keys_since`, serve_app/versioned.py),
so a key revoked on any replica stops working on every one within one call's latency, and keys
that do not change cost no call. A key the copy does not hold is looked for in a
copy read after its request came, before it is refused: a key made a moment ago on
another replica works at once (reads are one at a time and spaced, so a flood of
wrong keys costs the governor one call per READ_GAP_S). A key without limits costs no call before its
request; a key with limits costs one per lease: the governor lends this replica a
share of what the key has left (governance/quotas.py), which it spends locally for up
to LEASE_S and then gives back what it did not use. Near a limit the share is one
request, so the count stays exact; the slack is that another replica may hold a few
unused requests of a key for up to a second, so a request can be refused that many
requests before the limit, and get them a second later. If the governor cannot
answer within GOVERNOR_TIMEOUT_S, a limited key's request is refused (503, retry):
limits are a promise to the cluster's other users, and Serve restarts the governor
within seconds; keys without limits are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Optional

from fastapi import Request
from ray.serve.handle import DeploymentHandle
from starlette._utils import get_route_path

from serve_app.errors import AuthError, ServeError
from serve_app.governance.key_metrics import KeyMetrics
from serve_app.governance.keys import BATCH_KEY, KeyBook, KeyRecord
from serve_app.governance.quotas import Refusal
from serve_app.http.context import note
from serve_app.versioned import Version, follow, supersedes

logger = logging.getLogger("ray.serve")

WATCH_S = 5.0  # how long the long poll on the governor's keys stays open when nothing changes
GIVE_BACK_EVERY_S = 0.5  # while this replica holds leases: how often expired ones are given back
LEASE_S = 1.0  # a lease's requests not used by then go back to the governor
COUNT_EVERY_S = 0.25  # how long the counts of keys without token limits gather before one call
# A governor that answers slowly is a busy node, not a lost one: at 1 s, CI's loaded 2-core
# machine refused limited keys' requests 503 (stop 45) while the governor was up. Five seconds
# covers a busy node and is about what Serve takes to replace a dead governor, so a request
# that waits that long is answered or told to retry, never held longer.
GOVERNOR_TIMEOUT_S = 5.0
READ_GAP_S = 0.05  # the least time between two reads of the keys for keys the copy did not hold


class RateLimited(ServeError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.message)
        self.retry_after_s, self.reason = refusal.retry_after_s, refusal.reason


class LimitsUnavailable(ServeError):
    status_code = 503
    error_type = "service_unavailable"
    retry_after_s = 1


@dataclasses.dataclass
class Lease:
    left: int  # requests this replica may still admit for the key without asking
    expires: float  # monotonic time


@dataclasses.dataclass
class Counts:
    requests: int = 0  # those not counted by a lease
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_model: dict[str, int] = dataclasses.field(default_factory=dict)  # tokens per model, for shares


class Admission:
    def __init__(self, governor: DeploymentHandle, configured: list[KeyRecord], open_docs: bool = False):
        self.open_docs = open_docs
        self.governor = governor
        self.book = KeyBook(configured, open_docs)
        self.metrics = KeyMetrics()
        self._watcher: Optional[asyncio.Task] = None
        self._giver: Optional[asyncio.Task] = None
        self._pending: set[asyncio.Task] = set()
        self._version: Optional[Version] = None  # the governor's version of the keys this copy holds
        self._read_at = 0.0  # when the last direct read that made this copy began (monotonic)
        self._reading: Optional[asyncio.Task] = None
        self.replica = uuid.uuid4().hex  # who asks the governor for leases
        self.leases: dict[str, Lease] = {}
        self._renewing: dict[str, asyncio.Lock] = {}
        self._unsent: dict[str, Counts] = {}
        self._sender: Optional[asyncio.Task] = None

    def ensure_watching(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_forever())

    def _install(self, version: Version, records: list[KeyRecord]) -> None:
        """The copy from a read or the watch, unless it holds a later one (versioned.supersedes)."""
        if supersedes(version, self._version):
            self.book, self._version = KeyBook(records, self.open_docs), version

    async def refresh(self) -> None:
        """Read the governor's keys now."""
        began = time.monotonic()
        version, records = await self.governor.keys.remote()
        self._install(version, records)
        self._read_at = max(self._read_at, began)

    async def _read_since(self, asked: float) -> None:
        """Returns once this replica's copy was read after `asked`; one read at a time."""
        while self._read_at < asked:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.get_running_loop().create_task(self._spaced_refresh())
            await asyncio.shield(self._reading)

    async def _spaced_refresh(self) -> None:
        await asyncio.sleep(max(0.0, self._read_at + READ_GAP_S - time.monotonic()))
        await self.refresh()

    async def _watch_forever(self) -> None:
        await follow(lambda since: self.governor.keys_since.remote(since, WATCH_S), lambda: self._version,
                     self._install, "the governor's API keys")

    async def admit(self, request: Request) -> None:
        """Before a route: 401 without a valid key (when keys are on), 403 without the route's
        scope, 429 over a limit, 503 when a limited key's limits cannot be checked."""
        if self._version is None:  # a new replica reads the keys made through the API before its first answer
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.refresh(), GOVERNOR_TIMEOUT_S)
        self.ensure_watching()
        batch_key = request.scope.get(BATCH_KEY)  # a batch's line, run by the batch runner as its key
        credentials = request.headers.get("authorization"), request.headers.get("x-api-key")
        if batch_key is not None:
            key = await self._look_up(lambda book: book.by_id(batch_key))
        elif KeyBook.presented(*credentials):
            key = await self._look_up(lambda book: book.identify(*credentials))
        else:
            key = None
        note(key=key)
        # The path as the app's routes match it: under a route prefix, Serve's proxy passes the
        # prefix as the ASGI root_path and keeps it in the path, which would leave /api/health
        # asking for a key and /<prefix>/api/keys open to an inference key. Starlette's own
        # function, so that this check and routing read one path.
        denied = self.book.check(get_route_path(request.scope), key, request.method)
        if denied:
            raise AuthError(*denied)
        if key is not None and key.limits.any:
            await self._within_limits(key)

    async def _look_up(self, find) -> Optional[KeyRecord]:
        """`find(book)` in this replica's copy; a key it does not hold is looked for again in a copy
        read after this request came (made a moment ago on another replica), then refused."""
        asked = time.monotonic()
        key = find(self.book)
        if key is None and self.book.enabled:
            with contextlib.suppress(Exception):  # then it is refused as unknown, as it was
                await asyncio.wait_for(self._read_since(asked), GOVERNOR_TIMEOUT_S)
            key = find(self.book)
        return key

    def finished(self, record: dict) -> None:
        """When a response ended: a served request's tokens count against its key."""
        key = record.get("key")
        if key is not None and record["status"] < 400:
            self.served(key, record.get("prompt_tokens", 0), record.get("completion_tokens", 0), record.get("model"))

    async def _within_limits(self, key: KeyRecord) -> None:
        if self._take(key.id):
            return
        async with self._renewing.setdefault(key.id, asyncio.Lock()):  # one governor call per key at once
            if not self._take(key.id):  # unless a request that waited here renewed it
                await self._renew(key)

    def _take(self, key_id: str) -> bool:
        lease = self.leases.get(key_id)
        if lease is None or lease.left <= 0 or time.monotonic() >= lease.expires:
            return False
        lease.left -= 1
        return True

    async def _renew(self, key: KeyRecord) -> None:
        """A new lease, this request its first; the last one's unused requests go back."""
        last = self.leases.pop(key.id, None)
        try:
            granted, refusal = await asyncio.wait_for(
                self.governor.lease.remote(key.id, self.replica, last.left if last else 0), GOVERNOR_TIMEOUT_S)
        except Exception as exc:
            self.metrics.refused(key.id, "governor_unavailable")
            raise LimitsUnavailable(f"this key's limits could not be checked ({type(exc).__name__}); retry") from exc
        if refusal is not None:
            self.metrics.refused(key.id, refusal.reason)
            raise RateLimited(refusal)
        self.leases[key.id] = Lease(left=granted - 1, expires=time.monotonic() + LEASE_S)
        if self._giver is None or self._giver.done():
            self._giver = asyncio.get_running_loop().create_task(self._give_back_while_leased())

    async def _give_back_while_leased(self) -> None:
        while self.leases:
            await asyncio.sleep(GIVE_BACK_EVERY_S)
            try:
                await self._give_back_expired()
            except Exception as exc:  # given back at the next round, or counted as used when the lease ends
                logger.warning("could not give back expired leases to the governor: %s", exc)

    async def _give_back_expired(self) -> None:
        """Expired leases' unused requests go back, so the key's other replicas can have them."""
        now = time.monotonic()
        for key_id in [k for k, lease in self.leases.items() if now >= lease.expires]:
            lease = self.leases.pop(key_id)
            if lease.left > 0:
                await self.governor.give_back.remote(key_id, lease.left)

    def served(self, key: KeyRecord, prompt_tokens: int, completion_tokens: int, model: Optional[str] = None) -> None:
        """After a request: its tokens count against the key. A key with a token limit tells
        the governor at once (the limit must see them); any other gathers its counts for
        COUNT_EVERY_S into one call, which is most of what a key cost each request."""
        self.metrics.served(key.id, prompt_tokens, completion_tokens)
        # A limited key's requests were counted by its lease.
        tokens = prompt_tokens + completion_tokens
        self._keep(key.id, Counts(0 if key.limits.any else 1, prompt_tokens, completion_tokens,
                                  {model: tokens} if model and tokens else {}))
        if key.limits.on_tokens:
            self._send(key.id)
        else:
            self._send_later()

    def _keep(self, key_id: str, counts: Counts) -> None:
        unsent = self._unsent.setdefault(key_id, Counts())
        unsent.requests += counts.requests
        unsent.prompt_tokens += counts.prompt_tokens
        unsent.completion_tokens += counts.completion_tokens
        for model, tokens in counts.by_model.items():
            unsent.by_model[model] = unsent.by_model.get(model, 0) + tokens

    def _send_later(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_soon())

    async def _send_soon(self) -> None:
        await asyncio.sleep(COUNT_EVERY_S)
        for key_id in list(self._unsent):
            self._send(key_id)

    def _send(self, key_id: str) -> None:
        """The key's gathered counts to the governor (the call runs on, not waited for)."""
        counts = self._unsent.pop(key_id)
        task = asyncio.get_running_loop().create_task(self._count(key_id, counts))
        self._pending.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._pending.discard)

    async def _count(self, key_id: str, counts: Counts) -> None:
        try:
            await self.governor.count.remote(key_id, counts.prompt_tokens, counts.completion_tokens, counts.requests,
                                             counts.by_model)
        except Exception as exc:  # the governor restarting (its node lost): sent again with the next counts
            self._keep(key_id, counts)
            self._send_later()
            logger.warning("could not count %d tokens for key %s yet (kept to send again): %s",
                           counts.prompt_tokens + counts.completion_tokens, key_id, exc)

"""The `governor` deployment: API keys and what each may use, shared by every ingress replica.

Why a deployment of its own: limits must hold across ingress replicas, so their
counters live in one place, and a single-replica Serve deployment (like `manager`)
is that place with Serve's health checks and restarts for free. Ingress replicas
keep a copy of the keys, each holding a long poll here (`keys_since`, serve_app/versioned.py)
that answers as soon as a key is made or revoked, so a revoked key stops everywhere within
one call's latency;
and they ask the governor only for keys that have limits: for a lease
of requests they then admit on their own (a share of what the key has left, smaller
as it nears a limit, one request at a time at the end), and with the tokens of
finished requests (at once for a key with a token limit, gathered for a quarter
second for any other).

Keys created through the admin routes are kept hashed in the router's store
(serve_app/kv.py: a SQLite file by default), so they survive restarts; today's token count of each
key is kept there too, written every few seconds. Keys from the serve config and the
environment are the operator's: listed, never revocable through the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Optional

from ray import serve

from serve_app.config.keys import KeySpec
from serve_app.errors import AuthError, Conflict, NotFound
from serve_app.governance.keys import NO_ADMIN_KEY, KeyRecord, hash_key
from serve_app.governance.quotas import KeyUsage, Refusal
from serve_app.governance.shares import ModelShares
from serve_app.kv import Store, gcs
from serve_app.versioned import Version, Versioned

logger = logging.getLogger("ray.serve")

KEYS = "key/"
DAY_USAGE = "key-day-usage/"
FLUSH_S = 5.0
ASKERS_S = 10.0  # an ingress replica counts among those sharing a key's allowance this long after asking


class KeyNotFound(NotFound):
    pass


class KeyNotRevocable(Conflict):
    pass


# No Serve access line per call: only ingress replicas call it, and their access log has the
# request; its own lines were a long poll's every 5 s on an idle `make run`'s terminal, and one per
# lease or count under load. A key made or revoked is logged below.
@serve.deployment(name="governor", num_replicas=1, max_ongoing_requests=10_000, ray_actor_options={"num_cpus": 0},
                  logging_config={"enable_access_log": False})
class Governor:
    def __init__(self, configured: list[KeyRecord], store: Store = gcs):
        self.store = store
        self.configured = {r.id: r for r in configured}
        self.usage: dict[str, KeyUsage] = {}
        self.shares = ModelShares()
        self.versions = Versioned()  # of the keys: every change is a new version
        self._load()
        self._dirty: set[str] = set()
        self._askers: dict[str, float] = {}  # ingress replica -> when it last asked for a lease
        self._flusher: Optional[asyncio.Task] = None

    async def reload(self) -> int:
        """Keys made through the API and today's counts, as the store has them again, after an
        imported backup wrote it (serve_app/state); the keys held."""
        held = self._load()
        await self.versions.bump()
        return held

    def _load(self) -> int:
        self.created = {r.id: r for r in map(KeyRecord.model_validate_json, self.store.items(KEYS).values())}
        for key_id, raw in self.store.items(DAY_USAGE).items():
            day = json.loads(raw)
            self.usage[key_id] = KeyUsage(day=day["day"], day_tokens=day["tokens"])
        return len(self.created)

    def _keys(self) -> dict[str, KeyRecord]:
        return {**self.created, **self.configured}

    def _usage(self, key_id: str) -> KeyUsage:
        return self.usage.setdefault(key_id, KeyUsage())

    async def keys(self) -> tuple[Version, list[KeyRecord]]:
        """Every key, hashed, and its version: what the ingress replicas check requests against."""
        return self.versions.version, list(self._keys().values())

    async def keys_since(self, since: Optional[Version], wait_s: float) -> tuple[Version, Optional[list[KeyRecord]]]:
        """(version, every key) as soon as the keys' version is not `since`, or (version, None)
        after `wait_s` when nothing changed: an ingress replica's long poll."""
        changed = await self.versions.wait_past(since, wait_s)
        return self.versions.version, (list(self._keys().values()) if changed else None)

    async def lease(self, key_id: str, replica: str, returned: int = 0) -> tuple[int, Optional[Refusal]]:
        """Requests `replica` (an ingress replica) may admit for the key on its own, after
        taking back `returned` it did not use of its last lease (quotas.KeyUsage.lease)."""
        now = time.monotonic()
        self._askers[replica] = now
        for gone in [r for r, seen in self._askers.items() if now - seen > ASKERS_S]:
            del self._askers[gone]
        key = self._keys().get(key_id)
        if key is None:  # revoked a moment ago
            return 0, Refusal(reason="revoked", message="this key was revoked", retry_after_s=3600)
        usage = self._usage(key_id)
        if returned:
            usage.give_back(returned)
        return usage.lease(key.limits, len(self._askers))

    async def give_back(self, key_id: str, unused: int) -> None:
        """An expired lease's requests that were not used."""
        self._usage(key_id).give_back(unused)

    async def count(self, key_id: str, prompt_tokens: int, completion_tokens: int, requests: int = 0,
                    by_model: Optional[dict[str, int]] = None) -> None:
        """Tokens of requests that ended (in all, and per model), and `requests` more requests to
        count (those of keys without limits: a limited key's were counted by its lease)."""
        self._usage(key_id).count_tokens(prompt_tokens, completion_tokens, requests=requests)
        for model, tokens in (by_model or {}).items():
            self.shares.add(key_id, model, tokens)
        self._dirty.add(key_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_S)
        dirty, self._dirty = self._dirty, set()
        for key_id in dirty:
            usage = self.usage[key_id]
            self.store.put(DAY_USAGE + key_id, json.dumps({"day": usage.day, "tokens": usage.day_tokens}))

    def _has_admin(self, besides: Optional[str] = None) -> bool:
        return any(r.scope == "admin" for r in self._keys().values() if r.id != besides)

    async def create(self, spec: KeySpec) -> tuple[KeyRecord, str]:
        """A new key: its record, and the key itself, which only this answer carries. Refused
        while no admin key exists (the ingress refuses first; this holds for any caller)."""
        if not self._has_admin():
            raise AuthError(403, NO_ADMIN_KEY)
        key = "sk-smmf-" + secrets.token_urlsafe(24)
        record = KeyRecord(id="key-" + secrets.token_hex(6), key_sha256=hash_key(key), **spec.model_dump())
        self.store.put(KEYS + record.id, record.model_dump_json())
        self.created[record.id] = record
        await self.versions.bump()
        logger.info("key %s created (scope %s)", record.id, record.scope)
        return record, key

    async def revoke(self, key_id: str) -> None:
        if key_id in self.configured:
            raise KeyNotRevocable(f"key '{key_id}' comes from the operator's config; remove it there")
        if key_id not in self.created:
            raise KeyNotFound(f"key '{key_id}' does not exist")
        if len(self._keys()) > 1 and not self._has_admin(besides=key_id):
            # Keys would stay on with nobody able to manage them: the lock-out #39 closed.
            raise KeyNotRevocable(f"key '{key_id}' is the last admin key, and other keys remain; "
                                  "create or configure another admin key first")
        del self.created[key_id]
        self.store.delete(KEYS + key_id)
        await self.versions.bump()
        logger.info("key %s revoked", key_id)

    async def report(self, key_id: Optional[str] = None) -> list[dict]:
        """Each key (or one) with what it may do and what it has used; never a key or its hash."""
        keys = self._keys()
        if key_id is not None and key_id not in keys:
            raise KeyNotFound(f"key '{key_id}' does not exist")
        chosen = [keys[key_id]] if key_id else sorted(keys.values(), key=lambda r: r.id)
        return [{**r.public(), "usage": self._usage(r.id).report()} for r in chosen]

    async def shares_of(self, key_id: str) -> dict:
        """The key's tokens on each model it used, and its share of that model's last minute."""
        if key_id not in self._keys():
            raise KeyNotFound(f"key '{key_id}' does not exist")
        return self.shares.report(key_id)

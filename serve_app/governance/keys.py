"""API keys: off when none are configured (as in DB-GPT), else a Bearer key on every route
but `/api/health`.

A key is known only by its SHA-256 (never the key itself in config, logs, metrics or
`serve config`): a presented key is hashed and looked up. Each key has an id, a scope
(`inference` calls models; `admin` also changes which models run and manages keys),
optionally the models it may call, and optionally limits (quotas.py, kept by the
governor deployment). Keys come from the ingress's args (`api_keys`, with
`key_sha256`), from an environment variable of plain keys (`SMMF_API_KEYS="k1:admin,k2"`,
hashed at start), and from the admin routes (`/api/keys`).
"""

from __future__ import annotations

import hashlib
import os
from typing import Optional

from serve_app.config.keys import ApiKey, KeySpec
from serve_app.http.docs import DOCS_PATHS

# With keys configured, these answer without one (a load balancer's health check); the API's
# docs and schema too, where the operator opens them (the router's `open_docs`).
OPEN_PATHS = ("/api/health",)
# Routes that change which models run, or manage keys: admin keys only.
ADMIN_PREFIXES = ("/api/worker/models/startup", "/api/worker/models/shutdown", "/api/worker/apply", "/api/keys",
                  "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/api/state")
# Creating or revoking a key needs an admin key even while keys are off: with none, the first
# anonymous key created would switch keys on and lock out everyone, the operator included.
KEY_MANAGEMENT = "/api/keys"
NO_ADMIN_KEY = (
    "managing API keys needs an operator's admin key, and this server has none: configure one "
    "(SMMF_API_KEYS='<key>:admin' in the environment, or the router's api_keys with scope: admin) "
    "and send it as 'Authorization: Bearer <key>'"
)


# The ASGI scope's entry naming the key (its id) a batch's line runs as: set by the batch runner
# in its own process (batches/runner.py), never from a request's headers.
BATCH_KEY = "smmf.batch_key"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRecord(KeySpec):
    id: str
    key_sha256: str

    def may_call(self, model: str) -> bool:
        return self.models is None or model in self.models

    def public(self) -> dict:
        """What the admin routes show: everything but the hash."""
        return self.model_dump(exclude={"key_sha256"})


def record_of(key: ApiKey) -> KeyRecord:
    """A configured key as the governor keeps it: hashed, with an id."""
    digest = key.key_sha256 or hash_key(key.key.get_secret_value())
    return KeyRecord(id=key.id or "config-" + digest[:8], key_sha256=digest,
                     **key.model_dump(include={"name", "scope", "models", "limits", "band", "weight"}))


def keys_from_env(value: Optional[str]) -> list[ApiKey]:
    keys = []
    for item in (value or "").split(","):
        key, _, scope = item.strip().partition(":")
        if key:
            keys.append(ApiKey(key=key, scope=scope or "inference", name="environment"))
    return keys


def configured_keys(keys: list[ApiKey], env_var: str) -> list[KeyRecord]:
    return [record_of(k) for k in list(keys) + keys_from_env(os.environ.get(env_var))]


class KeyBook:
    """The keys an ingress replica checks requests against (a copy of the governor's)."""

    def __init__(self, records: list[KeyRecord], open_docs: bool = False):
        self.open_paths = OPEN_PATHS + (DOCS_PATHS if open_docs else ())
        self._by_hash = {r.key_sha256: r for r in records}
        self._by_id = {r.id: r for r in records}  # a batch's lines name their key by id

    @property
    def enabled(self) -> bool:
        return bool(self._by_hash)

    @staticmethod
    def presented(authorization: Optional[str], api_key: Optional[str] = None) -> Optional[str]:
        """The key of `Authorization: Bearer <key>`, or of `x-api-key: <key>` (how Anthropic's
        clients send one)."""
        scheme, _, bearer = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and bearer.strip():
            return bearer.strip()
        return api_key.strip() if api_key and api_key.strip() else None

    def by_id(self, key_id: str) -> Optional[KeyRecord]:
        return self._by_id.get(key_id)

    def identify(self, authorization: Optional[str], api_key: Optional[str] = None) -> Optional[KeyRecord]:
        presented = self.presented(authorization, api_key)
        return self._by_hash.get(hash_key(presented)) if presented else None

    def check(self, path: str, key: Optional[KeyRecord], method: str = "GET") -> Optional[tuple[int, str]]:
        """None when the request may go on, else (status, message)."""
        if not self._by_hash and method in ("POST", "DELETE") and path.startswith(KEY_MANAGEMENT):
            return 403, NO_ADMIN_KEY
        if not self._by_hash or path in self.open_paths:
            return None
        if key is None:
            return 401, "missing or invalid API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>')"
        if path.startswith(ADMIN_PREFIXES) and key.scope != "admin":
            return 403, "this route changes which models run, or manages keys, and needs an admin key"
        return None

"""API keys: off when none are configured (as in DB-GPT), else a Bearer key per request.

Keys come from the router's config (`api_keys`) or from an environment variable
(`SMMF_API_KEYS="key1:admin,key2"`; a key without a scope is an inference key).
They are compared in constant time and never logged.
"""

import hmac
import os
from typing import Literal, Optional

from pydantic import BaseModel, SecretStr

Scope = Literal["inference", "admin"]

# Routes that reach a model or change which models run.
PROTECTED_PREFIXES = ("/v1", "/api/v1", "/api/worker")
# Routes that change which models run: admin keys only.
ADMIN_PREFIXES = ("/api/worker/models/startup", "/api/worker/models/shutdown", "/api/worker/apply")


class ApiKey(BaseModel):
    key: SecretStr
    scope: Scope = "inference"


def keys_from_env(value: Optional[str]) -> list[ApiKey]:
    keys = []
    for item in (value or "").split(","):
        key, _, scope = item.strip().partition(":")
        if key:
            keys.append(ApiKey(key=key, scope=scope or "inference"))
    return keys


class KeyChecker:
    def __init__(self, keys: list[ApiKey]):
        self._keys = [(k.key.get_secret_value().encode(), k.scope) for k in keys]

    @classmethod
    def from_config(cls, keys: list[ApiKey], env_var: str) -> "KeyChecker":
        return cls(list(keys) + keys_from_env(os.environ.get(env_var)))

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def scope(self, authorization: Optional[str]) -> Optional[Scope]:
        """The scope of the presented key, or None. Every key is compared, so timing tells nothing."""
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        found = None
        for key, scope in self._keys:
            if hmac.compare_digest(key, presented.strip().encode()):
                found = scope
        return found

    def check(self, path: str, authorization: Optional[str]) -> Optional[tuple[int, str]]:
        """None when the request may go on, else (status, message)."""
        if not self._keys or not path.startswith(PROTECTED_PREFIXES):
            return None
        scope = self.scope(authorization)
        if scope is None:
            return 401, "missing or invalid API key: send 'Authorization: Bearer <key>'"
        if path.startswith(ADMIN_PREFIXES) and scope != "admin":
            return 403, "this route changes which models run and needs an admin key"
        return None

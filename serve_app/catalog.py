"""Models stopped through the API, kept so that they can be started again by name.

Serve's config holds running applications only, so a stopped model's config
would be gone. DB-GPT's worker manager lists every model it can run
(`/models/supports`, `enabled: false` when stopped), and `dbgpt model start`
only starts a name from that list; so the manager keeps each stopped model's
last application config here, and `start` of that name brings it back as it was.

The configs live in Ray's GCS key-value store, where Serve keeps its own
checkpoint: they survive restarts of the router, the manager and Serve's
controller, and with GCS fault tolerance a restart of the head node. Ray has no
public KV API; `internal_kv` is what Serve itself uses.
"""

from __future__ import annotations

import json

from ray.experimental import internal_kv

NAMESPACE = "smmf-serve"
PREFIX = "stopped-model/"


def remember(name: str, app_config: dict) -> None:
    internal_kv._internal_kv_put(PREFIX + name, json.dumps(app_config), overwrite=True, namespace=NAMESPACE)


def forget(name: str) -> None:
    internal_kv._internal_kv_del(PREFIX + name, namespace=NAMESPACE)


def stopped() -> dict[str, dict]:
    """Every stopped model's last application config, by model name."""
    out = {}
    for key in internal_kv._internal_kv_list(PREFIX, namespace=NAMESPACE):
        raw = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
        if raw is not None:  # gone between list and get: started meanwhile
            out[key.decode()[len(PREFIX):]] = json.loads(raw)
    return out

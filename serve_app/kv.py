"""Where smmf-serve keeps what must outlive a replica: Ray's GCS key-value store.

Stopped models (lifecycle/catalog.py), API keys and their daily counts
(governance/governor.py) and the phases starting replicas report
(replica/progress.py) live there, beside Serve's own checkpoint: they survive
restarts of every replica and of Serve's controller, and with GCS fault tolerance a
restart of the head node. Ray has no public KV API; `internal_kv` is what Serve
itself uses. `MemoryStore` is the same interface in a dict, for an app run
in-process without Ray (tests/inprocess).
"""

from __future__ import annotations

from typing import Optional, Protocol

NAMESPACE = "smmf-serve"


class Store(Protocol):
    def put(self, key: str, value: str | bytes) -> None: ...

    def get(self, key: str) -> Optional[bytes]: ...

    def delete(self, key: str) -> None: ...

    def items(self, prefix: str) -> dict[str, bytes]:
        """{key without the prefix: value} of every key under `prefix`."""
        ...


class GcsStore:
    def put(self, key: str, value: str | bytes) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(key, value, overwrite=True, namespace=NAMESPACE)

    def get(self, key: str) -> Optional[bytes]:
        from ray.experimental import internal_kv

        return internal_kv._internal_kv_get(key, namespace=NAMESPACE)

    def delete(self, key: str) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(key, namespace=NAMESPACE)

    def items(self, prefix: str) -> dict[str, bytes]:
        from ray.experimental import internal_kv

        out = {}
        for key in internal_kv._internal_kv_list(prefix, namespace=NAMESPACE):
            raw = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
            if raw is not None:  # gone between list and get
                out[key.decode()[len(prefix):]] = raw
        return out


class MemoryStore:
    def __init__(self):
        self._data: dict[str, bytes] = {}

    def put(self, key: str, value: str | bytes) -> None:
        self._data[key] = value.encode() if isinstance(value, str) else value

    def get(self, key: str) -> Optional[bytes]:
        return self._data.get(key)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def items(self, prefix: str) -> dict[str, bytes]:
        return {k[len(prefix):]: v for k, v in self._data.items() if k.startswith(prefix)}


gcs = GcsStore()

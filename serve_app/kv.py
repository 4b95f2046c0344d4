"""Where smmf-serve keeps what must outlive a replica, behind one interface (`Store`).

The router's `state` setting chooses the store for what must outlive Ray itself: stopped
models (lifecycle/catalog.py), API keys and their daily counts (governance/governor.py),
stored Responses (dialects/responses/store.py).
- `SqliteStore`, the default: a file on local disk, which survives `make run` stopped and
  started again, a reboot, a `kill -9`; for one machine, or a cluster whose router
  application runs on one node (the head).
- `GcsStore`: Ray's GCS key-value store, beside Serve's own checkpoint; it survives every
  replica and Serve's controller, and the head node only with GCS fault tolerance (Redis).
  Ray has no public KV API; `internal_kv` is what Serve itself uses.
The phases starting replicas report (replica/progress.py) live in the GCS whatever the
setting: they matter only while Ray runs. `MemoryStore` is the interface in a dict, for an
app run in-process without Ray (tests/inprocess).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
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


def _setup(db: sqlite3.Connection, tries: int = 50) -> None:
    """WAL, full sync and the table, on a new connection. Several processes opening a new file
    at once (the governor, the manager and the ingress as the router starts) can find it
    locked while another switches it to WAL, which SQLite reports at once rather than through
    its busy timeout: such a connection waits a moment and tries again."""
    for attempt in range(tries):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


class SqliteStore:
    """A file on local disk: `make run`'s state, which a laptop's reboot or a Ctrl-C must not lose.

    Why SQLite: in the standard library, one file, atomic commits, and several processes of
    one node (the governor, the manager, ingress replicas) can share it. WAL mode with full
    sync: a put is on disk when it returns, and a process killed at any point leaves the last
    committed state, never half a value. Each process and thread opens its own connection
    (a connection cannot cross either); the store itself travels to replicas as its path.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))
        self._local = threading.local()

    def __reduce__(self):
        return SqliteStore, (self.path,)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # Made on first use, where the store is used: `build_app` names the store and the
            # replicas that hold it open the file, on their node, not the node that built the app.
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            # isolation_level None: each statement commits on its own; timeout: wait for another
            # process's write instead of failing.
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            _setup(db)
            self._local.db = db
        return db

    def put(self, key: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        self._db().execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, data))

    def get(self, key: str) -> Optional[bytes]:
        row = self._db().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def delete(self, key: str) -> None:
        self._db().execute("DELETE FROM kv WHERE key = ?", (key,))

    def items(self, prefix: str) -> dict[str, bytes]:
        # Keys are compared as text: everything from the prefix up to the prefix with its last
        # character's successor, which an index answers without scanning the table.
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None
        rows = (self._db().execute("SELECT key, value FROM kv WHERE key >= ? AND key < ?", (prefix, end))
                if end else self._db().execute("SELECT key, value FROM kv"))
        return {key[len(prefix):]: bytes(value) for key, value in rows}


gcs = GcsStore()


def open_store(kind: str, path: str) -> Store:
    """The store the router's `state` setting names."""
    return SqliteStore(path) if kind == "sqlite" else gcs

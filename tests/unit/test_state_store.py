"""The durable store (serve_app/kv.py's SqliteStore): what a put acknowledged is there after the
process holding it dies at any point, whole; several processes share one file and lose nothing."""

import os
import pickle
import random
import signal
import subprocess
import sys
import time

from serve_app.kv import SqliteStore, open_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_puts_gets_deletes_and_prefixes(tmp_path):
    store = SqliteStore(str(tmp_path / "state" / "state.db"))
    store.put("key/a", "1")
    store.put("key/b", b"\x00\xff")
    store.put("keyz", "not under key/")
    store.put("key/a", "2")  # overwritten, not doubled
    assert store.get("key/a") == b"2" and store.get("missing") is None
    assert store.items("key/") == {"a": b"2", "b": b"\x00\xff"}
    store.delete("key/a")
    assert store.items("key/") == {"b": b"\x00\xff"}
    again = pickle.loads(pickle.dumps(store))  # how a replica receives it: its path
    assert again.path == store.path and again.items("key/") == {"b": b"\x00\xff"}
    assert open_store("sqlite", store.path).get("keyz") == b"not under key/"


WRITER = """
import sys
from serve_app.kv import SqliteStore
store, name = SqliteStore(sys.argv[1]), sys.argv[2]
for i in range(int(sys.argv[3])):
    store.put(f"{name}/{i}", ("x" * 2000 + str(i)))  # large enough to span pages
    print(i, flush=True)  # acknowledged: the put returned
"""


def writer(path, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, path, name, str(count)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def test_a_writer_killed_at_random_points_loses_no_acknowledged_put(tmp_path):
    path = str(tmp_path / "state.db")
    rng = random.Random(39)
    for round_ in range(5):
        proc = writer(path, f"round{round_}", 100_000)
        time.sleep(rng.uniform(0.2, 0.8))
        proc.send_signal(signal.SIGKILL)
        acknowledged = [int(line) for line in proc.stdout.read().split()]
        proc.wait()
        assert acknowledged, "the writer wrote before it was killed"
        kept = SqliteStore(path).items(f"round{round_}/")
        assert set(range(len(acknowledged))) <= {int(k) for k in kept}, "an acknowledged put was lost"
        assert all(v == ("x" * 2000 + k).encode() for k, v in kept.items()), "a value was read back half-written"


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "state.db")  # a new file, which both open at once (as the router's replicas do)
    procs = [writer(path, name, 300) for name in ("a", "b")]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    store = SqliteStore(path)
    assert len(store.items("a/")) == len(store.items("b/")) == 300


def test_a_config_removes_a_model_started_through_the_api_by_naming_it(tmp_path):
    """The router's `remove_models` (lifecycle/resume.py): the named model is no longer kept as
    started, and is remembered as stopped with its last config; the others stay kept."""
    from serve_app.lifecycle import catalog
    from serve_app.lifecycle.resume import forget_removed

    store = SqliteStore(str(tmp_path / "state.db"))
    catalog.record_running(store, "kept", {"name": "kept", "args": {"source": "simulated"}})
    catalog.record_running(store, "gone", {"name": "gone", "args": {"source": "simulated"}})
    forget_removed(store, ["gone", "never-started"])
    assert set(catalog.running(store)) == {"kept"}
    assert catalog.stopped(store) == {"gone": {"name": "gone", "args": {"source": "simulated"}}}

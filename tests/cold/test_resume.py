"""`make run` stopped and started again keeps what was made through the API (#32): models started,
keys made and their tokens today, from the state file (serve_app/kv.py), checked from outside the
process. The stop comes while a client is making keys and starting models, at a random moment
(its seed printed): every change acknowledged before it is kept.

kill -9 is followed by a start, which must bring every change back from the file. Ctrl-C, the
tier's last test, is followed by a read of the file: what a start makes of the file is the same
after either stop, and one `make run` start fewer is a minute of both cores beside the other lanes."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from helpers import LLM, wait_until

from serve_app.governance.governor import DAY_USAGE, FLUSH_S, KEYS
from serve_app.kv import SqliteStore
from serve_app.lifecycle.catalog import RUNNING

SIMULATED = {"source": "simulated", "engine": "simulated", "simulated_tokens_per_s": 200}


def write_until(stop: threading.Event, client: httpx.Client, tag: str, acked: dict) -> None:
    """Keys made one after another, and two models started (202: applied, not yet running), until
    `stop`; what the server acknowledged goes into `acked`. A call cut by the stop is not."""
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if i % 3 == 2 and len(acked["models"]) < 2:  # the second and fifth writes
                name = f"{tag}-m{i}"
                r = client.post("/api/worker/apply", timeout=30, json={
                    "model": name, "worker_type": "llm", "apply_type": "start", "wait": False, "params": SIMULATED})
                if r.status_code == 202:
                    acked["models"].append(name)
            r = client.post("/api/keys", timeout=10, json={"name": f"{tag}-{i}", "models": [LLM]})
            if r.status_code == 201:
                acked["keys"].append(r.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def chat(base_url: str, key: str, model: str) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/chat/completions", timeout=60, headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]})


# `make stress` kills it more times in a row (each at its own random moment): MORE_KILLS more kill -9s.
MORE_KILLS = int(os.environ.get("MORE_KILLS", "0"))


@dataclass
class Stopped:
    """What was made before `make run` was stopped: `name` (a model) and `made` (a key for it and
    the llm) before the writes began, `first` (an answer counted to that key), and `acked`: the
    keys and models the server acknowledged amid the writes."""
    name: str
    made: dict
    first: httpx.Response
    acked: dict
    offset: int  # where `make run`'s log was when the writes began


def stop_amid_writes(laptop, how: signal.Signals) -> Stopped:
    base_url, client, log = laptop
    tag = f"{how.name.lower()}-{random.randrange(10**4)}"  # each kill's own names (`make stress` repeats them)
    name = f"resumed-{tag}"
    started = client.post("/api/worker/apply", timeout=120, json={
        "model": name, "worker_type": "llm", "apply_type": "start", "params": SIMULATED})
    assert started.json()["success"], started.text
    made = client.post("/api/keys", json={"name": name, "models": [name, LLM]}).json()
    first = chat(base_url, made["key"], name)
    assert first.status_code == 200
    time.sleep(FLUSH_S + 1)  # the governor writes a key's tokens today every FLUSH_S seconds

    before, began = len(log.read_text()), time.monotonic()
    acked, stop = {"keys": [], "models": []}, threading.Event()
    writes = httpx.Client(base_url=base_url, headers=client.headers)
    writer = threading.Thread(target=write_until, args=(stop, writes, f"amid-{tag}", acked))
    writer.start()
    seed = random.randrange(10**6)
    time.sleep(random.Random(seed).uniform(1.0, 3.0))
    print(f"\n[cold] {how.name} amid writes (seed {seed})")
    assert laptop.stop(how), f"make run was still running 90 s after {how.name}"
    stop.set()
    writer.join(timeout=60)
    writes.close()
    print(f"[cold] make run stopped by {how.name} {time.monotonic() - began:.1f}s after the writes began")
    assert acked["keys"], "the writer made no key before the stop"
    return Stopped(name, made, first, acked, before)


@pytest.mark.parametrize("how", [signal.SIGKILL] * (1 + MORE_KILLS),
                         ids=["kill-9"] + [f"kill-9-again-{i + 1}" for i in range(MORE_KILLS)])
def test_make_run_started_after_kill_9_brings_back_models_keys_and_todays_tokens(laptop, how):
    stopped = stop_amid_writes(laptop, how)
    began = time.monotonic()
    laptop.start()
    print(f"[cold] started again: every default model ready in {time.monotonic() - began:.1f}s")
    base_url, client, log = laptop
    since = log.read_text()[stopped.offset:]
    assert "adds the models started through the API before: " in since and stopped.name in since
    deadline = time.monotonic() + 120
    while (answer := chat(base_url, stopped.made["key"], stopped.name)).status_code != 200:  # resumed as Serve runs
        assert time.monotonic() < deadline, answer.text
        time.sleep(1)
    usage = client.get(f"/api/keys/{stopped.made['id']}").json()["usage"]
    assert usage["today"]["tokens"] >= stopped.first.json()["usage"]["total_tokens"], usage

    # Every change acknowledged before the stop, whole: each key listed and answering, each model back.
    acked = stopped.acked
    listed = {k["id"] for k in client.get("/api/keys").json()}
    assert {k["id"] for k in acked["keys"]} <= listed, f"acknowledged keys lost: {len(acked['keys'])} made"
    assert all(chat(base_url, k["key"], LLM).status_code == 200 for k in acked["keys"][-3:])
    for model in acked["models"]:
        wait_until(lambda m=model: laptop.statuses().get(m, {}).get("phase") == "ready", 120,
                   f"{model}, acknowledged before the stop")
    print(f"[cold] acknowledged before the stop and back after: {len(acked['keys'])} keys, {acked['models']}")

    for model in [stopped.name, *acked["models"]]:
        assert client.post("/api/worker/apply", timeout=120, json={"model": model, "apply_type": "stop",
                                                                   "delete_after": True}).json()["success"]
    for key in [stopped.made, *acked["keys"]]:
        client.delete(f"/api/keys/{key['id']}")


def test_ctrl_c_stops_every_replica_in_its_grace_and_the_state_file_keeps_every_change(laptop):
    """The tier's last test: it ends the tier's `make run`."""
    stopped = stop_amid_writes(laptop, signal.SIGINT)
    since = laptop.log_path.read_text()[stopped.offset:]
    # Ctrl-C stops every replica as Serve asks, none held until its grace ran out and killed
    # (an ingress's long poll on the manager once held the manager so, 20 s at every Ctrl-C).
    assert "did not shut down after grace period" not in since, since[:3000]
    # Serve deletes every application as it shuts down: none of that may read as a model stopped.
    store = SqliteStore(str(laptop.state_path))
    running = store.items(RUNNING)
    assert {stopped.name, *stopped.acked["models"]} <= running.keys(), sorted(running)
    assert {k["id"] for k in [stopped.made, *stopped.acked["keys"]]} <= store.items(KEYS).keys()
    today = json.loads(store.get(DAY_USAGE + stopped.made["id"]))
    assert today["tokens"] >= stopped.first.json()["usage"]["total_tokens"], today

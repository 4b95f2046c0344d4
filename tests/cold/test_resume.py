"""`make run` stopped and started again keeps what was made through the API (#32): models started,
keys made and their tokens today, from the state file (serve_app/kv.py), checked from outside the
process. The stop comes while a client is making keys and starting models, at a random moment
(its seed printed): every change acknowledged before it is back after. It runs last in the tier:
it restarts the tier's `make run`."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import httpx
import pytest
from helpers import LLM, wait_until

from serve_app.governance.governor import FLUSH_S

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


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL] + [signal.SIGKILL] * MORE_KILLS,
                         ids=["ctrl-c", "kill-9"] + [f"kill-9-again-{i + 1}" for i in range(MORE_KILLS)])
def test_a_restarted_make_run_brings_back_models_keys_and_todays_tokens(laptop, how):
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
    stopped = time.monotonic()
    laptop.start()
    print(f"\n[cold] make run stopped by {how.name} in {stopped - began:.1f}s, started again: every model ready "
          f"in {time.monotonic() - stopped:.1f}s")
    since = log.read_text()[before:]
    assert "adds the models started through the API before: " in since and name in since
    # Ctrl-C stops every replica as Serve asks, none held until its grace ran out and killed
    # (an ingress's long poll on the manager once held the manager so, 20 s at every Ctrl-C).
    assert "did not shut down after grace period" not in since, since[:3000]
    client = laptop.client
    deadline = time.monotonic() + 120
    while (answer := chat(base_url, made["key"], name)).status_code != 200:  # the manager resumes it as Serve runs
        assert time.monotonic() < deadline, answer.text
        time.sleep(1)
    usage = client.get(f"/api/keys/{made['id']}").json()["usage"]
    assert usage["today"]["tokens"] >= first.json()["usage"]["total_tokens"], usage  # what the store keeps of counts

    # Every change acknowledged before the stop, whole: each key listed and answering, each model back.
    assert acked["keys"], "the writer made no key before the stop"
    listed = {k["id"] for k in client.get("/api/keys").json()}
    assert {k["id"] for k in acked["keys"]} <= listed, f"acknowledged keys lost: {len(acked['keys'])} made"
    assert all(chat(base_url, k["key"], LLM).status_code == 200 for k in acked["keys"][-3:])
    for model in acked["models"]:
        wait_until(lambda m=model: laptop.statuses().get(m, {}).get("phase") == "ready", 120,
                   f"{model}, acknowledged before the stop")
    print(f"[cold] acknowledged before the stop and back after: {len(acked['keys'])} keys, {acked['models']}")

    for model in [name, *acked["models"]]:
        assert client.post("/api/worker/apply", timeout=120, json={"model": model, "apply_type": "stop",
                                                                   "delete_after": True}).json()["success"]
    for key in [made, *acked["keys"]]:
        client.delete(f"/api/keys/{key['id']}")

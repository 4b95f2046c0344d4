"""`make run` stopped and started again keeps what was made through the API (#32): models started,
keys made and their tokens today, from the state file (serve_app/kv.py), checked from outside the
process. It runs last in the tier: it restarts the tier's `make run`."""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from helpers import LLM

from serve_app.governance.governor import FLUSH_S

SIMULATED = {"source": "simulated", "engine": "simulated", "simulated_tokens_per_s": 200}


def chat(base_url: str, key: str, model: str) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/chat/completions", timeout=60, headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_restarted_make_run_brings_back_models_keys_and_todays_tokens(laptop, how):
    base_url, client, log = laptop
    name = f"resumed-{how.name.lower()}"
    started = client.post("/api/worker/apply", timeout=120, json={
        "model": name, "worker_type": "llm", "apply_type": "start", "params": SIMULATED})
    assert started.json()["success"], started.text
    made = client.post("/api/keys", json={"name": name, "models": [name, LLM]}).json()
    first = chat(base_url, made["key"], name)
    assert first.status_code == 200
    time.sleep(FLUSH_S + 1)  # the governor writes a key's tokens today every FLUSH_S seconds

    before, began = len(log.read_text()), time.monotonic()
    assert laptop.stop(how), f"make run was still running 90 s after {how.name}"
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
    assert client.post("/api/worker/apply", timeout=120, json={"model": name, "apply_type": "stop"}).json()["success"]
    client.delete(f"/api/keys/{made['id']}")

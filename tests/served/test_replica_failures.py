"""Bad days for replicas: clients that hang up, replicas that die, models that stop mid-request.

Each runs on a simulated llm of its own (no weights, starts in seconds) at 20 tokens/s,
so a request is in flight long enough to be cut, and the default models are never killed.
"""

import json
import threading
import time

import httpx
import pytest
from helpers import (
    CHAT,
    apply,
    details,
    hang_up_mid_stream,
    kill_one_replica,
    ongoing,
    start_simulated,
    wait_until_idle,
)

SLOW = {"simulated_tokens_per_s": 20}


@pytest.fixture(scope="module")
def slow_model(client):
    assert start_simulated(client, "slow-sim", **SLOW)["success"]
    yield "slow-sim"
    apply(client, model="slow-sim", apply_type="stop")


# --- a client that hangs up cancels its generation -------------------------------


@pytest.mark.parametrize("path", ["/api/worker/generate_stream", CHAT])
def test_disconnect_mid_stream_frees_the_replica(client, base_url, path, slow_model):
    hang_up_mid_stream(base_url, path, slow_model)
    wait_until_idle(slow_model, 2.0)
    out = client.post("/api/worker/generate", json={"model": slow_model, "prompt": "Hi", "max_new_tokens": 3}).json()
    assert out["error_code"] == 0 and out["usage"]["completion_tokens"] == 3


# --- a replica that dies -------------------------------------------------------------


def test_stream_cut_by_a_dying_replica_ends_with_an_error(base_url, client, slow_model):
    body = {"model": slow_model, "max_tokens": 400, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    lines = []
    with httpx.Client(base_url=base_url, timeout=120) as http:
        with http.stream("POST", CHAT, json=body) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if len(lines) == 3:
                    kill_one_replica(slow_model, "llm")
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2][len("data: "):])
    assert "error" in last, "a cut stream never looks complete"
    assert not any('"finish_reason": "length"' in l or '"finish_reason": "stop"' in l for l in lines)
    # Serve replaces the replica; the model answers again within a minute.
    deadline = time.monotonic() + 60
    while client.post("/api/worker/generate", json={"model": slow_model, "prompt": "Hi", "max_new_tokens": 2}).json()["error_code"]:
        assert time.monotonic() < deadline, "the replica was not replaced"
        time.sleep(1)


def test_a_dying_replica_fails_only_the_request_it_was_running(client):
    """Two replicas taking one request each, six clients keeping both busy and four
    requests waiting in the router. One replica is killed: the request it was running
    fails with an error naming the death; every request that had not started on it
    (waiting, or sent to it as it died) is served by the healthy replica. Serve then
    replaces the replica within 60 s and every request succeeds."""
    assert start_simulated(client, "fragile", num_replicas=2, max_ongoing_requests=1, **SLOW)["success"]
    results, stop = [], threading.Event()  # (time sent, error_code, text)
    body = {"model": "fragile", "prompt": "Once upon a time", "max_new_tokens": 12, "temperature": 0}

    def traffic():
        deadline = time.monotonic() + 150
        while not stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            out = client.post("/api/worker/generate", json=body).json()
            results.append((sent, out["error_code"], out["text"]))

    def running_besides(killed: str) -> int:
        replicas = details()["applications"]["fragile"]["deployments"]["llm"]["replicas"]
        return sum(r["state"] == "RUNNING" and r["replica_id"] != killed for r in replicas)

    senders = [threading.Thread(target=traffic) for _ in range(6)]
    try:
        [t.start() for t in senders]
        deadline = time.monotonic() + 30
        while ongoing("fragile") != [1, 1]:  # both replicas mid-request, the rest waiting
            assert time.monotonic() < deadline, ongoing("fragile")
            time.sleep(0.05)
        killed_at = time.monotonic()
        killed = kill_one_replica("fragile", "llm")
        while running_besides(killed) < 2:
            assert time.monotonic() - killed_at < 60, "the replica was not replaced in 60 s"
            time.sleep(1)
        replaced_at = time.monotonic()
        time.sleep(6)
        stop.set()
        [t.join() for t in senders]
        failures = [text for _, code, text in results if code != 0]
        served_meanwhile = [code for sent, code, _ in results if killed_at < sent < replaced_at]
        assert len(failures) <= 1, failures  # at most the one running on the killed replica
        assert all("died" in f.lower() or "actor" in f.lower() for f in failures), failures
        print(f"dying replica: {len(results)} requests, {len(failures)} failed, {len(served_meanwhile)} sent "
              f"while it was replaced ({replaced_at - killed_at:.0f} s)")
        assert served_meanwhile and set(served_meanwhile) == {0}, "the healthy replica served meanwhile"
        settled = [code for sent, code, _ in results if sent > replaced_at]
        assert len(settled) > 5 and set(settled) == {0}, settled
    finally:
        stop.set()
        apply(client, model="fragile", worker_type="llm", apply_type="stop")


# --- graceful shutdown --------------------------------------------------------------

def test_requests_in_flight_finish_when_their_model_stops(client, base_url):
    assert start_simulated(client, "llm-draining", **SLOW)["success"]
    frames, result = [], {}

    def stream():
        with httpx.Client(base_url=base_url, timeout=120) as http:
            with http.stream("POST", "/api/worker/generate_stream",
                             json={"model": "llm-draining", "prompt": "Once upon a time", "max_new_tokens": 48, "temperature": 0}) as r:
                for part in r.iter_bytes():
                    frames.append(part)

    reader = threading.Thread(target=stream)
    reader.start()
    deadline = time.monotonic() + 30
    while not frames:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result.update(apply(client, model="llm-draining", worker_type="llm", apply_type="stop"))
    reader.join(timeout=120)
    outputs = [json.loads(f) for f in b"".join(frames).split(b"\0") if f]
    assert result["success"]
    assert outputs[-1]["error_code"] == 0 and outputs[-1]["finish_reason"] == "length", outputs[-1]
    after = client.post("/api/worker/generate", json={"model": "llm-draining", "prompt": "x"}).json()
    assert after["error_code"] == 1 and "does not exist" in after["text"]

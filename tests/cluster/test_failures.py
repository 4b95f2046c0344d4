"""Parts of the cluster dying under traffic: a GPU worker node (its raylet killed without
grace), Serve's controller, the ingress replica and the governor. What must hold: no stream
of a lost node ends looking complete, other models are untouched, the lost model answers
again once Serve has replaced it (time measured), and nothing kept is lost."""

import json
import threading
import time

import httpx
import pytest
from cluster_calls import ADMIN_KEY, EMBEDDER, LLM, SIMULATED, apply, chat, details, replica_nodes
from harness import wait_for

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def stream_chat(base_url: str, model: str, out: list) -> None:
    """One long OpenAI stream: its lines, then how it ended."""
    body = {"model": model, "max_tokens": 200, "stream": True, "messages": [{"role": "user", "content": "a story"}]}
    with httpx.Client(base_url=base_url, timeout=120, headers=ADMIN) as http, \
            http.stream("POST", "/v1/chat/completions", json=body) as r:
        out.append([line for line in r.iter_lines() if line])


def stream_dbgpt(base_url: str, model: str, out: list) -> None:
    body = {"model": model, "prompt": "a story", "max_new_tokens": 200}
    with httpx.Client(base_url=base_url, timeout=120, headers=ADMIN) as http:
        raw = http.post("/api/worker/generate_stream", json=body).content
    out.append([json.loads(f) for f in raw.split(b"\0") if f])


def embed_until(client, stop: threading.Event, codes: list) -> None:
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        codes.append(client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["still here"]}).status_code)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def kept(client):
    """Things that must outlive any failure: a model started through the API (then stopped,
    so it is startable by name) and a key with its usage."""
    apply(client, model="kept-model", worker_type="llm", apply_type="start",
          params={**SIMULATED, "num_cpus": 0.1, "num_gpus": 0})
    apply(client, model="kept-model", apply_type="stop")
    key = client.post("/api/keys", json={"name": "survivor"}).json()
    with httpx.Client(base_url=str(client.base_url), headers={"Authorization": f"Bearer {key['key']}"}) as user:
        assert chat(user, LLM).status_code == 200
    time.sleep(6)  # the governor writes today's counts to the GCS every 5 s
    usage = client.get(f"/api/keys/{key['id']}").json()["usage"]
    assert usage["completion_tokens"] > 0
    return {"key": key, "usage": usage}


def assert_kept(client, kept) -> None:
    supports = client.get("/api/worker/models/supports").json()[0]["models"]
    assert "kept-model" in {m["model"] for m in supports}, "a model stopped through the API is still startable"
    usage = client.get(f"/api/keys/{kept['key']['id']}").json()["usage"]
    assert usage["completion_tokens"] >= kept["usage"]["completion_tokens"], "today's tokens are kept"
    with httpx.Client(base_url=str(client.base_url), headers={"Authorization": f"Bearer {kept['key']['key']}"}) as user:
        assert user.get("/v1/models").status_code == 200, "the key still works"


def test_a_gpu_node_dies_mid_traffic(cluster, client, kept):
    [node] = replica_nodes(LLM)
    openai_streams, dbgpt_streams, embed_codes, stop = [], [], [], threading.Event()
    threads = [threading.Thread(target=stream_chat, args=(cluster.base_url, LLM, openai_streams)) for _ in range(2)]
    threads += [threading.Thread(target=stream_dbgpt, args=(cluster.base_url, LLM, dbgpt_streams))]
    threads += [threading.Thread(target=embed_until, args=(client, stop, embed_codes))]
    for t in threads:
        t.start()
    time.sleep(2)  # the streams are under way on the GPU node
    killed_at = time.monotonic()
    cluster.kill_raylet(node)
    for t in threads[:3]:
        t.join(timeout=120)
    # New requests to the lost model: 503 with Retry-After while it has no replica, or an
    # answer once Serve has replaced it on a node the autoscaler adds.
    refusals = []

    def answered():
        r = chat(client, LLM)
        if r.status_code == 503:
            refusals.append(r)
        return r.status_code == 200 and set(replica_nodes(LLM)) - {node}

    wait_for(answered, 120, 0.5, "the lost model to answer again")
    recovered = time.monotonic() - killed_at
    stop.set()
    threads[3].join(timeout=30)
    print(f"\n[cluster] GPU node killed: the lost model answered again after {recovered:.1f}s "
          f"({len(refusals)} requests got 503 meanwhile); {len(embed_codes)} embeddings on the head meanwhile")

    assert len(openai_streams) == 2 and len(dbgpt_streams) == 1
    for lines in openai_streams:
        assert lines[-1] == "data: [DONE]"
        last = json.loads(lines[-2][6:])
        assert "error" in last, "a stream cut by its node's death ends with an error frame"
        assert not any('"finish_reason":"stop"' in line or '"finish_reason":"length"' in line for line in lines)
    assert dbgpt_streams[0][-1]["error_code"] == 1 and dbgpt_streams[0][-1]["finish_reason"] is None
    assert embed_codes and set(embed_codes) == {200}, "a model on another node is not affected"
    assert all(r.headers.get("retry-after") for r in refusals)
    assert_kept(client, kept)


def test_the_serve_controller_killed_under_traffic(client, kept):
    import ray

    codes, stop = [], threading.Event()
    traffic = threading.Thread(target=embed_until, args=(client, stop, codes))
    traffic.start()
    time.sleep(1)
    ray.kill(ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve"), no_restart=False)
    # A management call while it is down: done, or a clear 503 to retry, never a hang.
    started = time.monotonic()
    during = client.post("/api/worker/apply", json={"model": "kept-model", "apply_type": "start"}, timeout=60)
    took = time.monotonic() - started
    time.sleep(3)
    stop.set()
    traffic.join(timeout=30)
    print(f"\n[cluster] controller killed: management call answered {during.status_code} in {took:.1f}s")
    assert during.status_code in (200, 503) and took < 60, during.text
    assert codes and set(codes) == {200}, "requests to running models do not fail"
    wait_for(lambda: client.get("/api/models/status").status_code == 200, 60, 0.5, "the status route")
    if during.status_code == 200:
        apply(client, model="kept-model", apply_type="stop")
    assert_kept(client, kept)


@pytest.mark.parametrize("deployment", ["router", "governor"])
def test_the_ingress_and_the_governor_come_back_and_limits_hold(cluster, client, deployment):
    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    key = client.post("/api/keys", json={"limits": {"requests_per_minute": 3}}).json()
    replica = next(r for r in details()["applications"]["router"]["deployments"][deployment]["replicas"]
                   if r["state"] == "RUNNING")
    killed_at = time.monotonic()
    ray.kill(ray.get_actor(replica["actor_name"], namespace=SERVE_NAMESPACE), no_restart=True)

    def replaced():
        running = [r for r in details()["applications"]["router"]["deployments"][deployment]["replicas"]
                   if r["state"] == "RUNNING"]
        return running and running[0]["replica_id"] != replica["replica_id"]

    wait_for(replaced, 120, 0.5, f"a new {deployment} replica")
    wait_for(lambda: client.get("/api/health").status_code == 200, 60, 0.5, "the ingress")
    print(f"\n[cluster] {deployment} replica killed: replaced after {time.monotonic() - killed_at:.1f}s")
    with httpx.Client(base_url=cluster.base_url, timeout=60, headers={"Authorization": f"Bearer {key['key']}"}) as user:
        codes = [chat(user, LLM).status_code for _ in range(5)]
    assert codes.count(200) == 3 and codes.count(429) == 2, codes

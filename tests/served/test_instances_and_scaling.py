"""DB-GPT's controller API from Serve's state; routing, backpressure, GPUs and autoscaling."""

import concurrent.futures as cf
import time
from collections import Counter

import pytest
from helpers import EMBEDDER, LLM, MINILM, apply, ask, details, start_simulated

MODEL_INSTANCE_KEYS = {
    "model_name", "host", "port", "weight", "check_healthy", "healthy", "enabled", "prompt_template", "last_heartbeat",
}


def test_controller_api_speaks_dbgpt(client, base_url):
    everything = client.get("/api/controller/models").json()
    assert {i["model_name"] for i in everything} >= {f"{LLM}@llm", f"{EMBEDDER}@text2vec"}
    only = client.get("/api/controller/models", params={"model_name": f"{LLM}@llm", "healthy_only": True}).json()
    assert len(only) == 1
    [instance] = only
    assert set(instance) == MODEL_INSTANCE_KEYS
    assert instance["healthy"] is True and instance["host"] == "127.0.0.1" and str(instance["port"]) in base_url
    assert instance["last_heartbeat"].startswith("20")
    assert client.get("/api/controller/models", params={"model_name": f"{LLM}@text2vec"}).json() == []
    assert client.post("/api/controller/heartbeat", json={"model_name": "x"}).json() is True
    assert client.post("/api/controller/models", json={"model_name": "x"}).json() is True
    assert client.get("/api/health").json() == {"status": "ok"}


def serving_replicas(client, model: str, n: int = 40) -> Counter:
    """Which replica answered each of n concurrent metadata calls."""
    def one(_):
        r = client.post("/api/worker/model_metadata", json={"model": model})
        return r.json()["metadata"]["replica_id"]

    with cf.ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(one, range(n)))


@pytest.mark.parametrize("routing", ["least_loaded", "random"])
def test_requests_spread_over_two_replicas(client, routing):
    name = f"spread-{routing.replace('_', '-')}"
    out = start_simulated(client, name, num_replicas=2, routing=routing)
    try:
        assert out["success"], out
        config = details()["applications"][name]["deployments"]["llm"]["deployment_config"]
        router_class = config["request_router_config"]["request_router_class"]
        assert router_class.endswith("RandomRouter" if routing == "random" else "PowerOfTwoChoicesRequestRouter")
        # A replica's first calls are slow (lazy imports, cold caches), and a least-loaded
        # router rightly avoids it meanwhile: measure once both have answered.
        deadline = time.monotonic() + 60
        while len(serving_replicas(client, name, n=16)) < 2:
            assert time.monotonic() < deadline, "the second replica never took a request"
        counts = serving_replicas(client, name, n=60)
        assert len(counts) == 2, counts
        assert min(counts.values()) >= 12, f"both replicas take a fair share: {counts}"
    finally:
        apply(client, model=name, apply_type="stop")


def test_random_router_ranks_every_replica_once():
    import asyncio

    from deployments.request_routers import RandomRouter

    router = RandomRouter.__new__(RandomRouter)
    ranks = asyncio.run(router.choose_replicas(["a", "b", "c"]))
    assert sorted(r[0] for r in ranks) == ["a", "b", "c"] and all(len(r) == 1 for r in ranks)


def test_gpu_annotation_places_the_replica_on_a_gpu(client):
    import ray

    assert ray.cluster_resources().get("GPU") == 2
    out = apply(client, model="gpu-model", worker_type="text2vec", apply_type="start",
                params={"model_path": MINILM, "num_gpus": 1, "num_cpus": 0.1})
    try:
        assert out["success"], out
        dep = details()["applications"]["gpu-model"]["deployments"]["text2vec"]
        assert dep["required_resources"].get("GPU") == 1
        deadline = time.monotonic() + 30
        while ray.available_resources().get("GPU", 0) != 1:  # the replica holds one of the two
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.5)
        meta = client.post("/api/worker/model_metadata", json={"model": "gpu-model"}).json()
        assert meta["metadata"]["device"] == "cpu", "a pretend GPU without CUDA falls back to the CPU"
    finally:
        apply(client, model="gpu-model", worker_type="text2vec", apply_type="stop")


def test_full_queue_answers_503_with_retry_after(client):
    out = apply(client, model="tiny-queue", worker_type="text2vec", apply_type="start",
                params={"model_path": MINILM, "num_cpus": 0.1, "max_ongoing_requests": 1, "max_queued_requests": 1})
    assert out["success"], out
    texts = ["a long sentence about many different things " * 8] * 64

    def one(i):
        if i % 2:
            r = client.post("/v1/embeddings", json={"model": "tiny-queue", "input": texts})
        else:
            r = client.post("/api/worker/embeddings", json={"model": "tiny-queue", "input": texts})
        return r.status_code, r.headers.get("retry-after"), r.json(), i % 2

    try:
        with cf.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(16)))
        codes = Counter(code for code, *_ in results)
        bodies = Counter(str(body)[:200] for code, _, body, _ in results if code != 200)
        assert set(codes) <= {200, 503} and codes[200] >= 1 and codes[503] >= 1, (codes, bodies)
        for code, retry_after, body, openai_route in results:
            if code == 503:
                assert retry_after == "1"
                message = body["error"]["message"] if openai_route else body["detail"]
                assert "saturated" in message
        # Serves normally right after: the handle's view of the queue settles within a moment.
        deadline = time.monotonic() + 5
        while client.post("/api/worker/embeddings", json={"model": "tiny-queue", "input": ["x"]}).status_code != 200:
            assert time.monotonic() < deadline, "the model did not recover from the burst"
            time.sleep(0.2)
        # One request is one deployment call: an OpenAI request waiting behind one in
        # flight takes the single queue slot and is served, usage included.
        with cf.ThreadPoolExecutor(1) as pool:
            running = pool.submit(client.post, "/api/worker/embeddings", json={"model": "tiny-queue", "input": texts * 2})
            time.sleep(1.0)
            waiting = client.post("/v1/embeddings", json={"model": "tiny-queue", "input": texts})
            assert running.result().status_code == 200
        assert waiting.status_code == 200, waiting.text
        assert len(waiting.json()["data"]) == len(texts) and waiting.json()["usage"]["prompt_tokens"] > len(texts)
    finally:
        apply(client, model="tiny-queue", worker_type="text2vec", apply_type="stop")


def test_autoscaling_goes_up_under_load_and_back(client):
    autoscaling = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1,
                   "upscale_delay_s": 0, "downscale_delay_s": 2, "look_back_period_s": 1}
    # A simulated llm at 20 tokens/s: each request below holds a place for about 2 s.
    out = start_simulated(client, "autoscaled", autoscaling_config=autoscaling, simulated_tokens_per_s=20)
    assert out["success"], out

    def running() -> int:
        dep = details()["applications"]["autoscaled"]["deployments"]["llm"]
        return sum(r["state"] == "RUNNING" for r in dep["replicas"])

    try:
        assert running() == 1
        deadline = time.monotonic() + 120
        with cf.ThreadPoolExecutor(6) as pool:
            while running() < 2:
                assert time.monotonic() < deadline, "did not scale up under load"
                list(pool.map(lambda _: ask(client, "autoscaled", max_new_tokens=40), range(12)))
        deadline = time.monotonic() + 120
        while running() > 1:
            assert time.monotonic() < deadline, "did not scale back down when idle"
            time.sleep(1)
    finally:
        apply(client, model="autoscaled", apply_type="stop")

"""The runs against the live Serve instance that need more than one client loop: the
vllm engine's app, the ingress with two replicas, text2vec with and without merging,
and the overhead of a trivial request."""

from __future__ import annotations

import asyncio
import time

import cpu
import gpu_rate
import httpx
import load
from cluster import DEPLOY_TIMEOUT_S, deploy, free_port, step, wait_running
from workload import CONCURRENCY, LLM, VLLM_APP, VLLM_ARGS

OVERHEAD_CALLS = 200


def vllm_http(serve, config: dict, base_url: str, rounds: dict[int, int], started: float) -> list[dict]:
    """Streaming chat clients against the LLM's application run by the vllm engine instead.

    Same deployment options as the LLM's (one replica, its num_cpus and
    max_ongoing_requests); deployed beside the default apps, then removed.
    """
    llm_app = next(a for a in config["applications"] if a["name"] == LLM)
    app = {**llm_app, "name": VLLM_APP, "args": {**llm_app["args"], **VLLM_ARGS}}
    deploy({**config, "applications": config["applications"] + [app]})
    try:
        wait_running(serve, [VLLM_APP], DEPLOY_TIMEOUT_S)
        step("vllm app running", started)
        asyncio.run(load.llm_load(base_url, "chat_completions", 2, 1, model=VLLM_APP))  # warm-up
        runs = []
        for concurrency in CONCURRENCY:
            run = asyncio.run(load.llm_load(base_url, "chat_completions", concurrency, rounds[concurrency],
                                            model=VLLM_APP))
            runs.append(run)
            step(f"vllm chat_completions x{concurrency}: {run['tokens_per_s']:.1f} tok/s, "
                 f"TTFT p50 {run['ttft']['p50_ms']:.0f} ms", started)
        return runs
    finally:
        deploy(config)
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        while VLLM_APP in serve.status().applications and time.monotonic() < deadline:
            time.sleep(1)

def with_router_args(config: dict, **deployment) -> dict:
    """The config with the ingress's deployment options or args changed (`args` goes to its args)."""
    args = deployment.pop("args", {})
    apps = [{**a, "args": {**(a.get("args") or {}), **args},
             "deployments": [{**a["deployments"][0], **deployment}]} if a["name"] == "router" else a
            for a in config["applications"]]
    return {**config, "applications": apps}

def two_ingress_replicas(serve, config: dict, base_url: str) -> dict:
    """The 128-stream chat run again with two ingress replicas: does scaling the router help?"""
    deploy(with_router_args(config, num_replicas=2))
    try:
        time.sleep(5)
        wait_running(serve, ["router"], DEPLOY_TIMEOUT_S)
        return asyncio.run(gpu_rate.run(base_url, "chat_completions", max(gpu_rate.STREAMS)))
    finally:
        deploy(config)
        time.sleep(5)
        wait_running(serve, ["router"], DEPLOY_TIMEOUT_S)

def text2vec_runs(serve, config: dict, base_url: str) -> dict:
    """64 single-text clients, with the ingress merging their requests and without (same run)."""
    processes = {"proxy": "ray::ProxyActor", "ingress": "ray::ServeReplica:router:router",
                 "text2vec": "ray::ServeReplica:all-minilm-l6-v2:text2vec"}
    out = {}
    for label, wait_ms in (("one_call_each", 0), ("merged", None)):
        if wait_ms is not None:
            deploy(with_router_args(config, args={"embeddings_batch_wait_ms": wait_ms}))
            time.sleep(5)
            wait_running(serve, ["router"], DEPLOY_TIMEOUT_S)
        asyncio.run(load.embed_load(base_url))  # warm-up at full concurrency
        before = cpu.cpu_seconds(processes)
        run = asyncio.run(load.embed_load(base_url))
        used = cpu.cores(before, cpu.cpu_seconds(processes), run["seconds"])
        run["cpu_ms_per_text"] = {k: 1000 * v * run["seconds"] / run["texts"] for k, v in used.items()}
        out[label] = run
        if wait_ms is not None:
            deploy(config)
            time.sleep(5)
            wait_running(serve, ["router"], DEPLOY_TIMEOUT_S)
    return out

def overhead(serve, base_url: str) -> dict:
    from bare_app import serve_bare_app
    from transformers import AutoTokenizer
    from workload import LLM_SOURCE

    from serve_app.config.workers import DEFAULT_CACHE_DIR
    from serve_app.replica.sources import convert_gguf, local_dir

    body = {"model": LLM, "prompt": "Hello world, how are you today?"}
    handle = serve.get_deployment_handle("llm", app_name=LLM)
    directory, gguf = local_dir(LLM_SOURCE, DEFAULT_CACHE_DIR)
    tokenizer = AutoTokenizer.from_pretrained(convert_gguf(directory, gguf, DEFAULT_CACHE_DIR, False))
    bare_port = free_port()
    server = serve_bare_app(tokenizer, bare_port)
    out = {}
    try:
        with httpx.Client(base_url=base_url, timeout=30) as ingress, \
                httpx.Client(base_url=f"http://127.0.0.1:{bare_port}", timeout=30) as bare:
            expected = bare.post("/api/worker/count_token", json=body).json()
            assert ingress.post("/api/worker/count_token", json=body).json() == expected
            out["ingress_http"] = load.timed(lambda: ingress.post("/api/worker/count_token", json=body).json(),
                                             OVERHEAD_CALLS)
            out["deployment_handle"] = load.timed(lambda: handle.count_token.remote(body["prompt"]).result(),
                                                  OVERHEAD_CALLS)
            out["bare_fastapi_http"] = load.timed(lambda: bare.post("/api/worker/count_token", json=body).json(),
                                                  OVERHEAD_CALLS)
    finally:
        server.should_exit = True
    return out


def key_overhead(serve, config: dict, base_url: str) -> dict:
    """A trivial request (`GET /v1/models`) with no keys, then with a key that has limits
    (one governor call before it, one after): what per-key limits add to each request."""
    from serve_app.governance.keys import hash_key

    key = "sk-bench-limited"
    limited = with_router_args(config, args={"api_keys": [{"key_sha256": hash_key(key), "id": "bench",
                                                            "limits": {"requests_per_minute": 10**9}}]})
    out = {}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        out["no_keys"] = load.timed(lambda: http.get("/v1/models").raise_for_status(), OVERHEAD_CALLS)
    deploy(limited)
    try:
        time.sleep(5)
        wait_running(serve, ["router"], DEPLOY_TIMEOUT_S)
        with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
            out["key_with_limits"] = load.timed(lambda: http.get("/v1/models").raise_for_status(), OVERHEAD_CALLS)
    finally:
        deploy(config)
        time.sleep(5)
        wait_running(serve, ["router"], DEPLOY_TIMEOUT_S)
    return out

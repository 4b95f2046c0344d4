"""`make bench`: measure smmf-serve against its own ceilings, in one process tree.

Offline ceilings first (the engines in-process, nothing else running), then one
local Ray + Serve with serve_config.yaml (HTTP on 127.0.0.1 only) for the HTTP,
handle and overhead runs, then cold starts of `serve run` in a subprocess. Where
vllm is installed, the vllm engine is measured too: offline, and over HTTP in an
extra application that is removed before the runs after it.
Writes bench/results.json, BENCHMARKS.md and bench/*.png; every figure there
comes from this run.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import httpx  # noqa: E402
import yaml  # noqa: E402

import load  # noqa: E402
import offline  # noqa: E402
from coldstart import cold_start  # noqa: E402
from report import write_report  # noqa: E402
from workload import CONCURRENCY, EMBED_CLIENTS, EMBED_ROUNDS, LLM, ROUNDS, VLLM_APP, VLLM_ARGS  # noqa: E402

COMMAND = "make bench"
OVERHEAD_CALLS = 200
DEPLOY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    def sh(cmd: str) -> str:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

    model = next((line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines()
                  if line.startswith("Model name")), platform.processor())
    return {"nproc": int(sh("nproc")), "free_g": sh("free -g"), "cpu": model,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "loadavg_1min_at_start": os.getloadavg()[0]}


def step(name: str, started: float) -> None:
    print(f"[bench {time.perf_counter() - started:6.1f}s] {name}", flush=True)


def replica_threads(ray, num_cpus: float) -> int:
    """torch's thread count in a Ray worker given `num_cpus` (Ray sets OMP_NUM_THREADS from it)."""
    @ray.remote(num_cpus=num_cpus)
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return ray.get(threads.remote(), timeout=120)


def wait_running(serve, names, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        states = {n: apps[n].status if n in apps else "MISSING" for n in names}
        if all(s == "RUNNING" for s in states.values()):
            return
        failed = {n: apps[n].message for n in names if n in apps and apps[n].status == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError(f"deploy failed: {failed}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"apps not RUNNING after {timeout_s}s: {states}")
        time.sleep(1)


def deploy(config: dict) -> None:
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    _get_global_client().deploy_apps(ServeDeploySchema(**config))


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


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


def main() -> None:
    started = time.perf_counter()
    results: dict = {"command": COMMAND, "machine": machine()}
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    options = {a["name"]: a["deployments"][0] for a in config["applications"]}
    llm_cpus = options[LLM]["ray_actor_options"]["num_cpus"]
    embed_cpus = options["all-minilm-l6-v2"]["ray_actor_options"]["num_cpus"]
    nproc = results["machine"]["nproc"]

    import ray

    # Ray only for the thread count its replicas get; no Serve yet, so the ceilings run alone.
    ray.init(address="local", num_cpus=8, log_to_driver=False, include_dashboard=False)
    results["threads"] = {"llm_replica": replica_threads(ray, llm_cpus),
                          "text2vec_replica": replica_threads(ray, embed_cpus), "all_cores": nproc}
    step(f"torch threads {results['threads']}", started)

    # The LLM ceiling runs at the replica's thread count only: on all cores of this
    # 2-core machine, busy with the bench's other processes, torch's threads wait on
    # each other and the figure says more about the machine's load than the engine.
    results["offline_llm"] = {}
    for threads in [results["threads"]["llm_replica"]]:
        results["offline_llm"][str(threads)] = offline.llm_ceiling(threads)
        gc.collect()
        step(f"offline llm at {threads} threads: {results['offline_llm'][str(threads)]['tokens_per_s']:.1f} tok/s",
             started)
    if vllm_available():
        results["offline_vllm"] = offline.llm_ceiling(results["threads"]["llm_replica"], "vllm")
        gc.collect()
        step(f"offline vllm: {results['offline_vllm']['tokens_per_s']:.1f} tok/s", started)
    results["offline_text2vec"] = {}
    for threads in sorted({results["threads"]["text2vec_replica"], nproc}):
        results["offline_text2vec"][str(threads)] = offline.text2vec_ceiling(threads, EMBED_CLIENTS * EMBED_ROUNDS)
        step(f"offline text2vec at {threads} threads", started)
    import torch

    torch.set_num_threads(nproc)

    from ray import serve

    config["http_options"] = {"host": "127.0.0.1", "port": free_port()}
    serve.start(http_options=config["http_options"])
    deploy(config)
    try:
        wait_running(serve, [a["name"] for a in config["applications"]], DEPLOY_TIMEOUT_S)
        step("serve running", started)
        base_url = f"http://127.0.0.1:{config['http_options']['port']}"
        for route in load.STREAMS:  # warm every path once
            asyncio.run(load.llm_load(base_url, route, 2, 1))

        results["http_llm"] = []
        for concurrency in CONCURRENCY:
            for route in load.STREAMS:
                run = asyncio.run(load.llm_load(base_url, route, concurrency, ROUNDS[concurrency]))
                results["http_llm"].append(run)
                step(f"{route} x{concurrency}: {run['tokens_per_s']:.1f} tok/s, "
                     f"TTFT p50 {run['ttft']['p50_ms']:.0f} ms", started)

        if vllm_available():
            results["http_vllm"] = vllm_http(serve, config, base_url, ROUNDS, started)

        asyncio.run(load.embed_load(base_url))  # warm-up at full concurrency
        results["http_text2vec"] = asyncio.run(load.embed_load(base_url))
        step(f"text2vec x{EMBED_CLIENTS}: {results['http_text2vec']['texts_per_s']:.0f} texts/s", started)

        results["overhead"] = overhead(serve, base_url)
        step("overhead", started)
    finally:
        serve.shutdown()
        ray.shutdown()

    results["cold_start"] = [cold_start(free_port(), None, 180)]
    step(f"cold start, warm cache: {results['cold_start'][0]['seconds']}", started)
    with tempfile.TemporaryDirectory(prefix="smmf-bench-cache-") as empty:
        results["cold_start"].append(cold_start(free_port(), empty, 300))
    step(f"cold start, cold cache: {results['cold_start'][1]['seconds']}", started)

    results["wall_seconds"] = time.perf_counter() - started
    results["machine"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, HERE, ROOT / "BENCHMARKS.md")
    step("wrote bench/results.json, BENCHMARKS.md and bench/*.png", started)


def overhead(serve, base_url: str) -> dict:
    from bare_app import serve_bare_app
    from transformers import AutoTokenizer

    from serve_app.config import DEFAULT_CACHE_DIR
    from serve_app.sources import convert_gguf, local_dir
    from workload import LLM_SOURCE

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


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:  # rewrite BENCHMARKS.md and the plots from the last results.json
        write_report(json.loads((HERE / "results.json").read_text()), HERE, ROOT / "BENCHMARKS.md")
    else:
        main()

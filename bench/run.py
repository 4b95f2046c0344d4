"""`make bench`: measure smmf-serve against its own ceilings, in one process tree.

Offline ceilings first (the engines in-process, nothing else running), then one
local Ray + Serve with serve_config.yaml (HTTP on 127.0.0.1 only) for the HTTP,
handle and overhead runs, then cold starts of `serve run` in a subprocess. Where
vllm is installed, the vllm engine is measured too: offline, and over HTTP in an
extra application that is removed before the runs after it. The routing policies
are measured on their own simulated apps (prefix_routing.py), and Serve's faster
HTTP paths each in a Ray of their own after the rest (serve_paths.py).
Writes bench/results.json, BENCHMARKS.md and bench/*.png; every figure there
comes from this run.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import batches  # noqa: E402
import fairness  # noqa: E402
import gpu_rate  # noqa: E402
import load  # noqa: E402
import lora_mix  # noqa: E402
import many_models  # noqa: E402
import offline  # noqa: E402
import prefix_routing  # noqa: E402
import serve_paths  # noqa: E402
import structured  # noqa: E402
import time_split  # noqa: E402
import yaml  # noqa: E402
from cluster import DEPLOY_TIMEOUT_S, deploy, free_port, step, vllm_available, wait_running  # noqa: E402
from coldstart import cold_start  # noqa: E402
from report import write_report  # noqa: E402
from served import key_overhead, overhead, text2vec_runs, two_ingress_replicas, vllm_http  # noqa: E402
from workload import CONCURRENCY, EMBED_CLIENTS, EMBED_ROUNDS, ROUNDS  # noqa: E402

from serve_app.config.workers import STREAM_INTERVAL_MS  # noqa: E402

COMMAND = "make bench"
# The CPU features that decide what torch and vLLM run fast (bfloat16 in particular).
NOTABLE_FLAGS = {"avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"}


def machine() -> dict:
    def sh(cmd: str) -> str:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

    info = dict(line.split(":", 1) for line in sh("lscpu").splitlines() if ":" in line)
    flags = set(info.get("Flags", "").split())
    return {"nproc": int(sh("nproc")), "free_g": sh("free -g"),
            "cpu": info.get("Model name", platform.processor()).strip(),
            "cpu_flags": " ".join(sorted(flags & NOTABLE_FLAGS)) or "none of " + " ".join(sorted(NOTABLE_FLAGS)),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "loadavg_1min_at_start": os.getloadavg()[0]}


def main() -> None:
    started = time.perf_counter()
    results: dict = {"command": COMMAND, "machine": machine()}
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    # A state file of the bench's own: the user's (~/.smmf-serve) is not the bench's to write.
    router = next(app for app in config["applications"] if app["name"] == "router")
    router["args"] = {**router.get("args", {}), "state": {"store": "sqlite",
                                                          "path": f"{tempfile.mkdtemp(prefix='smmf-bench-')}/state.db"}}

    import ray

    from serve_app.replica.context import default_threads

    # The replicas' torch threads: their args' num_threads, unset in the default config.
    threads = default_threads()
    results["threads"] = {"llm_replica": threads, "text2vec_replica": threads, "all_cores": results["machine"]["nproc"]}
    step(f"torch threads {results['threads']}", started)
    # Ray before the ceilings (the engines' metrics live in it); no Serve yet, so they run alone.
    ray.init(address="local", num_cpus=8, log_to_driver=False, include_dashboard=False)
    offline_phase(results, started)
    try:
        served_phase(results, config, started)
    finally:
        ray.shutdown()
    results["serve_paths"] = serve_paths.measure(lambda s: step(s, started))  # a Ray of its own per path
    many_models_phase(results, started)
    batches_phase(results, started)
    fairness_phase(results, started)
    cold_start_phase(results, started)
    results["wall_seconds"] = time.perf_counter() - started
    results["machine"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, HERE, ROOT / "BENCHMARKS.md")
    step("wrote bench/results.json, BENCHMARKS.md and bench/*.png", started)


def offline_phase(results: dict, started: float) -> None:
    """The engines in-process, nothing else running: the ceilings the served runs are read against."""
    threads = results["threads"]
    # The LLM ceiling runs at the replica's thread count only: on all cores of this
    # 2-core machine, busy with the bench's other processes, torch's threads wait on
    # each other and the figure says more about the machine's load than the engine.
    results["offline_llm"] = {str(threads["llm_replica"]): offline.llm_ceiling(threads["llm_replica"])}
    gc.collect()
    step(f"offline llm: {results['offline_llm'][str(threads['llm_replica'])]['tokens_per_s']:.1f} tok/s", started)
    if vllm_available():
        results["offline_vllm"] = offline.llm_ceiling(threads["llm_replica"], "vllm")
        gc.collect()
        step(f"offline vllm: {results['offline_vllm']['tokens_per_s']:.1f} tok/s", started)
    results["offline_text2vec"] = {}
    for n in sorted({threads["text2vec_replica"], threads["all_cores"]}):
        results["offline_text2vec"][str(n)] = offline.text2vec_ceiling(n, EMBED_CLIENTS * EMBED_ROUNDS)
        step(f"offline text2vec at {n} threads", started)
    import torch

    torch.set_num_threads(threads["all_cores"])


def served_phase(results: dict, config: dict, started: float) -> None:
    """One Serve with the default config, plus the GPU-rate apps, on 127.0.0.1."""
    from ray import serve

    config["http_options"] = {"host": "127.0.0.1", "port": free_port()}
    config["applications"] += gpu_rate.apps(str(HERE))
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
        results["gpu_rate"] = gpu_rate.measure(base_url, STREAM_INTERVAL_MS, lambda s: step(s, started))
        results["gpu_rate"]["two_ingress_replicas"] = two_ingress_replicas(serve, config, base_url)
        step("gpu-rate rows", started)
        results["time_split"] = time_split.split_under_load(base_url)
        step(f"time split x64: parts {results['time_split']['parts_over_client']:.2f} of the client's latency", started)
        results["tracing"] = time_split.tracing_cost(serve, config, base_url, step, started)
        results["http_text2vec"] = text2vec_runs(serve, config, base_url)
        step(f"text2vec x{EMBED_CLIENTS}: {results['http_text2vec']['merged']['texts_per_s']:.0f} texts/s", started)
        results["structured"] = structured.measure(base_url)
        step("structured output", started)
        results["overhead"] = overhead(serve, base_url)
        results["key_overhead"] = key_overhead(serve, config, base_url)
        step("overhead", started)
        results["routing"] = routing_runs(serve, config, base_url, started)
        if vllm_available():
            results["http_vllm"] = vllm_http(serve, config, base_url, ROUNDS, started)
    finally:
        serve.shutdown()


def routing_runs(serve, config: dict, base_url: str, started: float) -> dict:
    """The routing apps beside the rest for their runs only, so they load nothing else."""
    deploy({**config, "applications": config["applications"] + prefix_routing.apps()})
    try:
        wait_running(serve, [a["name"] for a in prefix_routing.apps()], DEPLOY_TIMEOUT_S)
        return prefix_routing.measure(base_url, lambda s: step(s, started))
    finally:
        deploy(config)


def many_models_phase(results: dict, started: float, command: str = COMMAND) -> None:
    """#31's figures: the ingress at 1, 16 and 48 models (a Ray of its own), then LoRA adapters in-process."""
    results["many_models"] = many_models.measure(lambda s: step(s, started))
    results["many_models"]["run"] = {"command": command, "date": machine()["date"]}
    results["lora_mix"] = asyncio.run(lora_mix.measure())
    step(f"adapters: {results['lora_mix']['ratio']:.2f} of the base's tok/s", started)


def batches_phase(results: dict, started: float, command: str = COMMAND) -> None:
    """#34's Batch API figures: the router and the default llm in a Ray of their own."""
    results["batches"] = batches.measure(lambda s: step(s, started))
    results["batches"]["run"] = {"command": command, "date": machine()["date"]}


def fairness_phase(results: dict, started: float, command: str = COMMAND) -> None:
    """#34's fair-queue figures: the router and a simulated llm in a Ray of their own."""
    results["fairness"] = fairness.measure(lambda s: step(s, started))
    results["fairness"]["run"] = {"command": command, "date": machine()["date"]}


def cold_start_phase(results: dict, started: float) -> None:
    results["cold_start_run"] = {"command": COMMAND, "date": machine()["date"]}
    results["cold_start"] = [cold_start(free_port(), None, 180)]
    step(f"cold start, warm cache: {results['cold_start'][0]['seconds']}", started)
    with tempfile.TemporaryDirectory(prefix="smmf-bench-cache-") as empty:
        results["cold_start"].append(cold_start(free_port(), empty, 300))
    step(f"cold start, cold cache: {results['cold_start'][1]['seconds']}", started)


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:  # rewrite BENCHMARKS.md and the plots from the last results.json
        write_report(json.loads((HERE / "results.json").read_text()), HERE, ROOT / "BENCHMARKS.md")
    elif sys.argv[1:] == ["--many-models-only"]:  # `make bench-many`: #31's section again, the rest kept
        last = json.loads((HERE / "results.json").read_text())
        many_models_phase(last, time.perf_counter(), "make bench-many")
        (HERE / "results.json").write_text(json.dumps(last, indent=2))
        write_report(last, HERE, ROOT / "BENCHMARKS.md")
    elif sys.argv[1:] == ["--batches-only"]:  # `make bench-batches`: #34's section again, the rest kept
        last = json.loads((HERE / "results.json").read_text())
        batches_phase(last, time.perf_counter(), "make bench-batches")
        (HERE / "results.json").write_text(json.dumps(last, indent=2))
        write_report(last, HERE, ROOT / "BENCHMARKS.md")
    elif sys.argv[1:] == ["--fairness-only"]:  # `make bench-fairness`: #34's fair-queue section again, the rest kept
        last = json.loads((HERE / "results.json").read_text())
        fairness_phase(last, time.perf_counter(), "make bench-fairness")
        (HERE / "results.json").write_text(json.dumps(last, indent=2))
        write_report(last, HERE, ROOT / "BENCHMARKS.md")
    elif sys.argv[1:] == ["--cold-start-only"]:  # `make bench-cold`: the cold starts again, the rest kept
        last = json.loads((HERE / "results.json").read_text())
        cold_start_phase(last, time.perf_counter())
        last["cold_start_run"]["command"] = "make bench-cold"
        (HERE / "results.json").write_text(json.dumps(last, indent=2))
        write_report(last, HERE, ROOT / "BENCHMARKS.md")
    else:
        main()

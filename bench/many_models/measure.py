"""Many models at the cost of one (#31), measured at 1, 16 and 48 simulated llms beside the
default config's router, in a Ray and Serve of its own (HTTP on 127.0.0.1):

- the list routes: `/v1/models`, `/api/models/status`, DB-GPT's `/api/controller/models`
  (median of 20 calls) and `smmf model list` (median of 5, a new process each, as a user runs it);
- the time to first content the serving path adds, with requests spaced longer than the
  ingress's table interval (1 s), so each finds its table older than that: the client's time
  to the first content chunk less the simulated engine's own first token (SIM_TTFT_MS);
- at the largest count, the largest gap between two chunks of one open stream, through our
  ingress and through a bare Serve passthrough, alone and while others come and go (gaps.py);
- what one routing-table update blocks the ingress's loop for, in-process, at 100 and 500
  synthetic models (unpickling the manager's table and installing it).

    make bench-many    # this section alone (bench/run.py --many-models-only); make bench runs it too
"""

from __future__ import annotations

import asyncio
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from .gaps import stream_gaps
from .streams import bare_chunk_times, chunk_times

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
COUNTS = (1, 16, 48)
SIM_TTFT_MS, SIM_TOKENS_PER_S = 20, 100
SPACING_S = 1.3  # longer than the ingress's table interval (registry_ttl_s / the manager's 1 s)
SPACED_REQUESTS = 16
TABLE_SIZES = (100, 500)
STARTS = 3


def simulated(name: str) -> dict:
    return {"name": name, "route_prefix": None, "import_path": "deployments.llm:build_app",
            "args": {"source": "simulated", "engine": "simulated", "simulated_ttft_ms": SIM_TTFT_MS,
                     "simulated_tokens_per_s": SIM_TOKENS_PER_S},
            "deployments": [{"name": "llm", "ray_actor_options": {"num_cpus": 0.01}}]}


def timed(call, n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(1000 * (time.perf_counter() - started))
    return statistics.median(samples)


def ttft_added(first_chunks: dict) -> dict:
    """Each path's time to first content less the engine's first token, ms (p50, max), its
    requests SPACING_S apart and the paths taking turns, so that what the machine does meanwhile
    falls on both alike."""
    samples = {path: [] for path in first_chunks}
    for _ in range(SPACED_REQUESTS):
        for path, first_chunk in first_chunks.items():
            time.sleep(SPACING_S)
            samples[path].append(1000 * first_chunk() - SIM_TTFT_MS)
    return {path: {"p50": statistics.median(v), "max": max(v), "n": len(v)} for path, v in samples.items()}


def start_one_more(client: httpx.Client, name: str) -> float:
    """Seconds for `POST /api/worker/apply` to start one more simulated llm and see it run; then it stops."""
    started = time.perf_counter()
    r = client.post("/api/worker/apply", timeout=300, json={
        "model": name, "worker_type": "llm", "apply_type": "start",
        "params": {**simulated(name)["args"], "num_cpus": 0.01}})
    took = time.perf_counter() - started
    assert r.status_code == 200 and r.json()["success"], r.text
    client.post("/api/worker/apply", timeout=300, json={"model": name, "apply_type": "stop", "delete_after": True})
    return took


def serve_starts_one_more(config: dict, name: str) -> float:
    """Serve's own time for the same: the whole config and one more simulated llm applied from this
    driver, its status read every 50 ms until RUNNING; then the config without it, until it is gone."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    client, extra = _get_global_client(), simulated(name)
    started = time.perf_counter()
    client.deploy_apps(ServeDeploySchema(**{**config, "applications": config["applications"] + [extra]}))
    while client.get_serve_status(name).app_status.status != "RUNNING":
        time.sleep(0.05)
    took = time.perf_counter() - started
    client.deploy_apps(ServeDeploySchema(**config))
    while client.get_serve_status(name).app_status.status != "NOT_STARTED":
        time.sleep(0.05)
    return took


def table_update_ms(size: int) -> float:
    """One table update on the ingress's loop: unpickling the manager's answer and installing it."""
    from serve_app.serving.registry import ModelEntry, ModelRegistry

    table = {f"m{i}": ModelEntry(name=f"m{i}", worker_type="llm", status="RUNNING", message="", running_replicas=1,
                                 args={"source": "simulated", "engine": "simulated"}, created=time.time(),
                                 replicas=((f"r{i}", "RUNNING", True),), needs={"CPU": 0.01})
             for i in range(size)}
    blob = pickle.dumps((1, table))

    async def run() -> float:
        registry, samples = ModelRegistry(), []
        for _ in range(20):
            started = time.perf_counter()
            version, got = pickle.loads(blob)
            registry._install(version, got)
            samples.append(1000 * (time.perf_counter() - started))
        return statistics.median(samples)

    return asyncio.run(run())


def measure(step=print) -> dict:
    import ray
    from helpers import free_port, wait_for_apps, with_state_file
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    # A state file of the bench's own: the user's (~/.smmf-serve) is not the bench's to write.
    with_state_file(config, Path(tempfile.mkdtemp(prefix="many-models-")) / "state.db")
    router = next(a for a in config["applications"] if a["name"] == "router")
    base = {**config, "http_options": {"host": "127.0.0.1", "port": free_port()}, "applications": [router]}
    ray.init(address="local", num_cpus=8, log_to_driver=False, include_dashboard=False)
    url = f"http://127.0.0.1:{base['http_options']['port']}"
    rows, gaps = [], {}
    try:
        serve.start(http_options=base["http_options"])
        for count in COUNTS:
            apps = [router] + [simulated(f"sim-{i:03d}") for i in range(count)]
            # The floor, at each count: a bare Serve passthrough to the same model.
            apps.append({"name": "bare", "route_prefix": "/bare", "import_path": "bare_stream_app:build_app",
                         "args": {"model": "sim-000"},
                         "runtime_env": {"env_vars": {"PYTHONPATH": str(ROOT / "bench")}}})
            _get_global_client().deploy_apps(ServeDeploySchema(**{**base, "applications": apps}))
            wait_for_apps([a["name"] for a in apps], timeout_s=900)
            with httpx.Client(base_url=url, timeout=60) as client:
                client.get("/v1/models").raise_for_status()  # the ingress's table is current
                row = {"models": count}
                for route in ("/v1/models", "/api/models/status", "/api/controller/models"):
                    row[route] = timed(lambda r=route: client.get(r).raise_for_status(), 20)
                cli = [sys.executable, "-m", "serve_app.cli", "--address", url, "model", "list"]
                row["smmf model list"] = timed(lambda: subprocess.run(cli, check=True, capture_output=True), 5)
                added = ttft_added({"ours": lambda: chunk_times(client, "sim-000", 2)[0],
                                    "bare": lambda: bare_chunk_times(client, 2)[0]})
                row["ttft_added_ms"], row["bare_ttft_added_ms"] = added["ours"], added["bare"]
                # Median of 3, ours through the API and Serve's own from this driver, taking turns.
                ours, serves = [], []
                for k in range(STARTS):
                    ours.append(start_one_more(client, f"extra-{count}-{k}"))
                    serves.append(serve_starts_one_more({**base, "applications": apps}, f"serve-{count}-{k}"))
                row["start_s"], row["serve_start_s"] = statistics.median(ours), statistics.median(serves)
                if count == COUNTS[-1]:
                    gaps = {"models": count, **stream_gaps(client, "sim-000", SIM_TOKENS_PER_S)}
            rows.append(row)
            step(f"many models: {row}")
    finally:
        serve.shutdown()
        ray.shutdown()
    return {"rows": rows, "stream_gap": gaps, "table_update_ms": {n: table_update_ms(n) for n in TABLE_SIZES},
            "sim_ttft_ms": SIM_TTFT_MS, "spacing_s": SPACING_S}


if __name__ == "__main__":  # cd bench && ../.venv/bin/python -m many_models.measure
    print(json.dumps(measure(), indent=2))

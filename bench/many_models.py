"""Many models at the cost of one (#31), measured at 1, 16 and 48 simulated llms beside the
default config's router, in a Ray and Serve of its own (HTTP on 127.0.0.1):

- the list routes: `/v1/models`, `/api/models/status`, DB-GPT's `/api/controller/models`
  (median of 20 calls) and `smmf model list` (median of 5, a new process each, as a user runs it);
- the time to first content the serving path adds, with requests spaced longer than the
  ingress's table interval (1 s), so each finds its table older than that: the client's time
  to the first content chunk less the simulated engine's own first token (SIM_TTFT_MS);
- at the largest count, the largest gap between two chunks of one open stream, alone and
  while other requests come and go beside it (short chats and `/v1/models` listings);
- what one routing-table update blocks the ingress's loop for, in-process, at 100 and 500
  synthetic models (unpickling the manager's table and installing it).

    .venv/bin/python bench/many_models.py   # make bench runs it too (bench/run.py)
"""

from __future__ import annotations

import asyncio
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
COUNTS = (1, 16, 48)
SIM_TTFT_MS, SIM_TOKENS_PER_S = 20, 100
SPACING_S = 1.3  # longer than the ingress's table interval (registry_ttl_s / the manager's 1 s)
SPACED_REQUESTS = 12
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


def chunk_times(client: httpx.Client, model: str, max_tokens: int) -> list[float]:
    """Seconds from sending to each content chunk of one streamed chat."""
    started, times = time.perf_counter(), []
    with client.stream("POST", "/v1/chat/completions", json={
            "model": model, "max_tokens": max_tokens, "stream": True, "ignore_eos": True,
            "messages": [{"role": "user", "content": "hi"}]}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            choices = json.loads(line[6:]).get("choices") if line.startswith("data: {") else None
            if choices and choices[0].get("delta", {}).get("content"):
                times.append(time.perf_counter() - started)
    return times


def bare_first_chunk(client: httpx.Client) -> float:
    """Seconds to the first text through bench/bare_stream_app.py: Serve's own cost, nothing of ours."""
    started = time.perf_counter()
    with client.stream("POST", "/bare/stream", json={"prompt": "hi", "max_tokens": 2}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line and json.loads(line).get("text"):
                return time.perf_counter() - started
    raise AssertionError("the bare passthrough sent no text")


def ttft_added(first_chunk) -> dict:
    samples = []
    for _ in range(SPACED_REQUESTS):
        time.sleep(SPACING_S)
        samples.append(1000 * first_chunk() - SIM_TTFT_MS)
    return {"p50": statistics.median(samples), "max": max(samples), "n": len(samples)}


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


def largest_gap(client: httpx.Client, model: str, busy: bool) -> float:
    """The largest gap (ms) between two chunks of a 3-second stream, with or without others beside it."""
    stop, side = threading.Event(), []

    def others(i: int):
        with httpx.Client(base_url=client.base_url, timeout=60) as c:
            while not stop.is_set():
                c.get("/v1/models") if i % 2 else chunk_times(c, f"sim-{i:03d}", 4)
                side.append(1)

    threads = [threading.Thread(target=others, args=(i,)) for i in range(4 if busy else 0)]
    for t in threads:
        t.start()
    try:
        times = chunk_times(client, model, 3 * SIM_TOKENS_PER_S)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return max(1000 * (b - a) for a, b in zip(times, times[1:]))


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
            if count == COUNTS[-1]:  # the floor, in this run: a bare Serve passthrough to the same model
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
                row["ttft_added_ms"] = ttft_added(lambda: chunk_times(client, "sim-000", 2)[0])
                # Median of 3, ours through the API and Serve's own from this driver, taking turns.
                ours, serves = [], []
                for k in range(STARTS):
                    ours.append(start_one_more(client, f"extra-{count}-{k}"))
                    serves.append(serve_starts_one_more({**base, "applications": apps}, f"serve-{count}-{k}"))
                row["start_s"], row["serve_start_s"] = statistics.median(ours), statistics.median(serves)
                if count == COUNTS[-1]:
                    row["bare_ttft_added_ms"] = ttft_added(lambda: bare_first_chunk(client))
                    gaps = {"models": count, "alone_ms": largest_gap(client, "sim-000", busy=False),
                            "beside_others_ms": largest_gap(client, "sim-000", busy=True)}
            rows.append(row)
            step(f"many models: {row}")
    finally:
        serve.shutdown()
        ray.shutdown()
    return {"rows": rows, "stream_gap": gaps, "table_update_ms": {n: table_update_ms(n) for n in TABLE_SIZES},
            "sim_ttft_ms": SIM_TTFT_MS, "spacing_s": SPACING_S}


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


TTFT_GROWTH_MS, OVER_BARE_MS, GAP_ADDED_MS, LIST_MS, ADAPTER_RATIO = 3, 5, 10, 150, 0.7


def targets(results: dict, target) -> list[dict]:
    """#31's targets, from this run's many-models and adapter figures (`target` is targets.target)."""
    out = []
    if "many_models" in results:
        m = results["many_models"]
        first, last = m["rows"][0], m["rows"][-1]
        grew = last["ttft_added_ms"]["p50"] - first["ttft_added_ms"]["p50"]
        bare = last.get("bare_ttft_added_ms")
        floor = (f"; at {last['models']} models ours is {last['ttft_added_ms']['p50'] - bare['p50']:.1f} ms over a "
                 f"bare Serve passthrough in the same run ({bare['p50']:.1f} ms): the growth is in what the "
                 "passthrough takes too, Serve's proxy and handles on a node busy with the replicas' background "
                 "work") if bare else ""
        out.append(target(f"TTFT added, spaced requests, {last['models']} models: <= {first['models']} model's "
                          f"+ {TTFT_GROWTH_MS} ms", f"{last['ttft_added_ms']['p50']:.1f} vs "
                          f"{first['ttft_added_ms']['p50']:.1f} ms ({grew:+.1f})", grew <= TTFT_GROWTH_MS,
                          "the table is pushed by the manager and installed in under a millisecond (below)"
                          + floor + "."))
        if bare:
            over = last["ttft_added_ms"]["p50"] - bare["p50"]
            out.append(target(f"TTFT added at {last['models']} models: <= bare Serve passthrough + {OVER_BARE_MS} ms",
                              f"{last['ttft_added_ms']['p50']:.1f} vs {bare['p50']:.1f} ms ({over:+.1f})",
                              over <= OVER_BARE_MS, "the serving path's own cost per request (see 'TTFT added by "
                              "the serving path' above): the same at 1 model as at 48."))
        gap = m["stream_gap"]
        added = gap["beside_others_ms"] - gap["alone_ms"]
        out.append(target(f"an open stream's largest chunk gap, others coming and going: <= alone + {GAP_ADDED_MS} ms",
                          f"{gap['beside_others_ms']:.0f} vs {gap['alone_ms']:.0f} ms alone ({added:+.0f})",
                          added <= GAP_ADDED_MS, "the ingress's one event loop serves the other requests too; "
                          "on 2 cores the proxy, the ingress and the replicas take turns."))
        if "start_s" in last:
            ratio = last["start_s"] / first["start_s"]
            why = ("Serve's controller applies the whole config and reconciles every application in each pass, "
                   "so its own work grows with the model count")
            if "serve_start_s" in last:
                why += (f": Serve alone, from a driver, took {last['serve_start_s']:.2f} vs "
                        f"{first['serve_start_s']:.2f} s ({last['serve_start_s'] / first['serve_start_s']:.2f}x); "
                        f"ours beyond Serve's {last['start_s'] - last['serve_start_s']:.2f} vs "
                        f"{first['start_s'] - first['serve_start_s']:.2f} s")
            out.append(target(f"starting one more model through the API at {last['models']} models: <= 1.5x at "
                              f"{first['models']}", f"{last['start_s']:.2f} vs {first['start_s']:.2f} s "
                              f"({ratio:.2f}x)", ratio <= 1.5, why + "."))
        slowest = max(v for k, v in last.items() if k.startswith("/"))
        out.append(target(f"list routes at {last['models']} models: < {LIST_MS} ms", f"slowest {slowest:.1f} ms",
                          slowest < LIST_MS, ""))
    if "lora_mix" in results:
        r = results["lora_mix"]
        out.append(target(f"{r['adapters']} adapters in mixed traffic (transformers): >= {ADAPTER_RATIO} of the "
                          "base alone's tok/s", f"{r['ratio']:.2f} ({r['mixed_tokens_per_s']:.0f} vs "
                          f"{r['base_tokens_per_s']:.0f} tok/s)", r["ratio"] >= ADAPTER_RATIO,
                          "peft applies each adapter's rows of the batch apart (mixed-adapter inference), "
                          "so a batch over 8 adapters runs more, smaller matrix products than one over the base."))
    return out


def section(results: dict) -> list[str]:
    m = results["many_models"]
    lines = ["## Many models", "",
             f"Simulated llms (first token after {m['sim_ttft_ms']} ms) beside the default router, in a Ray of their "
             f"own (bench/many_models.py). TTFT added: the client's time to the first content chunk less the "
             f"engine's, requests {m['spacing_s']} s apart (each finds the ingress's table older than its 1 s "
             f"interval), median and max. List routes: median ms. One more started: `POST /api/worker/apply` "
             f"starting one more simulated llm, until it runs (median of {STARTS}); Serve alone: the same "
             "model added to the whole config from a driver, its status read every 50 ms until it runs.", "",
             "| models | TTFT added p50 / max (ms) | `/v1/models` | `/api/models/status` | `/api/controller/models` "
             "| `smmf model list` | one more started (s) | Serve alone (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        lines.append(f"| {r['models']} | {r['ttft_added_ms']['p50']:.1f} / {r['ttft_added_ms']['max']:.1f} | "
                     f"{r['/v1/models']:.1f} | {r['/api/models/status']:.1f} | {r['/api/controller/models']:.1f} | "
                     f"{r['smmf model list']:.0f} | {_f(r.get('start_s'))} | {_f(r.get('serve_start_s'))} |")
    g, t = m["stream_gap"], m["table_update_ms"]
    bare = m["rows"][-1].get("bare_ttft_added_ms")
    if bare:
        lines += ["", f"The floor, in the same run at {m['rows'][-1]['models']} models: a bare Serve passthrough "
                  f"(bench/bare_stream_app.py) to the same model, requests spaced alike: {bare['p50']:.1f} / "
                  f"{bare['max']:.1f} ms added (p50 / max)."]
    lines += ["", f"One 3-second stream at {g['models']} models: largest gap between two chunks {g['alone_ms']:.0f} ms "
              f"alone, {g['beside_others_ms']:.0f} ms while four clients send short chats and list models beside it. "
              "One routing-table update on the ingress's loop (unpickling the manager's table and installing it, "
              "in-process): " + ", ".join(f"{float(v):.2f} ms at {k} models" for k, v in t.items()) + ".", ""]
    if "lora_mix" in results:
        r = results["lora_mix"]
        lines += [f"LoRA adapters on the transformers engine, in-process (bench/lora_mix.py): {r['clients']} clients x "
                  f"{r['tokens']} tokens, median of 3: the base alone {r['base_tokens_per_s']:.1f} tok/s, spread over "
                  f"{r['adapters']} adapters {r['mixed_tokens_per_s']:.1f} tok/s ({r['ratio']:.2f}); loading an "
                  f"adapter {r['load_ms_p50']:.0f} ms; the first request's TTFT on a just-loaded adapter "
                  f"{r['cold_adapter_ttft_ms_p50']:.0f} ms (the base's: {r['base_ttft_ms_p50']:.0f} ms).", ""]
    if m.get("run"):
        lines += [f"This section's run: `{m['run']['command']}`, {m['run']['date']}.", ""]
    return lines


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))

"""Fair queuing on a full model (#34's targets), in a Ray and Serve of their own (HTTP on 127.0.0.1):
the router with two ingress replicas and four API keys, and one simulated llm (GPU-like rates,
MAX_NUM_SEQS places) deployed twice, both sides of each comparison in this run:

- `fair`: max_ongoing_requests 64, so what waits, waits in the replica's fair queue;
- `fcfs`: max_ongoing_requests = max_num_seqs, so what waits, waits in each ingress replica's
  Serve handle, first come first served (how every request waited before the fair queue).

Light key: streamed chats one after another, time to first content, with the model to itself,
then while the flood key keeps FLOOD streams going. Shares: two keys of weights 1 and 2, each
keeping SHARE_STREAMS streams going for SHARE_SECONDS: the completion tokens each got.

    .venv/bin/python bench/fairness.py   # make bench-fairness; make bench runs it too (bench/run.py)
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml
from workload import first_content_ms

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
MAX_NUM_SEQS, TOKENS_PER_S = 16, 50
# Flood answers of 20 to 60 tokens (mean 40: a place for 0.8 s), as real answers vary: answers all of
# one length would keep every place's end in lockstep, all freeing at once.
ANSWER_TOKENS = (20, 60)
FLOOD, LIGHT_REQUESTS, LIGHT_TOKENS = 32, 30, 8
SHARE_STREAMS, SHARE_SECONDS = 16, 30
KEYS = {"flood": 1.0, "light": 1.0, "one": 1.0, "two": 2.0}  # key -> weight
TTFT_RATIO, SHARE_TOLERANCE = 1.5, 0.10  # #34's targets


def model_app(name: str, max_ongoing: int) -> dict:
    return {"name": name, "route_prefix": None, "import_path": "deployments.llm:build_app",
            "args": {"source": "simulated", "engine": "simulated", "max_num_seqs": MAX_NUM_SEQS,
                     "simulated_tokens_per_s": TOKENS_PER_S, "simulated_ttft_ms": 20},
            "deployments": [{"name": "llm", "num_replicas": 1, "max_ongoing_requests": max_ongoing,
                             "ray_actor_options": {"num_cpus": 0.1}}]}


def chat(model: str, tokens: int) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens, "ignore_eos": True}


def ttft_ms(client: httpx.Client, model: str) -> float:
    return first_content_ms(client, chat(model, LIGHT_TOKENS))


def keep_busy(url: str, key: str, model: str, streams: int, stop: threading.Event, tokens: dict) -> list:
    """`streams` threads sending one chat after another as `key` until `stop`; completion tokens add up in
    tokens[key] (only while `tokens['counting']`)."""
    def loop(seed: int):
        lengths = random.Random(seed)
        with httpx.Client(base_url=url, timeout=300, headers={"Authorization": f"Bearer sk-bench-{key}"}) as c:
            while not stop.is_set():
                r = c.post("/v1/chat/completions", json=chat(model, lengths.randint(*ANSWER_TOKENS)))
                if r.status_code == 200 and tokens.get("counting"):
                    tokens[key] = tokens.get(key, 0) + r.json()["usage"]["completion_tokens"]
                elif r.status_code != 200:
                    time.sleep(0.05)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    return threads


def light_ttft(url: str, model: str, flooded: bool) -> dict:
    stop, threads = threading.Event(), []
    if flooded:
        threads = keep_busy(url, "flood", model, FLOOD, stop, {})
        time.sleep(3)  # the places taken and the queue built
    with httpx.Client(base_url=url, timeout=300, headers={"Authorization": "Bearer sk-bench-light"}) as c:
        samples = [ttft_ms(c, model) for _ in range(LIGHT_REQUESTS)]
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return {"p50": statistics.median(samples), "p90": sorted(samples)[int(0.9 * len(samples))]}


def shares(url: str, model: str) -> dict:
    stop, tokens = threading.Event(), {}
    threads = [t for key in ("one", "two") for t in keep_busy(url, key, model, SHARE_STREAMS, stop, tokens)]
    time.sleep(3)
    tokens["counting"] = True
    time.sleep(SHARE_SECONDS)
    tokens["counting"] = False
    stop.set()
    for t in threads:
        t.join(timeout=60)
    total = tokens.get("one", 0) + tokens.get("two", 0)
    return {"tokens": {k: tokens.get(k, 0) for k in ("one", "two")},
            "share_two": tokens.get("two", 0) / total if total else None}


def queue_cost_us(turns: int = 20_000) -> float:
    """What the fair queue adds to a request below saturation, in microseconds: a place taken and
    given back, with one chunk's tokens counted and the replica's metrics, as deployments/llm.py does."""
    import asyncio

    from serve_app.config.fairness import FairQueueArgs
    from serve_app.fairness.metrics import QueueMetrics
    from serve_app.fairness.queue import FairQueue
    from serve_app.fairness.ticket import Ticket

    async def run() -> float:
        queue, ticket = FairQueue(MAX_NUM_SEQS, FairQueueArgs(), QueueMetrics("bench")), Ticket(key="bench")
        started = time.perf_counter()
        for _ in range(turns):
            async with queue.turn(ticket) as meter:
                meter.count(10, 1)
        return 1e6 * (time.perf_counter() - started) / turns

    return asyncio.run(run())


def measure(step=print) -> dict:
    import ray
    from helpers import free_port, wait_for_apps, with_state_file
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from serve_app.governance.keys import hash_key

    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    with_state_file(config, Path(tempfile.mkdtemp(prefix="bench-fairness-")) / "state.db")
    router = next(a for a in config["applications"] if a["name"] == "router")
    router["args"]["api_keys"] = [{"key_sha256": hash_key("sk-bench-admin"), "id": "admin", "scope": "admin"}] + [
        {"key_sha256": hash_key(f"sk-bench-{k}"), "id": k, "weight": w} for k, w in KEYS.items()]
    router["deployments"][0]["num_replicas"] = 2
    apps = [router, model_app("fair", 64), model_app("fcfs", MAX_NUM_SEQS)]
    deploy = {**config, "http_options": {"host": "127.0.0.1", "port": free_port()}, "applications": apps}
    ray.init(address="local", num_cpus=8, log_to_driver=False, include_dashboard=False)
    url = f"http://127.0.0.1:{deploy['http_options']['port']}"
    results = {"max_num_seqs": MAX_NUM_SEQS, "tokens_per_s": TOKENS_PER_S, "answer_tokens": ANSWER_TOKENS,
               "flood": FLOOD, "ingress_replicas": 2, "share_streams": SHARE_STREAMS, "share_seconds": SHARE_SECONDS}
    try:
        results["queue_cost_us"] = queue_cost_us()
        step(f"fairness: the queue's own cost below saturation {results['queue_cost_us']:.1f} us a request")
        serve.start(http_options=deploy["http_options"])
        _get_global_client().deploy_apps(ServeDeploySchema(**deploy))
        wait_for_apps([a["name"] for a in apps], timeout_s=600)
        for model in ("fair", "fcfs"):
            light_ttft(url, model, flooded=False)  # warm
            results[model] = {"alone": light_ttft(url, model, flooded=False), "flooded": light_ttft(url, model, True)}
            step(f"fairness: {model}: light key TTFT p50 {results[model]['alone']['p50']:.0f} ms alone, "
                 f"{results[model]['flooded']['p50']:.0f} ms beside a {FLOOD}-stream flood")
        results["shares"] = {model: shares(url, model) for model in ("fair", "fcfs")}
        step(f"fairness: shares of weights 1 and 2: {results['shares']}")
    finally:
        serve.shutdown()
        ray.shutdown()
    return results


def targets(results: dict, target) -> list[dict]:
    if "fairness" not in results:
        return []
    f = results["fairness"]
    ratio = f["fair"]["flooded"]["p50"] / f["fair"]["alone"]["p50"]
    fcfs = f["fcfs"]["flooded"]["p50"] / f["fcfs"]["alone"]["p50"]
    share = f["shares"]["fair"]["share_two"]
    rows = [
        target(f"light key's TTFT p50 beside a {f['flood']}-stream flood: <= {TTFT_RATIO}x alone",
               f"{ratio:.2f}x ({f['fair']['flooded']['p50']:.0f} vs {f['fair']['alone']['p50']:.0f} ms); first come "
               f"first served in the same run: {fcfs:.2f}x", ratio <= TTFT_RATIO,
               "a light request waits for a place: the queue keeps reserved_places free for a key that comes "
               "while another floods."),
        target(f"token shares of two flooding keys within {SHARE_TOLERANCE:.0%} of their weights (2/3)",
               f"{share:.3f} for the weight-2 key (first come first served: "
               f"{f['shares']['fcfs']['share_two']:.3f})", abs(share - 2 / 3) <= SHARE_TOLERANCE * 2 / 3,
               "see the tokens each got beside the figure."),
    ]
    if "queue_cost_us" in f:
        rows.append(target("the fair queue below saturation adds under 2 ms to a request (the key-overhead target)",
                           f"{f['queue_cost_us']:.1f} us a request (a place taken and given back, one chunk counted, "
                           "the replica's metrics)", f["queue_cost_us"] < 2000, "see bench/fairness.py's queue_cost_us."))
    return rows


def section(results: dict) -> list[str]:
    if "fairness" not in results:
        return []
    f = results["fairness"]
    lines = ["## Fair queuing on a full model", "",
             f"The router (two ingress replicas, API keys) and one simulated llm ({f['max_num_seqs']} places, "
             f"{f['tokens_per_s']} tokens/s per stream, flood answers of {f['answer_tokens'][0]} to "
             f"{f['answer_tokens'][1]} tokens) in a Ray of their own "
             "(bench/fairness.py), deployed twice: `fair` (max_ongoing_requests 64: what waits, waits in the "
             "replica's fair queue) and `fcfs` (max_ongoing_requests = max_num_seqs: what waits, waits in the "
             "ingress replicas' handles, first come first served, as before the queue).", "",
             "| model | light key TTFT p50 alone | beside the flood | ratio | weight-2 key's share of tokens |",
             "|---|---|---|---|---|"]
    for model in ("fair", "fcfs"):
        r, s = f[model], f["shares"][model]
        lines.append(f"| {model} | {r['alone']['p50']:.0f} ms (p90 {r['alone']['p90']:.0f}) | {r['flooded']['p50']:.0f} "
                     f"ms (p90 {r['flooded']['p90']:.0f}) | {r['flooded']['p50'] / r['alone']['p50']:.2f}x | "
                     f"{s['share_two']:.3f} ({s['tokens']['two']} of {s['tokens']['one'] + s['tokens']['two']}) |")
    lines.append("")
    if f.get("run"):
        lines += [f"This section's run: `{f['run']['command']}`, {f['run']['date']}.", ""]
    return lines


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))

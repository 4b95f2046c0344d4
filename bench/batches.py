"""The Batch API on the default llm (#34's targets), in a Ray and Serve of its own (HTTP on
127.0.0.1), the router and the default llm only, both sides of each comparison in this run:

- throughput: REQUESTS chats (LINE_TOKENS tokens each, `ignore_eos`) sent by a client at each of
  CLIENT_CONCURRENCY, against the same requests as one batch (created to completed, polled);
- interactive TTFT: INTERACTIVE streamed chats one after another, alone, then while a
  BIG_BATCH-line batch runs on the same model (cancelled once they are done).

    .venv/bin/python bench/batches.py   # make bench-batches; make bench runs it too (bench/run.py)
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml
from workload import first_content_ms

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
LLM = "smollm2-135m-instruct"
REQUESTS, LINE_TOKENS = 96, 16
CLIENT_CONCURRENCY = (1, 4, 8, 16)
INTERACTIVE, INTERACTIVE_TOKENS = 12, 8
BIG_BATCH = 1000
THROUGHPUT_RATIO, TTFT_RATIO = 0.8, 1.2  # #34's targets


def body(i: int, max_tokens: int = LINE_TOKENS) -> dict:
    return {"model": LLM, "messages": [{"role": "user", "content": f"Write a line about the number {i}."}],
            "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0}


def client_rate(url: str, concurrency: int) -> float:
    """Requests per second for REQUESTS chats, `concurrency` at a time."""
    with httpx.Client(base_url=url, timeout=300) as client, ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        answers = list(pool.map(lambda i: client.post("/v1/chat/completions", json=body(i)), range(REQUESTS)))
        took = time.perf_counter() - started
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:2]
    return REQUESTS / took


def run_batch(client: httpx.Client, lines: int) -> str:
    data = "".join(json.dumps({"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
                               "body": body(i)}) + "\n" for i in range(lines))
    upload = client.post("/v1/files", files={"file": ("bench.jsonl", data.encode())}, data={"purpose": "batch"})
    upload.raise_for_status()
    made = client.post("/v1/batches", json={"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h"})
    made.raise_for_status()
    return made.json()["id"]


def batch_rate(url: str) -> float:
    """Requests per second for the same REQUESTS chats as one batch, from its creation to its end."""
    with httpx.Client(base_url=url, timeout=300) as client:
        started = time.perf_counter()
        batch_id = run_batch(client, REQUESTS)
        while (batch := client.get(f"/v1/batches/{batch_id}").json())["status"] != "completed":
            assert batch["status"] in ("validating", "in_progress", "finalizing"), batch
            time.sleep(0.1)
        took = time.perf_counter() - started
    assert batch["request_counts"]["completed"] == REQUESTS, batch
    return REQUESTS / took


def ttft_ms(client: httpx.Client, i: int) -> float:
    return first_content_ms(client, body(i, INTERACTIVE_TOKENS))


def interactive(url: str, beside_batch: bool) -> dict:
    with httpx.Client(base_url=url, timeout=300) as client:
        batch_id = None
        if beside_batch:
            batch_id = run_batch(client, BIG_BATCH)
            while client.get(f"/v1/batches/{batch_id}").json()["request_counts"]["completed"] < 8:
                time.sleep(0.2)  # the batch is running at full pace
        samples = [ttft_ms(client, i) for i in range(INTERACTIVE)]
        if batch_id:
            answered = client.get(f"/v1/batches/{batch_id}").json()["request_counts"]["completed"]
            client.post(f"/v1/batches/{batch_id}/cancel").raise_for_status()
    return {"p50": statistics.median(samples), "max": max(samples),
            **({"batch_answered_meanwhile": answered} if beside_batch else {})}


def measure(step=print) -> dict:
    import ray
    from helpers import free_port, wait_for_apps, with_state_file
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from serve_app.fairness.queue import RECENT_S

    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    with_state_file(config, Path(tempfile.mkdtemp(prefix="bench-batches-")) / "state.db")
    apps = [a for a in config["applications"] if a["name"] in ("router", LLM)]
    deploy = {**config, "http_options": {"host": "127.0.0.1", "port": free_port()}, "applications": apps}
    ray.init(address="local", num_cpus=8, log_to_driver=False, include_dashboard=False)
    url = f"http://127.0.0.1:{deploy['http_options']['port']}"
    try:
        serve.start(http_options=deploy["http_options"])
        _get_global_client().deploy_apps(ServeDeploySchema(**deploy))
        wait_for_apps([a["name"] for a in apps], timeout_s=600)
        client_rate(url, 4)  # warm: the model's first batches, the routes' first calls
        clients = {c: client_rate(url, c) for c in CLIENT_CONCURRENCY}
        step(f"batches: client req/s by concurrency {clients}")
        # Alone: no client request within the fair queue's memory of them, or the batch's lines would
        # give way to them (a quarter of the places: serve_app/fairness/queue.py).
        time.sleep(RECENT_S + 1)
        batch = batch_rate(url)
        step(f"batches: one batch of the same {REQUESTS} requests {batch:.2f} req/s")
        alone, beside = interactive(url, False), interactive(url, True)
        step(f"batches: interactive TTFT p50 {alone['p50']:.0f} ms alone, {beside['p50']:.0f} ms beside a batch")
    finally:
        serve.shutdown()
        ray.shutdown()
    from serve_app.config.router import RouterArgs

    router = RouterArgs.model_validate(next(a for a in apps if a["name"] == "router")["args"])
    return {"requests": REQUESTS, "line_tokens": LINE_TOKENS, "client_req_per_s": clients, "batch_req_per_s": batch,
            "batch_concurrency": router.batches.concurrency,
            "ttft_alone_ms": alone, "ttft_beside_batch_ms": beside, "big_batch": BIG_BATCH}


def targets(results: dict, target) -> list[dict]:
    if "batches" not in results:
        return []
    b = results["batches"]
    best_c, best = max(b["client_req_per_s"].items(), key=lambda kv: kv[1])
    ratio = b["batch_req_per_s"] / best
    ttft = b["ttft_beside_batch_ms"]["p50"] / b["ttft_alone_ms"]["p50"]
    return [
        target(f"a batch alone: >= {THROUGHPUT_RATIO} of a client's best throughput, same requests",
               f"{ratio:.2f} ({b['batch_req_per_s']:.2f} vs {best:.2f} req/s at concurrency {best_c})",
               ratio >= THROUGHPUT_RATIO, f"the runner keeps {b['batch_concurrency']} lines of a batch in flight "
               "(batches.concurrency); the client's best is at its own concurrency."),
        target(f"interactive TTFT p50 beside a {b['big_batch']}-line batch: <= {TTFT_RATIO}x alone",
               f"{b['ttft_beside_batch_ms']['p50']:.0f} vs {b['ttft_alone_ms']['p50']:.0f} ms ({ttft:.2f}x)",
               ttft <= TTFT_RATIO, "an interactive request goes first and finds a place free, but the batch's "
               "lines still hold a quarter of the places beside it (the batch band's share_beside_higher, 4 of 16), "
               "and on this CPU each engine step is slower with 4 more sequences in it; a smaller share trades "
               "the batch's progress beside people for their TTFT."),
    ]


def section(results: dict) -> list[str]:
    if "batches" not in results:
        return []
    b = results["batches"]
    rates = ", ".join(f"{v:.2f} at {k}" for k, v in b["client_req_per_s"].items())
    lines = ["## The Batch API", "",
             f"The router and the default llm in a Ray of their own (bench/batches.py). {b['requests']} chats of "
             f"{b['line_tokens']} tokens (`ignore_eos`): a client at each concurrency, requests/s: {rates}; the same "
             f"requests as one batch, created to completed, a minute after the last client request: "
             f"{b['batch_req_per_s']:.2f} req/s (the runner keeps {b['batch_concurrency']} lines in flight; alone, "
             "they may take every place of the model's replica).",
             f"Interactive streamed chats one at a time, time to first content: p50 {b['ttft_alone_ms']['p50']:.0f} ms "
             f"(max {b['ttft_alone_ms']['max']:.0f}) alone, p50 {b['ttft_beside_batch_ms']['p50']:.0f} ms (max "
             f"{b['ttft_beside_batch_ms']['max']:.0f}) while a {b['big_batch']}-line batch runs (it answered "
             f"{b['ttft_beside_batch_ms']['batch_answered_meanwhile']} lines by then, and was cancelled): its lines "
             "wait in the batch band of the replica's fair queue and hold at most a quarter of its places while "
             "people's requests come (serve_app/fairness/).", ""]
    if b.get("run"):
        lines += [f"This section's run: `{b['run']['command']}`, {b['run']['date']}.", ""]
    return lines


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))

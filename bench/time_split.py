"""Where the time goes under load, and what tracing costs (issue 22's bench rows).

1. The time split at 64 GPU-rate streams: each DB-GPT stream carries a span id of the
   bench's, so its access-log line (the router replica's log file) gives the server's
   parts (queue, prefill, decode, serving: serve_app/http/timing.py); beside each, the
   latency the client measured (sent to last byte). The mean of the parts' sum against
   the mean client latency says how much of the client's wait the split accounts for,
   and the mean of each part says where it went.
2. Tracing's cost: 16 GPU-rate streams, then the same with every process exporting spans
   over OTLP/HTTP to a receiver on 127.0.0.1, in one sitting: output tok/s of each.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import aiohttp
from gpu_rate import RATE, SIM_APP, TOKENS, TTFT_MS
from load import percentile

PARTS = ("queue", "prefill", "decode", "serving")
LINE = re.compile(r"span_id=(bench-split-\d+-\d+) (.*)$")


def router_lines() -> list[str]:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    return "".join(p.read_text(errors="ignore") for p in logs.glob("replica_router_router_*.log")).splitlines()


async def _stream(http: aiohttp.ClientSession, base_url: str, span_id: str) -> dict:
    body = {"model": SIM_APP, "prompt": f"{span_id} tell me a long story", "max_new_tokens": TOKENS, "span_id": span_id}
    sent = time.perf_counter()
    async with http.post(base_url + "/api/worker/generate_stream", json=body) as r:
        r.raise_for_status()
        async for _ in r.content.iter_any():
            pass
    return {"span_id": span_id, "client_ms": 1000 * (time.perf_counter() - sent)}


async def _streams(base_url: str, n: int, tag: str) -> tuple[list[dict], float]:
    connector = aiohttp.TCPConnector(limit=n + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http:
        started = time.perf_counter()
        done = await asyncio.gather(*(_stream(http, base_url, f"bench-split-{tag}-{i}") for i in range(n)))
        return done, time.perf_counter() - started


def split_under_load(base_url: str, streams: int = 64) -> dict:
    tag = str(int(time.time()))
    done, _ = asyncio.run(_streams(base_url, streams, tag))
    time.sleep(2)  # the access lines are written as each response ends, and flushed
    parts = {}
    for line in router_lines():
        match = LINE.search(line)
        if match and match[1].startswith(f"bench-split-{tag}-"):
            parts[match[1]] = {p: float(v) for p, v in re.findall(r"(\w+)_ms=([\d.]+)", match[2]) if p in PARTS}
    rows = [{**r, **parts[r["span_id"]]} for r in done if r["span_id"] in parts and len(parts[r["span_id"]]) == 4]
    server = [sum(r[p] for p in PARTS) for r in rows]
    client = [r["client_ms"] for r in rows]
    return {
        "streams": streams, "requests_with_split": len(rows),
        "mean_ms": {p: sum(r[p] for r in rows) / len(rows) for p in PARTS} if rows else {},
        "p99_ms": {p: percentile([r[p] for r in rows], 0.99) for p in PARTS} if rows else {},
        "client_mean_ms": sum(client) / len(client) if client else None,
        "parts_over_client": (sum(server) / sum(client)) if client else None,
    }


def tokens_per_s(base_url: str, streams: int = 16) -> float:
    done, wall = asyncio.run(_streams(base_url, streams, f"rate{int(time.time() * 1000)}"))
    return streams * TOKENS / wall


def tracing_cost(serve, config: dict, base_url: str, step, started: float) -> dict:
    """16 streams with tracing off, then on (the router and the simulated llm exporting every
    span to a receiver on 127.0.0.1), then off again: the cost is on against the mean of offs."""
    from cluster import deploy, wait_running

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inprocess"))
    from otlp_receiver import Receiver

    off_before = tokens_per_s(base_url)
    receiver = Receiver()
    traced = {**config, "applications": [
        {**a, "runtime_env": {"env_vars": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}}}
        if a["name"] in ("router", SIM_APP) else a for a in config["applications"]]}
    deploy(traced)
    wait_running(serve, ["router", SIM_APP], 300)
    time.sleep(5)  # the rolling update of both: wait for the old replicas to go
    tokens_per_s(base_url, 4)  # warm the new replicas
    on = tokens_per_s(base_url)
    spans = len(receiver.spans)
    deploy(config)
    wait_running(serve, ["router", SIM_APP], 300)
    time.sleep(5)
    tokens_per_s(base_url, 4)
    off_after = tokens_per_s(base_url)
    receiver.close()
    off = (off_before + off_after) / 2
    step(f"tracing: off {off:.0f} tok/s, on {on:.0f} tok/s, {spans} spans received", started)
    return {"streams": 16, "off_tokens_per_s": off, "off_runs": [off_before, off_after], "on_tokens_per_s": on,
            "on_over_off": on / off, "spans_received": spans, "rate": RATE, "ttft_ms": TTFT_MS}

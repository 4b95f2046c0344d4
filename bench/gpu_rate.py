"""GPU-rate streams: the serving path loaded as a GPU loads it, on any machine.

A simulated llm (no weights) streams 100 tokens/s to each stream in flight after
20 ms of "prefill", as a GPU engine does; N clients each ask it for 200 tokens at
once, through our ingress (`/v1/chat/completions`, `/api/worker/generate_stream`)
and through a bare Serve passthrough (bare_stream_app.py) as the reference. At the
client: delivered tokens/s against the ideal, the time to first token the serving
path adds over the engine's, and the gaps between chunks. Beside each run, the CPU
each serving process used (cores), to show which one is the limit.

The clients use aiohttp: on 2 shared cores httpx's own cost for a hundred streams
would be a good part of what is measured.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import httpx
from cpu import cores, cpu_seconds
from load import percentile

SIM_APP = "sim-gpu-rate"
BARE_APP = "bare-passthrough"
RATE = 100  # tokens per second per stream
TTFT_MS = 20
TOKENS = 200
STREAMS = (16, 64, 128)
INTERVALS_MS = (0, 20, 50, 100)  # stream_interval_ms values compared at 64 streams
TTFT_REQUESTS = 20
ROUTES = {
    "chat_completions": ("/v1/chat/completions", b"\n\n"),
    "generate_stream": ("/api/worker/generate_stream", b"\0"),
    "bare_passthrough": ("/bare/stream", b"\n"),
}
PROCESSES = {"proxy": "ray::ProxyActor", "ingress": "ray::ServeReplica:router:router",
             "bare": f"ray::ServeReplica:{BARE_APP}:bare", "model": f"ray::ServeReplica:{SIM_APP}:llm"}


def apps(here: str) -> list[dict]:
    sim = {
        "name": SIM_APP, "route_prefix": None, "import_path": "deployments.llm:build_app",
        "args": {"source": "simulated", "engine": "simulated", "simulated_tokens_per_s": RATE,
                 "simulated_ttft_ms": TTFT_MS, "max_num_seqs": 512},
        "deployments": [{"name": "llm", "max_ongoing_requests": 512, "ray_actor_options": {"num_cpus": 0.25}}],
    }
    bare = {
        "name": BARE_APP, "route_prefix": "/bare", "import_path": "bare_stream_app:build_app",
        "args": {"model": SIM_APP}, "runtime_env": {"env_vars": {"PYTHONPATH": here}},
    }
    return [sim, bare]


def body(route: str, i: int) -> dict:
    prompt = f"stream {i}: tell me a long story"
    if route == "chat_completions":
        return {"model": SIM_APP, "messages": [{"role": "user", "content": prompt}], "max_tokens": TOKENS,
                "stream": True, "stream_options": {"include_usage": True}}
    if route == "generate_stream":
        return {"model": SIM_APP, "prompt": prompt, "max_new_tokens": TOKENS}
    return {"prompt": prompt, "max_tokens": TOKENS}


def tokens_in(route: str, frame: bytes) -> tuple[bool, int]:
    """(whether the frame carries text, the completion tokens it reports so far)."""
    if route == "chat_completions":
        if not frame.startswith(b"data: {"):
            return False, 0
        event = json.loads(frame[6:])
        usage = event.get("usage") or {}
        return any((c.get("delta") or {}).get("content") for c in event.get("choices", [])), usage.get(
            "completion_tokens", 0)
    event = json.loads(frame)
    if route == "generate_stream":
        return bool(event["text"]), (event.get("usage") or {}).get("completion_tokens", 0)
    return bool(event["text"]), event["completion_tokens"]


async def one_stream(http: aiohttp.ClientSession, base_url: str, route: str, i: int) -> dict:
    path, separator = ROUTES[route]
    sent, marks, tokens, buf = time.perf_counter(), [], 0, b""
    async with http.post(base_url + path, json=body(route, i)) as r:
        r.raise_for_status()
        async for data in r.content.iter_any():
            now = time.perf_counter()
            *frames, buf = (buf + data).split(separator)
            for frame in frames:
                if frame.strip():
                    has_text, so_far = tokens_in(route, frame)
                    tokens = max(tokens, so_far)
                    if has_text:
                        marks.append(now)
    return {"sent": sent, "marks": marks, "tokens": tokens}


async def run(base_url: str, route: str, streams: int) -> dict:
    """`streams` clients at once, one request each; the numbers the issue's targets read."""
    connector = aiohttp.TCPConnector(limit=streams + 4)
    timeout = aiohttp.ClientTimeout(total=300)
    cpu_before = cpu_seconds(PROCESSES)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        results = await asyncio.gather(*(one_stream(http, base_url, route, i) for i in range(streams)))
        wall = time.perf_counter() - started
    cpu_after = cpu_seconds(PROCESSES)
    tokens = sum(r["tokens"] for r in results)
    ideal = streams * TOKENS / (TTFT_MS / 1000 + TOKENS / RATE)
    ttft = [1000 * (r["marks"][0] - r["sent"]) - TTFT_MS for r in results if r["marks"]]
    gaps = [1000 * (b - a) for r in results for a, b in zip(r["marks"], r["marks"][1:])]
    return {
        "route": route, "streams": streams, "tokens": tokens, "seconds": wall,
        "tokens_per_s": tokens / wall, "ideal_tokens_per_s": ideal, "of_ideal": tokens / wall / ideal,
        "ttft_added_ms": {"p50": percentile(ttft, 0.5), "p99": percentile(ttft, 0.99)},
        "gap_ms": {"p50": percentile(gaps, 0.5), "p99": percentile(gaps, 0.99), "chunks": len(gaps) + len(results)},
        "cores": cores(cpu_before, cpu_after, wall),
    }


async def ttft_alone(base_url: str) -> list[dict]:
    """One stream at a time: what the serving path adds to the engine's time to first token.
    The routes take turns, request by request, so that drift in the machine's load falls on all."""
    added = {route: [] for route in ROUTES}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        for i in range(TTFT_REQUESTS):
            for route in ROUTES:
                r = await one_stream(http, base_url, route, i)
                added[route].append(1000 * (r["marks"][0] - r["sent"]) - TTFT_MS)
    return [{"route": route, "requests": TTFT_REQUESTS, "p50_ms": percentile(xs, 0.5), "p99_ms": percentile(xs, 0.99)}
            for route, xs in added.items()]


def set_interval(base_url: str, interval_ms: float) -> None:
    """Through the management API, in place (user_config), as an operator would."""
    r = httpx.post(f"{base_url}/api/worker/apply", timeout=120, json={
        "model": SIM_APP, "apply_type": "update_params", "params": {"stream_interval_ms": interval_ms}})
    r.raise_for_status()


def measure(base_url: str, default_interval_ms: float, step) -> dict:
    """Every GPU-rate row, in one sitting: the interval sweep, then the routes at each load."""
    for route in ROUTES:  # warm every path once
        asyncio.run(run(base_url, route, 4))
    sweep = []
    for interval in INTERVALS_MS:
        set_interval(base_url, interval)
        row = {**asyncio.run(run(base_url, "chat_completions", 64)), "stream_interval_ms": interval}
        sweep.append(row)
        step(f"gpu-rate interval {interval} ms x64: {row['of_ideal']:.2f} of ideal, gap p99 {row['gap_ms']['p99']:.0f} ms")
    set_interval(base_url, default_interval_ms)
    rows = []
    for streams in STREAMS:
        for route in ROUTES:
            row = asyncio.run(run(base_url, route, streams))
            rows.append(row)
            step(f"gpu-rate {route} x{streams}: {row['tokens_per_s']:.0f} of {row['ideal_tokens_per_s']:.0f} tok/s")
    alone = asyncio.run(ttft_alone(base_url))
    return {"rate": RATE, "ttft_ms": TTFT_MS, "tokens": TOKENS, "stream_interval_ms": default_interval_ms,
            "sweep": sweep, "rows": rows, "ttft_alone": alone}

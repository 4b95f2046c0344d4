"""Concurrent HTTP clients and what they measure: tokens/s, TTFT, inter-token latency."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Optional

import httpx
from workload import EMBED_CLIENTS, EMBED_ROUNDS, EMBEDDER, LLM, NEW_TOKENS, QUESTIONS, TEXTS, chat

REQUEST_TIMEOUT_S = 120


def percentile(values: list[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(samples_s: list[float]) -> dict:
    ms = [1000 * s for s in samples_s]
    return {"p50_ms": percentile(ms, 0.5), "p99_ms": percentile(ms, 0.99), "n": len(ms)}


async def _worker_stream(client: httpx.AsyncClient, question: str, model: str) -> dict:
    """/api/worker/generate_stream: NUL-framed JSON, cumulative text."""
    body = {"model": model, "messages": chat(question), "temperature": 0, "max_new_tokens": NEW_TOKENS}
    started, marks, last_len, tokens, buf = time.perf_counter(), [], 0, 0, b""
    async with client.stream("POST", "/api/worker/generate_stream", json=body) as r:
        async for data in r.aiter_raw():
            now = time.perf_counter()
            buf += data
            *frames, buf = buf.split(b"\0")
            for frame in frames:
                out = json.loads(frame)
                if out["error_code"]:
                    raise RuntimeError(out["text"])
                if len(out["text"]) > last_len:
                    marks.append(now)
                    last_len = len(out["text"])
                if out.get("usage"):
                    tokens = out["usage"]["completion_tokens"]
    return {"started": started, "marks": marks, "tokens": tokens}


async def _chat_stream(client: httpx.AsyncClient, question: str, model: str) -> dict:
    """/v1/chat/completions with stream: SSE deltas, usage in the last chunk."""
    body = {"model": model, "messages": chat(question), "temperature": 0, "max_tokens": NEW_TOKENS,
            "stream": True, "stream_options": {"include_usage": True}}
    started, marks, tokens = time.perf_counter(), [], 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            now = time.perf_counter()
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(event["error"])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            if any((c.get("delta") or {}).get("content") for c in event.get("choices", [])):
                marks.append(now)
    return {"started": started, "marks": marks, "tokens": tokens}


STREAMS = {"generate_stream": _worker_stream, "chat_completions": _chat_stream}


async def llm_load(base_url: str, route: str, concurrency: int, rounds: int, model: str = LLM) -> dict:
    """`concurrency` clients, each sending `rounds` streaming requests one after another."""
    call = STREAMS[route]
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        async def one_client(i: int) -> list[dict]:
            return [await call(client, QUESTIONS[(i + r * concurrency) % len(QUESTIONS)], model)
                    for r in range(rounds)]

        started = time.perf_counter()
        per_client = await asyncio.gather(*(one_client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    results = [r for rs in per_client for r in rs]
    ttft = [r["marks"][0] - r["started"] for r in results if r["marks"]]
    itl = [b - a for r in results for a, b in zip(r["marks"], r["marks"][1:])]
    tokens = sum(r["tokens"] for r in results)
    return {
        "route": route, "model": model, "concurrency": concurrency, "requests": len(results), "completion_tokens": tokens,
        "seconds": elapsed, "tokens_per_s": tokens / elapsed,
        "ttft": summary(ttft), "itl": summary(itl), "ttft_samples_ms": [1000 * t for t in ttft],
    }


async def embed_load(base_url: str) -> dict:
    """64 clients, each sending single-text embedding requests one after another."""
    limits = httpx.Limits(max_connections=EMBED_CLIENTS + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        async def one_client(i: int) -> list[float]:
            latencies = []
            for r in range(EMBED_ROUNDS):
                text = TEXTS[(i + r) % len(TEXTS)]
                t0 = time.perf_counter()
                resp = await client.post("/api/worker/embeddings", json={"model": EMBEDDER, "input": [text]})
                resp.raise_for_status()
                assert len(resp.json()[0]) == 384
                latencies.append(time.perf_counter() - t0)
            return latencies

        started = time.perf_counter()
        lat = await asyncio.gather(*(one_client(i) for i in range(EMBED_CLIENTS)))
        elapsed = time.perf_counter() - started
    n = EMBED_CLIENTS * EMBED_ROUNDS
    return {"clients": EMBED_CLIENTS, "texts": n, "seconds": elapsed, "texts_per_s": n / elapsed,
            "latency": summary([x for xs in lat for x in xs])}


def timed(call, n: int) -> dict:
    """p50/p99 of `n` calls made one after another (after a few warm-up calls)."""
    for _ in range(5):
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return summary(samples)


def median(values):
    return statistics.median(values) if values else None

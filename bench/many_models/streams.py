"""One stream's chunks, timed: through our ingress (an OpenAI chat) and through the bare Serve
passthrough (bench/bare_stream_app.py) to the same simulated model."""

from __future__ import annotations

import json
import time

import httpx


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


def bare_chunk_times(client: httpx.Client, max_tokens: int) -> list[float]:
    """The same through the bare passthrough: Serve's own cost (proxy, handle, replica), nothing of ours."""
    started, times = time.perf_counter(), []
    with client.stream("POST", "/bare/stream", json={"prompt": "hi", "max_tokens": max_tokens}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line and json.loads(line).get("text"):
                times.append(time.perf_counter() - started)
    assert times, "the bare passthrough sent no text"
    return times

"""Coalescing a model's chunks into fewer messages through the deployment handle.

A GPU engine makes a token per stream every 5-20 ms. Sent one by one, each token
is a message the replica, Serve's router and the ingress all pay for, and at GPU
rates that cost, not the engine, limits how many streams a cluster serves (Ray
Serve LLM batches its stream the same way, `stream_batching_interval_ms`). So the
`llm` deployment sends the chunks made within `stream_interval_ms` of the last
message as one. The first chunk and the final one are never held back.

No timer is needed: a chunk is held only when it comes less than the interval after
the last message, and it leaves with the next chunk after the interval, so the most
it waits is one token's time, which is then shorter than the interval. An engine
slower than the interval (a CPU) sends every chunk at once, as before.
"""

from __future__ import annotations

import time
from typing import AsyncIterator, Optional

from serve_app.engines.base import GenerationChunk


async def coalesce(chunks: AsyncIterator[GenerationChunk], interval_s: float) -> AsyncIterator[GenerationChunk]:
    if interval_s <= 0:
        async for chunk in chunks:
            yield chunk
        return
    held: Optional[GenerationChunk] = None
    last_sent: Optional[float] = None
    async for chunk in chunks:
        held = chunk if held is None else held.followed_by(chunk)
        now = time.monotonic()
        if last_sent is None or held.finish_reason or now - last_sent >= interval_s:
            yield held
            held, last_sent = None, now
    if held is not None:  # a stream that ended without a finish reason: pass on what it made
        yield held

"""Concurrent embedding requests for one model merged into one deployment call, in the ingress.

Sixty-four clients sending one text each would otherwise be 64 handle calls, each
paying Serve's routing and a message both ways, where the encode itself costs a few
milliseconds of CPU per text; the text2vec replica batches again (`@serve.batch`)
what arrives together. Serve's `@serve.batch` collects the calls; each batch makes
one call per model and hands every request its own vectors and token counts back.
A failure of that call fails the requests that were in it, as each would have failed.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import NamedTuple, Optional

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.engines.base import Embedded


class Call(NamedTuple):
    model: str
    handle: DeploymentHandle
    texts: list[str]
    span_id: str
    keep: Optional[int]  # tokens each input is cut to (text2vec.embeddings); calls merge only with the same
    trace_context: dict


MERGED_TEXTS = 256  # the most texts one merged call carries


def _texts(calls: list[Call]) -> int:
    return sum(len(c.texts) for c in calls)


class EmbeddingsBatcher:
    def __init__(self, wait_ms: float):
        self.wait_ms = wait_ms
        self._together.set_batch_wait_timeout_s(wait_ms / 1000)

    async def embed(self, model: str, handle: DeploymentHandle, inputs: list[str | list[int]], span_id: str,
                    keep: Optional[int] = -1, trace_context: Optional[dict] = None) -> Embedded:
        # A request of many texts is a batch already; merging is for the small ones. Token-id
        # inputs go alone: an id the model does not have fails its call, and only its own.
        if not self.wait_ms or len(inputs) > MERGED_TEXTS // 8 or not all(isinstance(x, str) for x in inputs):
            return await handle.embeddings.remote(inputs, span_id, keep, sent_at=time.time(),
                                                  trace_context=trace_context)
        result = await self._together(Call(model, handle, inputs, span_id, keep, trace_context or {}))
        if isinstance(result, BaseException):
            raise result
        return result

    # Batches are counted in texts, and many run at once: one model's slow call must not
    # hold up the next batch, nor another model's (Serve's default is one batch at a time).
    @serve.batch(max_batch_size=MERGED_TEXTS, batch_wait_timeout_s=0.002, max_concurrent_batches=64, batch_size_fn=_texts)
    async def _together(self, calls: list[Call]) -> list:
        by_model: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, call in enumerate(calls):
            by_model[call.model, call.keep].append(i)
        results: list = [None] * len(calls)
        await asyncio.gather(*(self._one_model(calls, indexes, results) for indexes in by_model.values()))
        return results

    @staticmethod
    async def _one_model(calls: list[Call], indexes: list[int], results: list) -> None:
        first = calls[indexes[0]]
        try:
            merged = await first.handle.embeddings.remote([t for i in indexes for t in calls[i].texts], first.span_id,
                                                          first.keep, sent_at=time.time(),
                                                          trace_context=first.trace_context)
        except Exception as exc:  # every request of the call gets the error, as it would have alone
            for i in indexes:
                results[i] = exc
            return
        start = 0
        for i in indexes:
            end = start + len(calls[i].texts)
            results[i] = merged._replace(vectors=merged.vectors[start:end], token_counts=merged.token_counts[start:end])
            start = end

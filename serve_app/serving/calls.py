"""What every dialect's routes do with a model: check the request against its key and the
configured limits, find the model, and call its deployment.

One `ModelCalls` per ingress replica, on the app's state (ingress/app.py); the routes
parse their dialect's body, call one method here with typed values, and shape the
answer in their dialect. Each method looks the model up once.
"""

from __future__ import annotations

import time
import uuid
from typing import Optional

from ray.serve.handle import DeploymentHandle

from serve_app import tracing
from serve_app.config.router import RequestLimits
from serve_app.engines.base import Embedded, GenerationRequest, Scored
from serve_app.errors import AuthError, InvalidRequest
from serve_app.http.context import current_key, note
from serve_app.serving.embeddings_batcher import EmbeddingsBatcher
from serve_app.serving.fallbacks import open_with_fallbacks, waking
from serve_app.serving.registry import ModelEntry, ModelRegistry
from serve_app.serving.streams import OpenStream


def new_span_id(given: Optional[str] = None) -> str:
    """The request's span id: DB-GPT's own when its client sent one, else a new one."""
    return given or uuid.uuid4().hex


class ModelCalls:
    def __init__(self, registry: ModelRegistry, limits: RequestLimits, embeddings_batch_wait_ms: float = 0,
                 wake_timeout_s: float = 120):
        self.registry = registry
        self.limits = limits
        self.embedder = EmbeddingsBatcher(embeddings_batch_wait_ms)
        self.wake_timeout_s = wake_timeout_s

    def check(self, model: str, span_id: str = "", *, messages=None, inputs=None, documents=None,
              max_tokens=None) -> None:
        """The key may call the model (403), the request is within the configured limits (400
        naming the one exceeded); note the access-log fields."""
        note(model=model, span_id=span_id or None)
        key = current_key()
        if key is not None and not key.may_call(model):
            raise AuthError(403, f"this API key may not call model '{model}'")
        limits = self.limits
        for value, limit, what in (
            (messages, limits.max_messages, "messages"),
            (inputs, limits.max_inputs, "inputs"),
            (documents, limits.max_documents, "documents"),
        ):
            if value is not None and len(value) > limit:
                raise InvalidRequest(f"too many {what}: {len(value)} (the limit is {limit})")
        if max_tokens is not None and max_tokens > limits.max_tokens:
            raise InvalidRequest(f"max tokens {max_tokens} is over the limit of {limits.max_tokens}")

    async def handle(self, model: str, *worker_types: str) -> DeploymentHandle:
        return await self.registry.handle(model, *worker_types)

    async def generate(self, model: str, requests: list[GenerationRequest]) -> tuple[str, list[OpenStream]]:
        """A stream per request, opened on the model or, when it cannot take them, on a fallback
        (serving/fallbacks.py): (the model that took them, their streams)."""
        return await open_with_fallbacks(self.registry, model, current_key(),
                                         lambda handle: OpenStream.open_all(handle, requests), self.wake_timeout_s)

    async def embed(self, model: str, inputs: list, span_id: str, keep: Optional[int] = -1
                    ) -> tuple[Embedded, ModelEntry]:
        """The vectors of `inputs` and the model's entry (its args say what the vectors allow).
        `keep`: tokens each input is cut to (-1: the model's most); None: inputs over the
        model's most are not embedded, for the caller to refuse (deployments/text2vec.py)."""
        entry = await self.registry.lookup(model)
        handle = self.registry.handle_of(entry, "text2vec")
        with tracing.span("call text2vec", **{"smmf.model": model}):
            call = self.embedder.embed(model, handle, inputs, span_id, keep, tracing.carrier())
            embedded = await waking(entry, call, self.wake_timeout_s)
        note(queue_s=embedded.queue_s, prefill_s=embedded.compute_s)
        return embedded, entry

    async def score(self, model: str, query: str, documents: list[str], span_id: str) -> Scored:
        self.check(model, span_id, documents=documents)
        entry = await self.registry.lookup(model)
        handle = self.registry.handle_of(entry, "reranker")
        with tracing.span("call reranker", **{"smmf.model": model}):
            call = handle.rerank.remote(query, documents, span_id, sent_at=time.time(), trace_context=tracing.carrier())
            scored = await waking(entry, call, self.wake_timeout_s)
        note(queue_s=scored.queue_s, prefill_s=scored.compute_s)
        return scored

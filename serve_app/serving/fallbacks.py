"""A generation opened on its model or, when that model cannot take it, on its fallbacks.

An llm's args may name `fallbacks: [name, ...]`, tried in order when the model is
saturated (its queue is full), has no running replica, or the prompt does not fit its
context. A model asleep (scaled to zero) is woken by the request instead, which waits for
it up to the ingress's `wake_timeout_s`; only then do its fallbacks answer. Only before the first token: a stream that has started stays on its model.
A key limited to some models falls back only to models it may call. The answer names
the model that served it (`model` in OpenAI's answers, and the X-SMMF-Model header).
Embedding and rerank models do not fall back: another model's vectors and scores are
not interchangeable with theirs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ray.serve.handle import DeploymentHandle

from serve_app import tracing
from serve_app.errors import ModelNotFound, ModelNotReady, ModelOverloaded, ModelWaking, PromptTooLong
from serve_app.http.context import note
from serve_app.serving.registry import ModelEntry, ModelRegistry

MODEL_HEADER = "X-SMMF-Model"
# What another model may answer instead; anything else (a bad request, a model that
# broke mid-way) is the caller's answer as it is.
FALLBACK_ON = (ModelOverloaded, ModelNotReady, ModelWaking, PromptTooLong)


async def open_with_fallbacks(
    registry: ModelRegistry, model: str, key, opener: Callable[[DeploymentHandle], Awaitable[Any]],
    wake_timeout_s: float = 120,
) -> tuple[str, Any]:
    """(the model that took the request, what `opener` returned for it). `key`: the request's
    API key (governance/keys.py's KeyRecord) or None; it must be allowed each fallback."""
    entry = await registry.lookup(model)  # a model that does not exist is the answer as it is
    fallbacks = [n for n in entry.args.get("fallbacks") or [] if n != model and (key is None or key.may_call(n))]
    first_error = None
    for name in [model] + fallbacks:
        try:
            with tracing.span(f"attempt {name}", **{"smmf.model": name}):
                target = entry if name == model else await registry.lookup(name)
                result = await waking(target, opener(registry.handle_of(target, "llm")), wake_timeout_s)
        except FALLBACK_ON + (ModelNotFound,) as exc:
            first_error = first_error or exc  # the asked model's reason, if no fallback takes it
            continue
        if name != model:
            note(fallback_from=model)
        return name, result
    raise first_error


async def waking(entry: ModelEntry, call: Awaitable[Any], timeout_s: float) -> Any:
    """A call to a model; to one asleep (scaled to zero), bounded: Serve starts a replica for
    the request, which waits at most `timeout_s` for it (then 503, Retry-After)."""
    if not entry.asleep:
        return await call
    try:
        return await asyncio.wait_for(call, timeout_s)
    except asyncio.TimeoutError:
        raise ModelWaking(entry.name, timeout_s) from None

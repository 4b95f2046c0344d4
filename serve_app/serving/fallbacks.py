"""A generation opened on its model or, when that model cannot take it, on its fallbacks.

An llm's args may name `fallbacks: [name, ...]`, tried in order when the model is
saturated (its queue is full), has no running replica, or the prompt does not fit its
context. Only before the first token: a stream that has started stays on its model.
A key limited to some models falls back only to models it may call. The answer names
the model that served it (`model` in OpenAI's answers, and the X-SMMF-Model header).
Embedding and rerank models do not fall back: another model's vectors and scores are
not interchangeable with theirs.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from ray.serve.handle import DeploymentHandle

from serve_app import tracing
from serve_app.errors import ModelNotFound, ModelNotReady, ModelOverloaded, PromptTooLong
from serve_app.http.context import note
from serve_app.serving.registry import ModelRegistry

MODEL_HEADER = "X-SMMF-Model"
# What another model may answer instead; anything else (a bad request, a model that
# broke mid-way) is the caller's answer as it is.
FALLBACK_ON = (ModelOverloaded, ModelNotReady, PromptTooLong)


async def open_with_fallbacks(
    registry: ModelRegistry, model: str, key, opener: Callable[[DeploymentHandle], Awaitable[Any]]
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
                result = await opener(registry.handle_of(target, "llm"))
        except FALLBACK_ON + (ModelNotFound,) as exc:
            first_error = first_error or exc  # the asked model's reason, if no fallback takes it
            continue
        if name != model:
            note(fallback_from=model)
        return name, result
    raise first_error

"""OpenAI-compatible serving: turn engine chunks into chat/completion responses and SSE.

The router validates the body, finds the model's handle and opens the stream
(see `streams.OpenStream`) before the HTTP response starts, so an error before
the first token still gets its status code; the functions here shape the answer.
An error after the headers becomes one final error frame, then `[DONE]`.
"""

import asyncio
import base64
import json
from typing import AsyncIterator, Optional

import numpy as np
from ray.serve.handle import DeploymentHandle

from serve_app.engine import GenerationChunk
from serve_app.errors import InvalidRequest, ServeError, as_serve_error
from serve_app.protocol import Usage
from serve_app.streams import OpenStream, usage_of
from serve_app.openai_protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ErrorInfo,
    new_id,
    now,
)


def error_body(err: ServeError, param: Optional[str] = None) -> dict:
    return {"error": ErrorInfo(message=err.message, type=err.error_type, param=param, code=err.status_code).model_dump()}


DONE = "data: [DONE]\n\n"


def sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def add_usage(total: Usage, chunk: GenerationChunk) -> None:
    for field, value in usage_of(chunk):
        setattr(total, field, getattr(total, field) + value)


async def collect(stream: OpenStream) -> tuple[str, GenerationChunk]:
    text, last = "", stream.first
    try:
        async for last in stream.chunks():
            text += last.text
    except Exception as exc:
        raise as_serve_error(exc) from exc
    return text, last


# --- chat --------------------------------------------------------------------------


async def chat_completion(req: ChatCompletionRequest, stream: OpenStream) -> dict:
    text, last = await collect(stream)
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": now(),
        "model": req.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": last.finish_reason,
            }
        ],
        "usage": usage_of(last).model_dump(),
    }


async def chat_completion_sse(req: ChatCompletionRequest, stream: OpenStream) -> AsyncIterator[str]:
    base = {"id": new_id("chatcmpl"), "object": "chat.completion.chunk", "created": now(), "model": req.model}
    usage = Usage()

    def frame(delta: dict, finish: Optional[str] = None) -> str:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    async def body() -> AsyncIterator[str]:
        yield frame({"role": "assistant", "content": ""})
        async for chunk in stream.chunks():
            if chunk.text:
                yield frame({"content": chunk.text})
            if chunk.finish_reason:
                add_usage(usage, chunk)
                yield frame({}, chunk.finish_reason)

    async for line in _ending(body(), base, usage if req.include_usage else None):
        yield line


# --- completions -------------------------------------------------------------------


async def completion(req: CompletionRequest, streams: list[OpenStream]) -> dict:
    results = await asyncio.gather(*(collect(s) for s in streams))
    prompt_tokens = sum(last.prompt_tokens for _, last in results)
    completion_tokens = sum(last.completion_tokens for _, last in results)
    prompts = req.prompts()
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": now(),
        "model": req.model,
        "choices": [
            {
                "index": i,
                "text": (prompts[i] if req.echo else "") + text,
                "logprobs": None,
                "finish_reason": last.finish_reason,
            }
            for i, (text, last) in enumerate(results)
        ],
        "usage": Usage(
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
        ).model_dump(),
    }


async def completion_sse(req: CompletionRequest, streams: list[OpenStream]) -> AsyncIterator[str]:
    """Several prompts generate at once but stream one after another; `index` tells them apart."""
    base = {"id": new_id("cmpl"), "object": "text_completion", "created": now(), "model": req.model}
    prompts = req.prompts()
    usage = Usage()

    def frame(i: int, text: str, finish: Optional[str] = None) -> str:
        return sse({**base, "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": finish}]})

    async def body() -> AsyncIterator[str]:
        for i, stream in enumerate(streams):
            if req.echo:
                yield frame(i, prompts[i])
            async for chunk in stream.chunks():
                if chunk.text:
                    yield frame(i, chunk.text)
                if chunk.finish_reason:
                    add_usage(usage, chunk)
                    yield frame(i, "", chunk.finish_reason)

    async for line in _ending(body(), base, usage if req.include_usage else None):
        yield line


async def _ending(body: AsyncIterator[str], base: dict, usage: Optional[Usage]) -> AsyncIterator[str]:
    """The one way an SSE stream ends: the body, the usage chunk when asked, `[DONE]`.

    An error after the headers replaces the rest with one error frame, then `[DONE]`,
    so a client can always tell a complete answer from a broken one.
    """
    try:
        async for line in body:
            yield line
    except Exception as exc:
        yield sse(error_body(as_serve_error(exc)))
        yield DONE
        return
    if usage is not None:
        yield sse({**base, "choices": [], "usage": usage.model_dump()})
    yield DONE


# --- embeddings ----------------------------------------------------------------------


async def embeddings(handle: DeploymentHandle, req: EmbeddingRequest, span_id: str) -> dict:
    try:
        texts = req.texts()
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    try:
        vectors, tokens = await handle.embeddings.remote(texts, span_id)
    except Exception as exc:
        raise as_serve_error(exc) from exc
    if req.dimensions is not None and vectors and req.dimensions != len(vectors[0]):
        raise InvalidRequest(f"this model makes {len(vectors[0])}-dimensional vectors; 'dimensions' cannot change that")

    def encode(v: list[float]):
        # The SDK decodes base64 as little-endian float32.
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() if req.encoding_format == "base64" else v

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

"""The OpenAI dialect's answers: chat and completion responses and SSE streams from
engine chunks, embeddings, rerank, and the error shape.

The ingress validates the body, finds the model's handle and opens the stream
(`streams.OpenStream`) before the HTTP response starts, so an error before the
first token still gets its status code; the functions here shape the answer.
An error after the headers becomes one final error frame, then `[DONE]`.
"""

from __future__ import annotations

import asyncio
import base64
from typing import AsyncIterator, Callable, Optional

import numpy as np
from pydantic import BaseModel

from serve_app.engines.base import Embedded, GenerationChunk, Scored, Usage
from serve_app.errors import InvalidRequest, ServeError, as_serve_error
from serve_app.openai_protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest
from serve_app.openai_responses import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionChunk,
    ChatCompletionResponse,
    ChunkChoice,
    CompletionChoice,
    CompletionResponse,
    Delta,
    EmbeddingData,
    EmbeddingResponse,
    EmbeddingUsage,
    ErrorInfo,
    ErrorResponse,
    RerankDocument,
    RerankResponse,
    RerankResult,
    RerankUsage,
    new_id,
    now,
)
from serve_app.openai_tools import ToolCall, ToolCallDelta
from serve_app.request_context import note_usage
from serve_app.streams import OpenStream
from serve_app.tool_calls import CallWatch, parse_calls

DONE = "data: [DONE]\n\n"


def error_body(err: ServeError, param: Optional[str] = None) -> dict:
    info = ErrorInfo(message=err.message, type=err.error_type, param=param, code=err.status_code)
    return ErrorResponse(error=info).model_dump()


def sse(frame: BaseModel) -> str:
    # A frame carries `usage` only when it is the usage frame, as OpenAI's do.
    return f"data: {frame.model_dump_json(exclude=None if getattr(frame, 'usage', None) else {'usage'})}\n\n"


def add_usage(total: Usage, chunk: GenerationChunk) -> None:
    for field, value in chunk.usage():
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


async def chat_completion(req: ChatCompletionRequest, stream: OpenStream) -> ChatCompletionResponse:
    text, last = await collect(stream)
    note_usage(last.prompt_tokens, last.completion_tokens)
    content, calls = parse_calls(text, req.tool_names()) if req.tools_in_use() else (text, [])
    calls = _kept(req, calls)
    message = AssistantMessage(content=content, tool_calls=calls) if calls else AssistantMessage(content=text)
    choice = ChatChoice(message=message, finish_reason="tool_calls" if calls else last.finish_reason)
    return ChatCompletionResponse(model=req.model, choices=[choice], usage=last.usage())


def _kept(req: ChatCompletionRequest, calls: list[ToolCall]) -> list[ToolCall]:
    return calls if req.parallel_tool_calls else calls[:1]


async def chat_completion_sse(req: ChatCompletionRequest, stream: OpenStream) -> AsyncIterator[str]:
    base = {"id": new_id("chatcmpl"), "created": now(), "model": req.model}
    usage = Usage()

    def frame(delta: Delta, finish: Optional[str] = None) -> str:
        return sse(ChatCompletionChunk(**base, choices=[ChunkChoice(delta=delta, finish_reason=finish)]))

    # With tools, text that may be a call is held back until the answer is whole.
    watch = CallWatch(forced=bool(req.forced_tools())) if req.tools_in_use() else None

    async def body() -> AsyncIterator[str]:
        yield frame(Delta(role="assistant", content=""))
        async for chunk in stream.chunks():
            text = watch.feed(chunk.text) if watch else chunk.text
            if text:
                yield frame(Delta(content=text))
            if chunk.finish_reason:
                finish = chunk.finish_reason
                if watch:
                    rest, calls = watch.finish(req.tool_names())
                    if rest:
                        yield frame(Delta(content=rest))
                    if calls:
                        deltas = [ToolCallDelta(index=i, **c.model_dump()) for i, c in enumerate(_kept(req, calls))]
                        yield frame(Delta(tool_calls=deltas))
                        finish = "tool_calls"
                add_usage(usage, chunk)
                note_usage(usage.prompt_tokens, usage.completion_tokens)
                yield frame(Delta(), finish)

    usage_frame = (lambda: ChatCompletionChunk(**base, choices=[], usage=usage)) if req.include_usage else None
    async for line in _ending(body(), usage_frame):
        yield line


# --- completions -------------------------------------------------------------------


async def completion(req: CompletionRequest, streams: list[OpenStream]) -> CompletionResponse:
    results = await asyncio.gather(*(collect(s) for s in streams))
    prompts = req.prompts()
    usage = Usage()
    for _, last in results:
        add_usage(usage, last)
    note_usage(usage.prompt_tokens, usage.completion_tokens)
    choices = [
        CompletionChoice(index=i, text=(prompts[i] if req.echo else "") + text, finish_reason=last.finish_reason)
        for i, (text, last) in enumerate(results)
    ]
    return CompletionResponse(model=req.model, choices=choices, usage=usage)


async def completion_sse(req: CompletionRequest, streams: list[OpenStream]) -> AsyncIterator[str]:
    """Several prompts generate at once but stream one after another; `index` tells them apart."""
    base = {"id": new_id("cmpl"), "created": now(), "model": req.model}
    prompts = req.prompts()
    usage = Usage()

    def frame(i: int, text: str, finish: Optional[str] = None) -> str:
        return sse(CompletionResponse(**base, choices=[CompletionChoice(index=i, text=text, finish_reason=finish)]))

    async def body() -> AsyncIterator[str]:
        for i, stream in enumerate(streams):
            if req.echo:
                yield frame(i, prompts[i])
            async for chunk in stream.chunks():
                if chunk.text:
                    yield frame(i, chunk.text)
                if chunk.finish_reason:
                    add_usage(usage, chunk)
                    note_usage(usage.prompt_tokens, usage.completion_tokens)
                    yield frame(i, "", chunk.finish_reason)

    usage_frame = (lambda: CompletionResponse(**base, choices=[], usage=usage)) if req.include_usage else None
    async for line in _ending(body(), usage_frame):
        yield line


async def _ending(body: AsyncIterator[str], usage_frame: Optional[Callable[[], BaseModel]]) -> AsyncIterator[str]:
    """The one way an SSE stream ends: the body, the usage frame when asked, `[DONE]`.

    An error after the headers replaces the rest with one error frame, then `[DONE]`,
    so a client can always tell a complete answer from a broken one. The usage frame
    is made after the body, which counts the usage.
    """
    try:
        async for line in body:
            yield line
    except Exception as exc:
        yield sse(ErrorResponse(**error_body(as_serve_error(exc))))
        yield DONE
        return
    if usage_frame is not None:
        yield sse(usage_frame())
    yield DONE


# --- embeddings and rerank -----------------------------------------------------------


def embeddings(req: EmbeddingRequest, embedded: Embedded) -> EmbeddingResponse:
    vectors = embedded.vectors
    if req.dimensions is not None and vectors and req.dimensions != len(vectors[0]):
        raise InvalidRequest(f"this model makes {len(vectors[0])}-dimensional vectors; 'dimensions' cannot change that")

    def encode(v: list[float]):
        # The SDK decodes base64 as little-endian float32.
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() if req.encoding_format == "base64" else v

    tokens = embedded.prompt_tokens
    note_usage(tokens)
    return EmbeddingResponse(
        data=[EmbeddingData(index=i, embedding=encode(v)) for i, v in enumerate(vectors)],
        model=req.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def rerank(req: RerankRequest, scored: Scored) -> RerankResponse:
    """Cohere/Jina's shape: the best `top_n` documents first."""
    documents = req.texts()
    ranked = sorted(range(len(scored.scores)), key=lambda i: scored.scores[i], reverse=True)[: req.top_n]
    results = [
        RerankResult(
            index=i,
            relevance_score=scored.scores[i],
            document=RerankDocument(text=documents[i]) if req.return_documents else None,
        )
        for i in ranked
    ]
    note_usage(scored.total_tokens)
    return RerankResponse(model=req.model, results=results, usage=RerankUsage(total_tokens=scored.total_tokens))

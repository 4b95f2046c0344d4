"""The OpenAI dialect's text answers: chat and completion responses and SSE streams from
engine chunks, and the error shape (embeddings and rerank: vectors.py).

The routes (routes.py) validate the body, find the model's handle and open the stream
(serving/streams.py) before the HTTP response starts, so an error before the first
token still gets its status code; the functions here shape the answer. An error
after the headers becomes one final error frame, then `[DONE]`.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable, NamedTuple, Optional, Union

from pydantic import BaseModel

from serve_app.dialects.openai.logprobs import chat_logprobs, completion_logprobs, vllm_prompt_logprobs
from serve_app.dialects.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
)
from serve_app.dialects.openai.responses import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionChunk,
    ChatCompletionResponse,
    ChatUsage,
    ChunkChoice,
    CompletionChoice,
    CompletionResponse,
    CompletionTokensDetails,
    Delta,
    ErrorInfo,
    ErrorResponse,
    PromptTokensDetails,
    new_id,
    now,
)
from serve_app.dialects.openai.tools import ToolCallDelta
from serve_app.engines.base import GenerationChunk, TokenLogprob
from serve_app.errors import ServeError, as_serve_error
from serve_app.http.context import note_usage
from serve_app.serving.streams import OpenStream
from serve_app.tools.definitions import ToolCall
from serve_app.tools.parsing import CallWatch, parse_calls

DONE = "data: [DONE]\n\n"


def error_body(err: ServeError, param: Optional[str] = None) -> dict:
    info = ErrorInfo(message=err.message, type=err.error_type, param=param, code=err.code)
    return ErrorResponse(error=info).model_dump()


def sse(frame: BaseModel) -> str:
    # A frame carries `usage` only when it is the usage frame, as OpenAI's do.
    return f"data: {frame.model_dump_json(exclude=None if getattr(frame, 'usage', None) else {'usage'})}\n\n"


class Answer(NamedTuple):
    """One choice, whole: its text, its thinking, its last chunk (finish reason and counts),
    its logprobs."""

    text: str
    reasoning: str
    last: GenerationChunk
    logprobs: Optional[list[TokenLogprob]]


async def collect(stream: OpenStream) -> Answer:
    text, reasoning, last, logprobs = "", "", stream.first, None
    async for last in stream.chunks():
        text, reasoning = text + last.text, reasoning + last.reasoning
        if last.logprobs is not None:
            logprobs = (logprobs or []) + last.logprobs
    return Answer(text, reasoning, last, logprobs)


def usage_of(lasts: list[GenerationChunk], n: int) -> ChatUsage:
    """Every choice's completion tokens; each prompt's tokens once, not once per choice; a
    reasoning model's thinking tokens apart too."""
    prompt = sum(last.prompt_tokens for last in lasts[::n])
    completion = sum(last.completion_tokens for last in lasts)
    thinking = sum(last.reasoning_tokens for last in lasts)
    note_usage(prompt, completion)
    details = CompletionTokensDetails(reasoning_tokens=thinking) if thinking else None
    known = [last.cached_tokens for last in lasts[::n] if last.cached_tokens is not None]
    cached = PromptTokensDetails(cached_tokens=sum(known)) if known else None
    return ChatUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                     prompt_tokens_details=cached, completion_tokens_details=details)


# --- chat --------------------------------------------------------------------------


async def collect_all(streams: list[OpenStream]) -> list[Answer]:
    try:
        return await asyncio.gather(*(collect(s) for s in streams))
    finally:
        OpenStream.cancel_unfinished(streams)


async def chat_completion(req: ChatCompletionRequest, streams: list[OpenStream]) -> ChatCompletionResponse:
    answers = await collect_all(streams)
    choices = [_chat_choice(req, i, answer) for i, answer in enumerate(answers)]
    return ChatCompletionResponse(model=req.model, choices=choices, usage=usage_of([a.last for a in answers], req.n))


def _chat_choice(req: ChatCompletionRequest, index: int, answer: Answer) -> ChatChoice:
    content, calls = parse_calls(answer.text, req.tool_names()) if req.tools_in_use() else (answer.text, [])
    calls = _kept(req, calls)
    thinking = answer.reasoning if req.include_reasoning and answer.reasoning else None
    message = AssistantMessage(content=content if calls else answer.text, tool_calls=calls or None,
                               reasoning_content=thinking, reasoning=thinking)
    return ChatChoice(index=index, message=message, finish_reason="tool_calls" if calls else answer.last.finish_reason,
                      logprobs=chat_logprobs(answer.logprobs, req.return_tokens_as_token_ids))


def _kept(req: ChatCompletionRequest, calls: list[ToolCall]) -> list[ToolCall]:
    return calls if req.parallel_tool_calls else calls[:1]


async def chat_completion_sse(req: ChatCompletionRequest, streams: list[OpenStream]) -> AsyncIterator[str]:
    """The choices generate at once and stream one after another; `index` tells them apart."""
    base = {"id": new_id("chatcmpl"), "created": now(), "model": req.model}
    lasts: list[GenerationChunk] = []
    totals: list[ChatUsage] = []  # the usage, once the body has counted it

    def frame(i: int, delta: Delta, finish: Optional[str] = None, logprobs=None) -> str:
        choice = ChunkChoice(index=i, delta=delta, finish_reason=finish, logprobs=logprobs)
        return sse(ChatCompletionChunk(**base, choices=[choice]))

    async def body() -> AsyncIterator[str]:
        for i, stream in enumerate(streams):
            yield frame(i, Delta(role="assistant", content=""))
            # With tools, text that may be a call is held back until the answer is whole.
            watch = CallWatch(forced=bool(req.forced_tools())) if req.tools_in_use() else None
            async for chunk in stream.chunks():
                if chunk.reasoning and req.include_reasoning:
                    yield frame(i, Delta(reasoning_content=chunk.reasoning, reasoning=chunk.reasoning))
                text = watch.feed(chunk.text) if watch else chunk.text
                logprobs = chat_logprobs(chunk.logprobs, req.return_tokens_as_token_ids)
                if text or (logprobs and logprobs.content):
                    yield frame(i, Delta(content=text), logprobs=logprobs)
                if chunk.finish_reason:
                    finish = chunk.finish_reason
                    if watch:
                        rest, calls = watch.finish(req.tool_names())
                        if rest:
                            yield frame(i, Delta(content=rest))
                        if calls:
                            deltas = [ToolCallDelta(index=j, **c.model_dump()) for j, c in enumerate(_kept(req, calls))]
                            yield frame(i, Delta(tool_calls=deltas))
                            finish = "tool_calls"
                    lasts.append(chunk)
                    yield frame(i, Delta(), finish)
        totals.append(usage_of(lasts, req.n))

    usage_frame = (lambda: ChatCompletionChunk(**base, choices=[], usage=totals[0])) if req.include_usage else None
    async for line in _ending(body(), usage_frame, streams):
        yield line


# --- completions -------------------------------------------------------------------


def _echoed(prompt: Union[str, list[int]], first: GenerationChunk) -> str:
    """The prompt as the choice's text begins with it: as sent, or the text of its token ids."""
    return prompt if isinstance(prompt, str) else first.prompt or ""


def _prompt_scores(req: CompletionRequest, first: GenerationChunk) -> tuple[Optional[list[TokenLogprob]], Optional[list]]:
    """The scored prompt (first chunk) as each field asked for it: what an echo adds in front of
    the choice's logprobs, and vLLM's `prompt_logprobs`; None where not asked."""
    echoed = first.prompt_logprobs if req.echo and req.logprobs is not None else None
    vllm = None if req.prompt_logprobs is None else vllm_prompt_logprobs(first.prompt_logprobs, req.prompt_logprobs)
    return echoed, vllm


async def completion(req: CompletionRequest, streams: list[OpenStream]) -> CompletionResponse:
    """Choices prompt by prompt, `n` each: choice i answers prompt i // n."""
    answers = await collect_all(streams)
    prompts = req.prompts()
    choices = []
    for i, (answer, stream) in enumerate(zip(answers, streams)):
        echoed = _echoed(prompts[i // req.n], stream.first) if req.echo else ""
        prompt_part, prompt_logprobs = _prompt_scores(req, stream.first)
        scored = answer.logprobs if prompt_part is None else prompt_part + (answer.logprobs or [])
        choices.append(CompletionChoice(
            index=i, text=echoed + answer.text, finish_reason=answer.last.finish_reason,
            logprobs=completion_logprobs(scored, as_ids=req.return_tokens_as_token_ids, top=req.logprobs),
            prompt_logprobs=prompt_logprobs,
        ))
    return CompletionResponse(model=req.model, choices=choices, usage=usage_of([a.last for a in answers], req.n))


async def completion_sse(req: CompletionRequest, streams: list[OpenStream]) -> AsyncIterator[str]:
    """The choices generate at once and stream one after another; `index` tells them apart."""
    base = {"id": new_id("cmpl"), "created": now(), "model": req.model}
    prompts = req.prompts()
    lasts: list[GenerationChunk] = []
    totals: list[ChatUsage] = []  # the usage, once the body has counted it

    def frame(i: int, text: str, finish: Optional[str] = None, logprobs=None, prompt_logprobs=None) -> str:
        choice = CompletionChoice(index=i, text=text, finish_reason=finish, logprobs=logprobs,
                                  prompt_logprobs=prompt_logprobs)
        return sse(CompletionResponse(**base, choices=[choice]))

    async def body() -> AsyncIterator[str]:
        for i, stream in enumerate(streams):
            offset = 0
            if req.echo or req.prompt_logprobs is not None:  # the prompt first, in a frame of its own
                echoed = _echoed(prompts[i // req.n], stream.first) if req.echo else ""
                scored, prompt_logprobs = _prompt_scores(req, stream.first)
                logprobs = completion_logprobs(scored, 0, req.return_tokens_as_token_ids, req.logprobs)
                yield frame(i, echoed, logprobs=logprobs, prompt_logprobs=prompt_logprobs)
                offset = len(echoed)
            async for chunk in stream.chunks():
                if chunk.text or chunk.logprobs:
                    logprobs = completion_logprobs(chunk.logprobs, offset, req.return_tokens_as_token_ids, req.logprobs)
                    yield frame(i, chunk.text, logprobs=logprobs)
                    offset += len(chunk.text)
                if chunk.finish_reason:
                    lasts.append(chunk)
                    yield frame(i, "", chunk.finish_reason)
        totals.append(usage_of(lasts, req.n))

    usage_frame = (lambda: CompletionResponse(**base, choices=[], usage=totals[0])) if req.include_usage else None
    async for line in _ending(body(), usage_frame, streams):
        yield line


async def _ending(body: AsyncIterator[str], usage_frame: Optional[Callable[[], BaseModel]],
                  streams: list[OpenStream]) -> AsyncIterator[str]:
    """The one way an SSE stream ends: the body, the usage frame when asked, `[DONE]`.

    An error after the headers replaces the rest with one error frame, then `[DONE]`,
    so a client can always tell a complete answer from a broken one; the choices not
    yet streamed are stopped then, or when the client leaves. The usage frame is made
    after the body, which counts the usage.
    """
    try:
        async for line in body:
            yield line
    except Exception as exc:
        yield sse(ErrorResponse(**error_body(as_serve_error(exc))))
        yield DONE
        return
    finally:
        OpenStream.cancel_unfinished(streams)
    if usage_frame is not None:
        yield sse(usage_frame())
    yield DONE

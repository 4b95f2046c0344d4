"""The Messages API's answers: a whole `message`, or its stream of named SSE events
(`message_start`, a start, deltas and a stop per content block, `message_delta`,
`message_stop`). A failure after the stream began is an `error` event and no
`message_stop`, so a client never takes a broken answer for a whole one.
"""

from __future__ import annotations

import json
import uuid
from typing import AsyncIterator, Optional

from serve_app.dialects.anthropic.protocol import ErrorBody, ErrorDetail, MessagesRequest, tool_input
from serve_app.engines.base import GenerationChunk
from serve_app.engines.reasoning import thinking_token
from serve_app.errors import ServeError, as_serve_error
from serve_app.http.context import note_usage
from serve_app.serving.streams import OpenStream
from serve_app.tools.definitions import ToolCall
from serve_app.tools.parsing import CallWatch, parse_calls

# Anthropic's error type for each status (its own 529 "overloaded" is our 503).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
               429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error"}


def error_body(err: ServeError) -> dict:
    return ErrorBody(error=ErrorDetail(type=ERROR_TYPES.get(err.status_code, "api_error"), message=err.message)).model_dump()


def _stop_reason(last: GenerationChunk, calls: list[ToolCall]) -> tuple[str, Optional[str]]:
    if calls:
        return "tool_use", None
    if last.finish_reason == "length":
        return "max_tokens", None
    if last.stop_string is not None:
        return "stop_sequence", last.stop_string
    return "end_turn", None


def _tool_block(call: ToolCall) -> dict:
    return {"type": "tool_use", "id": call.id.replace("call-", "toolu_", 1), "name": call.function.name,
            "input": tool_input(call.function.arguments)}


def _calls(req: MessagesRequest, text: str) -> tuple[str, list[ToolCall]]:
    if not req.tools_in_use():
        return text, []
    rest, calls = parse_calls(text, {f.name for f in req.tools_in_use()})
    if req.tool_choice and req.tool_choice.disable_parallel_tool_use:
        calls = calls[:1]
    return (rest or "") if calls else text, calls


def _usage(last: GenerationChunk) -> dict:
    note_usage(last.prompt_tokens, last.completion_tokens)
    return {"input_tokens": last.prompt_tokens, "output_tokens": last.completion_tokens}


async def message(req: MessagesRequest, model: str, stream: OpenStream) -> dict:
    text, thinking, last = "", "", stream.first
    async for last in stream.chunks():
        text, thinking = text + last.text, thinking + last.reasoning
    text, calls = _calls(req, text)
    content = []
    if thinking and req.shows_thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": thinking_token(thinking)})
    if text:
        content.append({"type": "text", "text": text})
    content += [_tool_block(c) for c in calls]
    stop_reason, stop_sequence = _stop_reason(last, calls)
    return {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": _usage(last)}


def event(name: str, data: dict) -> str:
    # Anthropic's clients skip an event without its `event:` line.
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


class _Blocks:
    """The stream's content blocks, opened as their first piece comes and closed in turn; a
    thinking block gets its signature just before it stops, as Anthropic's do."""

    def __init__(self):
        self.index, self.open, self.thought = -1, None, ""

    def to(self, kind: str, start: dict) -> list[str]:
        if self.open == kind:
            return []
        out = self.close()
        self.index, self.open = self.index + 1, kind
        return out + [event("content_block_start", {"index": self.index, "content_block": start})]

    def delta(self, delta: dict) -> str:
        return event("content_block_delta", {"index": self.index, "delta": delta})

    def close(self) -> list[str]:
        if self.open is None:
            return []
        out = [self.delta({"type": "signature_delta", "signature": thinking_token(self.thought)})] \
            if self.open == "thinking" else []
        self.open = None
        return out + [event("content_block_stop", {"index": self.index})]

    def thinking(self, text: str) -> list[str]:
        self.thought += text
        # `signature` empty until the block's signature_delta: Anthropic's block type requires the key.
        return self.to("thinking", {"type": "thinking", "thinking": "", "signature": ""}) + \
            [self.delta({"type": "thinking_delta", "thinking": text})]

    def text(self, text: str) -> list[str]:
        return self.to("text", {"type": "text", "text": ""}) + [self.delta({"type": "text_delta", "text": text})]


async def message_events(req: MessagesRequest, model: str, stream: OpenStream) -> AsyncIterator[str]:
    first = stream.first
    head = {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": first.prompt_tokens, "output_tokens": 0}}
    yield event("message_start", {"message": head})
    blocks = _Blocks()
    watch = CallWatch(forced=bool(req.forced())) if req.tools_in_use() else None
    try:
        async for chunk in stream.chunks():
            lines = blocks.thinking(chunk.reasoning) if chunk.reasoning and req.shows_thinking else []
            text = watch.feed(chunk.text) if watch else chunk.text
            lines += blocks.text(text) if text else []
            if chunk.finish_reason:
                lines += _ending(req, blocks, watch, chunk)
            for line in lines:
                yield line
    except Exception as exc:
        yield event("error", error_body(as_serve_error(exc)))
    finally:
        OpenStream.cancel_unfinished([stream])


def _ending(req: MessagesRequest, blocks: _Blocks, watch: Optional[CallWatch], last: GenerationChunk) -> list[str]:
    """What the last chunk ends: held text, the calls it made, the open block, the message."""
    lines, calls = [], []
    if watch:
        rest, calls = watch.finish({f.name for f in req.tools_in_use()})
        calls = calls[:1] if req.tool_choice and req.tool_choice.disable_parallel_tool_use else calls
        lines += blocks.text(rest) if rest else []
    for call in calls:
        block = _tool_block(call)
        lines += blocks.to(block["id"], {**block, "input": {}})
        lines.append(blocks.delta({"type": "input_json_delta", "partial_json": json.dumps(block["input"])}))
    lines += blocks.close()
    stop_reason, stop_sequence = _stop_reason(last, calls)
    delta = {"delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
             "usage": {"output_tokens": _usage(last)["output_tokens"]}}
    return lines + [event("message_delta", delta), event("message_stop", {})]

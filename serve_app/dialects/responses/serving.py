"""The Responses API's answers: the response object, or its stream of semantic events in
OpenAI's order (`response.created`, `response.in_progress`, each output item added, its
deltas and its done events, then `response.completed`, or `response.incomplete` when the
token budget ran out). A failure after the stream began is an `error` event and no
terminal `response.*` event, so a client never takes a broken answer for a whole one.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator, Callable, Optional

from serve_app.dialects.openai.logprobs import output_text_logprobs
from serve_app.dialects.responses.protocol import ResponsesRequest
from serve_app.engines.base import GenerationChunk, TokenLogprob
from serve_app.engines.reasoning import thinking_token
from serve_app.errors import as_serve_error
from serve_app.http.context import note_usage
from serve_app.serving.streams import OpenStream
from serve_app.tools.definitions import ToolCall
from serve_app.tools.parsing import CallWatch, parse_calls


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def reasoning_item(thinking: str, item_id: Optional[str] = None, opaque: bool = False) -> dict:
    """`opaque` (include: reasoning.encrypted_content): the item carries a token for a client that
    keeps no state to send back with it (engines/reasoning.thinking_token)."""
    item = {"id": item_id or new_id("rs"), "type": "reasoning", "summary": [],
            "content": [{"type": "reasoning_text", "text": thinking}]}
    if opaque:
        item["encrypted_content"] = thinking_token(thinking)
    return item


def text_part(text: str, logprobs: Optional[list[dict]] = None) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def message_item(text: str, item_id: Optional[str] = None, status: str = "completed",
                 logprobs: Optional[list[dict]] = None) -> dict:
    return {"id": item_id or new_id("msg"), "type": "message", "role": "assistant", "status": status,
            "content": [text_part(text, logprobs)] if status == "completed" else []}


def message_logprobs(req: ResponsesRequest, chunk: GenerationChunk) -> list[TokenLogprob]:
    """The chunk's tokens' logprobs when asked for, unless all it adds is thinking (not the message's)."""
    if req.logprobs_wanted() is None or (chunk.reasoning and not chunk.text):
        return []
    return chunk.logprobs or []


def call_item(call: ToolCall, status: str = "completed") -> dict:
    return {"id": call.id.replace("call-", "fc_", 1), "type": "function_call", "status": status,
            "call_id": call.id.replace("call-", "call_", 1), "name": call.function.name,
            "arguments": call.function.arguments if status == "completed" else ""}


def _calls(req: ResponsesRequest, text: str) -> tuple[str, list[ToolCall]]:
    if not req.tools_in_use():
        return text, []
    rest, calls = parse_calls(text, {f.name for f in req.tools_in_use()})
    calls = calls if req.parallel_tool_calls else calls[:1]
    return (rest or "") if calls else text, calls


class Shell:
    """What every response object of one request says besides its output and usage."""

    def __init__(self, req: ResponsesRequest, model: str):
        self.req, self.model = req, model
        self.id, self.created = new_id("resp"), int(time.time())
        self.opaque = "reasoning.encrypted_content" in req.include  # reasoning items carry encrypted_content

    def object(self, status: str, output: list[dict], last: Optional[GenerationChunk] = None) -> dict:
        req = self.req
        usage = None
        if last is not None:
            note_usage(last.prompt_tokens, last.completion_tokens)
            # cache_write_tokens: what OpenAI bills for writing its prompt cache, which its SDK's
            # types require; a prefix cache here costs nothing to write.
            usage = {"input_tokens": last.prompt_tokens,
                     "input_tokens_details": {"cached_tokens": last.cached_tokens or 0, "cache_write_tokens": 0},
                     "output_tokens": last.completion_tokens,
                     "output_tokens_details": {"reasoning_tokens": last.reasoning_tokens},
                     "total_tokens": last.prompt_tokens + last.completion_tokens}
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        answer = {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "completed_at": int(time.time()) if status in ("completed", "incomplete") else None,
            "error": None, "incomplete_details": incomplete, "instructions": req.instructions,
            "model": self.model, "output": output, "parallel_tool_calls": req.parallel_tool_calls,
            "metadata": req.metadata or {}, "tool_choice": _jsonable(req.tool_choice or "auto"),
            "tools": req.tools or [], "temperature": req.temperature, "top_p": req.top_p,
            "max_output_tokens": req.max_output_tokens, "previous_response_id": req.previous_response_id,
            "store": req.store, "text": {"format": req.format.model_dump(by_alias=True, exclude_none=True)},
            "reasoning": {"effort": None, "summary": None}, "truncation": req.truncation,
        }
        # The schema has these as objects or strings when present: left out until known.
        optional = {"usage": usage, "user": req.user, "top_logprobs": req.top_logprobs}
        return {**answer, **{k: v for k, v in optional.items() if v is not None}}


def _jsonable(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _status(last: GenerationChunk) -> str:
    return "incomplete" if last.finish_reason == "length" else "completed"


async def response(req: ResponsesRequest, shell: Shell, stream: OpenStream, kept: Callable[[dict], dict]) -> dict:
    """The whole response; `kept` stores it (store.py) and returns it as stored."""
    text, thinking, last, scored = "", "", stream.first, []
    async for last in stream.chunks():
        text, thinking = text + last.text, thinking + last.reasoning
        scored += message_logprobs(req, last)
    text, calls = _calls(req, text)
    top = req.logprobs_wanted()
    logprobs = None if top is None else output_text_logprobs(scored, top)
    output = ([reasoning_item(thinking, opaque=shell.opaque)] if thinking else []) + \
        ([message_item(text, logprobs=logprobs)] if text else []) + [call_item(c) for c in calls]
    return kept(shell.object(_status(last), output, last))


class Events:
    """The stream's events, numbered, and the output items it has opened."""

    def __init__(self, shell: Shell):
        self.shell, self.seq, self.output = shell, 0, []
        self.thinking: Optional[dict] = None  # the reasoning item being streamed
        self.message: Optional[dict] = None
        self.top = shell.req.logprobs_wanted()
        self.pending: list[TokenLogprob] = []  # the message's tokens not yet in a delta event
        self.scored: list[TokenLogprob] = []  # the message's tokens sent in delta events

    def event(self, kind: str, **data) -> str:
        line = f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': self.seq, **data})}\n\n"
        self.seq += 1
        return line

    def think(self, delta: str) -> list[str]:
        out = []
        if self.thinking is None:
            self.thinking = reasoning_item("")
            out.append(self.event("response.output_item.added", output_index=len(self.output),
                                  item={**self.thinking, "content": []}))
        self.thinking["content"][0]["text"] += delta
        return out + [self.event("response.reasoning_text.delta", item_id=self.thinking["id"],
                                 output_index=len(self.output), content_index=0, delta=delta)]

    def close_thinking(self) -> list[str]:
        if self.thinking is None:
            return []
        item, index, self.thinking = self.thinking, len(self.output), None
        if self.shell.opaque:
            item = reasoning_item(item["content"][0]["text"], item["id"], opaque=True)
        self.output.append(item)
        return [self.event("response.reasoning_text.done", item_id=item["id"], output_index=index, content_index=0,
                           text=item["content"][0]["text"]),
                self.event("response.output_item.done", output_index=index, item=item)]

    def say(self, delta: str) -> list[str]:
        out = self.close_thinking()
        if self.message is None:
            self.message = message_item("", status="in_progress")
            out += [self.event("response.output_item.added", output_index=len(self.output), item=self.message),
                    self.event("response.content_part.added", item_id=self.message["id"], output_index=len(self.output),
                               content_index=0, part=text_part(""))]
            self.message["text"] = ""
        self.message["text"] += delta
        sent, self.pending = self.pending, []
        self.scored += sent
        return out + [self.event("response.output_text.delta", item_id=self.message["id"],
                                 output_index=len(self.output), content_index=0, delta=delta,
                                 logprobs=self._logprobs(sent, for_event=True))]

    def _logprobs(self, scored: list[TokenLogprob], for_event: bool = False) -> list[dict]:
        return [] if self.top is None else output_text_logprobs(scored, self.top, for_event)

    def close_message(self) -> list[str]:
        if self.message is None:
            return []
        text, index = self.message.pop("text"), len(self.output)
        scored, self.scored, self.pending = self.scored + self.pending, [], []
        item, self.message = message_item(text, self.message["id"], logprobs=self._logprobs(scored)), None
        self.output.append(item)
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [self.event("response.output_text.done", **common, text=text,
                           logprobs=self._logprobs(scored, for_event=True)),
                self.event("response.content_part.done", **common, part=item["content"][0]),
                self.event("response.output_item.done", output_index=index, item=item)]

    def call(self, call: ToolCall) -> list[str]:
        item, index = call_item(call), len(self.output)
        self.output.append(item)
        return [self.event("response.output_item.added", output_index=index, item=call_item(call, "in_progress")),
                self.event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                           delta=item["arguments"]),
                self.event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                           name=item["name"], arguments=item["arguments"]),
                self.event("response.output_item.done", output_index=index, item=item)]


async def response_events(req: ResponsesRequest, shell: Shell, stream: OpenStream,
                          kept: Callable[[dict], dict]) -> AsyncIterator[str]:
    events = Events(shell)
    yield events.event("response.created", response=shell.object("in_progress", []))
    yield events.event("response.in_progress", response=shell.object("in_progress", []))
    watch = CallWatch(forced=bool(req.forced())) if req.tools_in_use() else None
    try:
        async for chunk in stream.chunks():
            lines = events.think(chunk.reasoning) if chunk.reasoning else []
            events.pending += message_logprobs(req, chunk)
            text = watch.feed(chunk.text) if watch else chunk.text
            lines += events.say(text) if text else []
            if chunk.finish_reason:
                rest, calls = watch.finish({f.name for f in req.tools_in_use()}) if watch else ("", [])
                lines += (events.say(rest) if rest else []) + events.close_thinking() + events.close_message()
                for call in calls if req.parallel_tool_calls else calls[:1]:
                    lines += events.call(call)
                status = _status(chunk)
                final = kept(shell.object(status, events.output, chunk))
                lines.append(events.event(f"response.{status}", response=final))
            for line in lines:
                yield line
    except Exception as exc:
        err = as_serve_error(exc)
        yield events.event("error", code=err.code, message=err.message, param=None)
    finally:
        OpenStream.cancel_unfinished([stream])

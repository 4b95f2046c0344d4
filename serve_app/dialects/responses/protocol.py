"""Request models of OpenAI's Responses API (`POST /v1/responses`), and a request as the
conversation the engines read.

Done: text and item input, `instructions`, function tools and their outputs,
`tool_choice`, `text.format` (structured output), `previous_response_id` over stored
responses, reasoning items, `background` (background.py), `include` (the message's logprobs
with `top_logprobs`, reasoning's opaque `encrypted_content`). Refused by name, since each would
change the answer and none can be done here: built-in tools (web search, files, computer use,
MCP), `reasoning.effort` and `reasoning.summary`, `truncation: "auto"`, `conversation`,
`context_management` (compaction), `moderation`,
`prompt` templates, non-text input, and `background` with `stream` (resumable streams).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_app.dialects.openai.structured import ResponseFormat
from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams
from serve_app.tools.definitions import FunctionDef, call_schema

LOGPROBS = "message.output_text.logprobs"
# What `include` may name. Besides logprobs and reasoning's opaque content, each names the output
# of a built-in tool or an image input, which this server refuses: none can be in an answer.
Includable = Literal["message.output_text.logprobs", "reasoning.encrypted_content", "file_search_call.results",
                     "web_search_call.results", "web_search_call.action.sources", "message.input_image.image_url",
                     "computer_call_output.output.image_url", "code_interpreter_call.outputs"]
REFUSED = {"conversation": "conversations", "context_management": "context compactions",
           "moderation": "moderation passes",
           "prompt": "prompt templates", "reasoning.effort": "reasoning effort",
           "reasoning.summary": "reasoning summaries"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionTool(FunctionDef):
    """A function tool, flat (chat nests it under `function`); `strict` defaults to true there,
    and a forced call always follows `parameters` here."""

    type: Literal["function"]


class NamedFunction(_Body):
    type: Literal["function"]
    name: str


class TextFormat(_Body):
    """`text.format`: chat's response_format, flat (no `json_schema` wrapper)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: Optional[str] = None
    schema_: Optional[dict[str, Any]] = Field(default=None, alias="schema")
    strict: Optional[bool] = None

    def as_response_format(self) -> ResponseFormat:
        if self.type == "json_schema":
            return ResponseFormat.model_validate({"type": "json_schema", "json_schema": {
                "name": self.name or "answer", "schema": self.schema_ or {}, "strict": self.strict}})
        return ResponseFormat.model_validate({"type": self.type})


class TextOptions(_Body):
    format: TextFormat = Field(default_factory=TextFormat)


def _text_of(content: Union[str, list[dict[str, Any]], None]) -> str:
    if isinstance(content, list):
        kinds = {p.get("type") for p in content} - {"input_text", "output_text", "text"}
        if kinds:
            raise ValueError(f"input: content of type {', '.join(sorted(map(str, kinds)))}: these models take text only")
        return "".join(str(p.get("text", "")) for p in content)
    return content or ""


def to_chat(items: list[dict[str, Any]]) -> list[ChatMessage]:
    """Input items (and earlier responses' output items) as chat turns: a function call is an
    assistant turn's call, its output a `tool` turn; reasoning items are not sent back, as
    reasoning models' templates drop earlier thinking."""
    turns: list[ChatMessage] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = {"developer": "system"}.get(item.get("role"), item.get("role"))
            if role not in ("system", "user", "assistant"):
                raise ValueError(f"input: a message with role '{item.get('role')}'")
            turns.append(ChatMessage(role=role, content=_text_of(item.get("content"))))
        elif kind == "function_call":
            call = {"type": "function", "id": item.get("call_id"),
                    "function": {"name": item.get("name"), "arguments": json.loads(item.get("arguments") or "{}")}}
            if turns and turns[-1].role == "assistant" and turns[-1].tool_calls and not turns[-1].content:
                turns[-1].tool_calls.append(call)  # parallel calls: one assistant turn
            else:
                turns.append(ChatMessage(role="assistant", content="", tool_calls=[call]))
        elif kind == "function_call_output":
            output = item.get("output")
            turns.append(ChatMessage(role="tool", content=output if isinstance(output, str) else _text_of(output),
                                     tool_call_id=item.get("call_id")))
        elif kind != "reasoning":
            raise ValueError(f"input: an item of type '{kind}' (built-in tools are not supported by this server)")
    return turns


class ResponsesRequest(_Body):
    model: str = Field(min_length=1)
    input: Union[str, list[dict[str, Any]]]
    instructions: Optional[str] = None
    tools: Optional[list[dict[str, Any]]] = Field(default=None, max_length=128)
    tool_choice: Union[Literal["none", "auto", "required"], NamedFunction, None] = None
    parallel_tool_calls: bool = True
    text: Optional[TextOptions] = None
    max_output_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(default=None, gt=0.0, le=1.0)
    previous_response_id: Optional[str] = None
    store: bool = True
    stream: bool = False
    background: bool = False  # answered at once, queued; the answer is read back with GET (background.py)
    truncation: Literal["disabled", "auto"] = "disabled"
    include: list[Includable] = Field(default_factory=list)
    top_logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    metadata: Optional[dict[str, str]] = None
    user: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data):
        if not isinstance(data, dict):
            return data
        reasoning = data.get("reasoning") or {}
        given = {**{k: data.get(k) for k in ("conversation", "prompt", "context_management", "moderation")},
                 "reasoning.effort": reasoning.get("effort"), "reasoning.summary": reasoning.get("summary")}
        for field, value in given.items():
            if value:
                raise ValueError(f"{field}: {REFUSED[field]} are not supported by this server")
        if data.get("background") and data.get("stream"):
            raise ValueError("background: with stream (a stream to resume later) is not supported; "
                             "poll GET /v1/responses/{id} instead")
        if data.get("background") and data.get("store") is False:
            raise ValueError("background: needs store: true (the answer is read back from the store)")
        if data.get("truncation") == "auto":
            raise ValueError("truncation: 'auto' (dropping earlier input to fit) is not supported; "
                             "a conversation over the context is refused")
        return data

    @model_validator(mode="after")
    def _tools_and_choice(self):
        for tool in self.tools or []:
            if tool.get("type") != "function":
                raise ValueError(f"tools: '{tool.get('type')}' is a built-in tool, which this server does not run")
        names = {f.name for f in self.functions()}
        choice = self.tool_choice
        if choice not in (None, "none", "auto") and not names:
            raise ValueError("tool_choice: asks for a tool call but 'tools' is empty")
        if isinstance(choice, NamedFunction) and choice.name not in names:
            raise ValueError(f"tool_choice: names function '{choice.name}', which is not in 'tools'")
        if self.forced() and self.format.type != "text":
            raise ValueError("text.format: cannot apply while tool_choice forces a call (the call is the answer)")
        if self.top_logprobs is not None and LOGPROBS not in self.include:
            raise ValueError(f"top_logprobs: needs include: ['{LOGPROBS}']")
        if LOGPROBS in self.include and self.tools_in_use():
            raise ValueError(f"include: '{LOGPROBS}' with tools is not supported (a call's tokens are not the message's)")
        if self.input == [] and self.previous_response_id is None:
            raise ValueError("input: must not be empty (give a message or items, or continue a stored "
                             "response with previous_response_id)")
        self.items()  # input that cannot be read is a 400 here, naming it
        return self

    def functions(self) -> list[FunctionDef]:
        return [FunctionTool.model_validate(t) for t in self.tools or []]

    def tools_in_use(self) -> list[FunctionDef]:
        return [] if self.tool_choice == "none" else self.functions()

    def forced(self) -> list[FunctionDef]:
        if self.tool_choice == "required":
            return self.functions()
        if isinstance(self.tool_choice, NamedFunction):
            return [f for f in self.functions() if f.name == self.tool_choice.name]
        return []

    def logprobs_wanted(self) -> Optional[int]:
        """Alternatives per token the message's text reports (0: only the chosen token's); None: no logprobs."""
        return (self.top_logprobs or 0) if LOGPROBS in self.include else None

    @property
    def format(self) -> TextFormat:
        return self.text.format if self.text else TextFormat()

    def items(self) -> list[dict[str, Any]]:
        """The input as items (a string is one user message)."""
        items = [{"type": "message", "role": "user", "content": self.input}] if isinstance(self.input, str) \
            else list(self.input)
        to_chat(items)
        return items

    def generation(self, earlier: list[dict[str, Any]], span_id: str) -> GenerationRequest:
        """`earlier`: the stored conversation `previous_response_id` continues (its input and output items)."""
        system = [ChatMessage(role="system", content=self.instructions)] if self.instructions else []
        forced = self.forced()
        schema = call_schema(forced) if forced else self.format.as_response_format().schema_to_follow()
        params = SamplingParams(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_output_tokens,
                                json_schema=schema, logprobs=self.logprobs_wanted())
        tools = [{"type": "function", "function": f.model_dump(include={"name", "description", "parameters"})}
                 for f in self.tools_in_use()]
        return GenerationRequest(messages=system + to_chat(earlier + self.items()), params=params,
                                 tools=tools or None, overflow="error", span_id=span_id, session=self.user or "")

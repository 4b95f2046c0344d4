"""Request models of Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`),
and what a request becomes for the engines.

Text, tool use and tool results, a system prompt, stop sequences, thinking and structured
output (`output_config.format`) are done; images and documents (these models read text
only), the server-side tools and containers Anthropic runs itself, and an `effort` other
than Anthropic's default, are refused by name. Unknown keys are ignored, as
Anthropic's own API does with ones it does not use.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams
from serve_app.tools.definitions import FunctionDef, call_schema

# What would change the answer and cannot be done here; each a 400 naming it.
REFUSED = {"mcp_servers": "MCP servers", "container": "code-execution containers"}
TEXT_BLOCKS = ("text",)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Block(_Body):
    """A content block; which fields it has depends on its type."""

    type: str
    text: Optional[str] = None
    id: Optional[str] = None  # tool_use
    name: Optional[str] = None
    input: Optional[dict[str, Any]] = None
    tool_use_id: Optional[str] = None  # tool_result
    content: Union[str, list[dict[str, Any]], None] = None
    is_error: bool = False
    thinking: Optional[str] = None  # an earlier answer's thinking, sent back
    signature: Optional[str] = None

    @model_validator(mode="after")
    def _known(self):
        if self.type not in ("text", "tool_use", "tool_result", "thinking", "redacted_thinking"):
            raise ValueError(f"a content block of type '{self.type}': these models take text only")
        return self

    def result_text(self) -> str:
        if isinstance(self.content, list):
            kinds = {part.get("type") for part in self.content} - {"text"}
            if kinds:
                raise ValueError(f"a tool_result holding {', '.join(sorted(map(str, kinds)))}: text only")
            return "".join(str(part.get("text", "")) for part in self.content)
        return self.content or ""


class Message(_Body):
    role: Literal["user", "assistant"]
    content: Union[str, list[Block]]

    def to_chat(self) -> list[ChatMessage]:
        """One turn in the template's vocabulary: a user turn's tool results become `tool` turns
        (one per result, as chat templates expect); an earlier answer's thinking is dropped,
        as reasoning models' templates drop it."""
        if isinstance(self.content, str):
            return [ChatMessage(role=self.role, content=self.content)]
        text = "".join(b.text or "" for b in self.content if b.type == "text")
        calls = [{"type": "function", "id": b.id, "function": {"name": b.name, "arguments": b.input or {}}}
                 for b in self.content if b.type == "tool_use"]
        turns = [ChatMessage(role="tool", content=b.result_text(), tool_call_id=b.tool_use_id)
                 for b in self.content if b.type == "tool_result"]
        if text or calls or not turns:
            turns.append(ChatMessage(role=self.role, content=text, tool_calls=calls or None))
        return turns


class ToolDef(_Body):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: Optional[str] = None
    input_schema: Optional[dict[str, Any]] = None
    type: Optional[str] = None

    @model_validator(mode="after")
    def _custom_only(self):
        if self.type not in (None, "custom"):
            raise ValueError(f"tools: '{self.type}' is one of Anthropic's server tools, which run only there")
        if self.input_schema is None:
            raise ValueError(f"tools: '{self.name}' has no input_schema")
        return self

    def function(self) -> FunctionDef:
        return FunctionDef(name=self.name, description=self.description, parameters=self.input_schema)


class ToolChoice(_Body):
    type: Literal["auto", "any", "tool", "none"]
    name: Optional[str] = None
    disable_parallel_tool_use: bool = False


class Thinking(_Body):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Optional[int] = Field(default=None, ge=1024)


class OutputFormat(_Body):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Body):
    format: Optional[OutputFormat] = None
    effort: Optional[str] = None

    @field_validator("effort")
    @classmethod
    def _one_effort(cls, v):
        # Anthropic's default is "high", which is what every answer here is: no model here spends more or less.
        if v not in (None, "high"):
            raise ValueError(f"'{v}' is not supported by this server: its models answer at one effort "
                             "(Anthropic's default, 'high')")
        return v


class CountTokensRequest(_Body):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: Union[str, list[Block], None] = None
    tools: Optional[list[ToolDef]] = Field(default=None, max_length=128)

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data):
        for field, what in REFUSED.items():
            if isinstance(data, dict) and data.get(field):
                raise ValueError(f"{field}: {what} are not supported by this server")
        return data

    def system_text(self) -> Optional[str]:
        if isinstance(self.system, list):
            return "".join(b.text or "" for b in self.system if b.type == "text")
        return self.system

    def chat(self) -> list[ChatMessage]:
        system = self.system_text()
        head = [ChatMessage(role="system", content=system)] if system else []
        return head + [turn for m in self.messages for turn in m.to_chat()]

    def functions(self) -> list[FunctionDef]:
        return [t.function() for t in self.tools or []]

    def generation(self) -> GenerationRequest:
        tools = [{"type": "function", "function": f.model_dump(exclude_none=True)} for f in self.functions()]
        return GenerationRequest(messages=self.chat(), tools=tools or None)


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: Optional[list[str]] = Field(default=None, max_length=16)
    temperature: float = Field(default=1.0, ge=0.0, le=1.0)
    top_p: Optional[float] = Field(default=None, gt=0.0, le=1.0)
    top_k: Optional[int] = Field(default=None, ge=0)
    tool_choice: Optional[ToolChoice] = None
    thinking: Optional[Thinking] = None
    output_config: Optional[OutputConfig] = None
    stream: bool = False
    metadata: Optional[dict[str, Any]] = None

    @field_validator("stop_sequences")
    @classmethod
    def _non_empty(cls, v):
        if v and any(not s for s in v):
            raise ValueError("an empty stop sequence would end every answer at once")
        return v

    @model_validator(mode="after")
    def _choice_fits_tools(self):
        choice = self.tool_choice
        names = {t.name for t in self.tools or []}
        if choice and choice.type in ("any", "tool") and not names:
            raise ValueError("tool_choice: asks for a tool call but 'tools' is empty")
        if choice and choice.type == "tool" and choice.name not in names:
            raise ValueError(f"tool_choice: names tool '{choice.name}', which is not in 'tools'")
        if self.forced() and self.output_config and self.output_config.format:
            raise ValueError("output_config.format: cannot apply while tool_choice forces a tool (its input is the answer)")
        if self.thinking and self.thinking.budget_tokens and self.thinking.budget_tokens >= self.max_tokens:
            raise ValueError("thinking: budget_tokens must be less than max_tokens")
        return self

    def tools_in_use(self) -> list[FunctionDef]:
        return [] if self.tool_choice and self.tool_choice.type == "none" else self.functions()

    def forced(self) -> list[FunctionDef]:
        choice = self.tool_choice
        if choice and choice.type == "any":
            return self.functions()
        if choice and choice.type == "tool":
            return [f for f in self.functions() if f.name == choice.name]
        return []

    def schema(self) -> Optional[dict[str, Any]]:
        """The JSON schema the answer's text follows (`output_config.format`), if any."""
        wanted = self.output_config.format if self.output_config else None
        return wanted.schema_ if wanted else None

    @property
    def shows_thinking(self) -> bool:
        return not (self.thinking and self.thinking.type == "disabled")

    def generation(self, span_id: str) -> GenerationRequest:
        tools = [{"type": "function", "function": f.model_dump(exclude_none=True)} for f in self.tools_in_use()]
        forced = self.forced()
        budget = self.thinking.budget_tokens if self.thinking and self.thinking.type == "enabled" else None
        params = SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                                max_new_tokens=self.max_tokens, stop=self.stop_sequences or [],
                                json_schema=call_schema(forced) if forced else self.schema(), thinking_budget=budget)
        return GenerationRequest(messages=self.chat(), params=params, tools=tools or None, overflow="error",
                                 span_id=span_id, session=str((self.metadata or {}).get("user_id") or ""))


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments (JSON text, serve_app/tools) as Anthropic's `input` object."""
    return json.loads(arguments or "{}")


class ErrorDetail(BaseModel):
    type: str  # Anthropic's: invalid_request_error, authentication_error, not_found_error, ...
    message: str


class ErrorBody(BaseModel):
    """An error as Anthropic's API answers it."""

    type: Literal["error"] = "error"
    error: ErrorDetail

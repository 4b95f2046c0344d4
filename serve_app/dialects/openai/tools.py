"""Tool calls in OpenAI's chat dialect: the request's `tools` and `tool_choice`, the calls
in an answer, and what a choice asks of the decoder.

`required` and a named function are enforced by constrained decoding: the answer must
be one call, `{"name": ..., "arguments": {...}}`, valid against the function's
`parameters` (the same machinery as response_format). `auto` leaves the model free
and serve_app/tool_calls.py reads calls out of what it wrote.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: Optional[str] = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: Optional[bool] = None  # a forced call always follows `parameters`; `auto` calls are checked as JSON only


class Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionDef


class FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: FunctionName


ToolChoice = Union[Literal["none", "auto", "required"], NamedToolChoice]


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    def for_template(self) -> dict:
        """The call in a chat template's shape (arguments as an object)."""
        try:
            arguments = json.loads(self.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = self.function.arguments
        return {"id": self.id, "type": "function", "function": {"name": self.function.name, "arguments": arguments}}


class ToolCallDelta(ToolCall):
    """A call in a streamed answer: whole, in one delta (OpenAI's shape allows the arguments in pieces)."""

    index: int


def _closed(parameters: dict) -> dict:
    """The arguments' schema with no properties beyond those declared, unless it says otherwise:
    a small model may otherwise invent keys until its token budget ends. A closed answer
    still validates against the open schema."""
    if parameters.get("type") == "object" and "additionalProperties" not in parameters:
        return {**parameters, "additionalProperties": False}
    return parameters


def call_schema(tools: list[Tool]) -> dict:
    """The JSON schema of one call to any of `tools`."""
    options = [
        {"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
         "properties": {"name": {"const": t.function.name}, "arguments": _closed(t.function.parameters)}}
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}

"""Functions a model may call, the calls it makes, and what a forced call asks of the decoder.

Every dialect with tools (OpenAI chat, the Responses API, Anthropic's Messages) turns its
own shapes into these: a function's name, description and JSON-schema parameters, and a
call's name and JSON arguments. A forced call (OpenAI's `required` or a named function,
Anthropic's `any` or `tool`) is decoded under `call_schema`: the answer must be one call,
`{"name": ..., "arguments": {...}}`, valid against the function's parameters (the same
machinery as response_format). Otherwise parsing.py reads calls out of what the model wrote.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


def new_call_id(prefix: str = "call") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: Optional[str] = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: Optional[bool] = None  # a forced call always follows `parameters`; `auto` calls are checked as JSON only


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


def _closed(parameters: dict) -> dict:
    """The arguments' schema with no properties beyond those declared, unless it says otherwise:
    a small model may otherwise invent keys until its token budget ends. A closed answer
    still validates against the open schema."""
    if parameters.get("type") == "object" and "additionalProperties" not in parameters:
        return {**parameters, "additionalProperties": False}
    return parameters


def call_schema(functions: list[FunctionDef]) -> dict:
    """The JSON schema of one call to any of `functions`."""
    options = [
        {"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
         "properties": {"name": {"const": f.name}, "arguments": _closed(f.parameters)}}
        for f in functions
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}

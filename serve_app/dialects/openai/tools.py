"""Tools in OpenAI's chat dialect: the request's `tools` and `tool_choice`, and a call in a
streamed answer. What a function and a call are, and how a forced call is decoded and
an `auto` one read, is serve_app/tools/."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict

from serve_app.tools.definitions import FunctionDef, ToolCall


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


class ToolCallDelta(ToolCall):
    """A call in a streamed answer: whole, in one delta (OpenAI's shape allows the arguments in pieces)."""

    index: int

"""Reading tool calls out of what a model wrote.

A call is `{"name": ..., "arguments": {...}}` JSON inside <tool_call></tool_call>
(Hermes' format, which engines/tool_prompts.py asks for and Qwen2.5-style
templates train), or the whole answer as one such JSON object (what a forced choice
decodes, and what Llama-style models write; `parameters` is read as `arguments`).
Anything that is not a call to a function of the request stays text: a model that
answers in prose, or writes JSON of its own, is not turned into a call.
"""

from __future__ import annotations

import json
import re
from typing import Optional

from serve_app.engines.stop_strings import held_back
from serve_app.tools.definitions import FunctionCall, ToolCall, new_call_id

OPEN = "<tool_call>"
BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)  # the last may be cut off by its end


def parse_calls(text: str, names: set[str]) -> tuple[Optional[str], list[ToolCall]]:
    """(the text that is not calls, or None; the calls). No calls unless every candidate is one."""
    tagged = OPEN in text
    bodies = BLOCK.findall(text) if tagged else [text.strip()] if text.lstrip().startswith("{") else []
    calls = [_call(body, names) for body in bodies]
    if not calls or None in calls:
        return text, []
    rest = BLOCK.sub("", text).strip() if tagged else ""
    return rest or None, calls


def _call(body: str, names: set[str]) -> Optional[ToolCall]:
    try:
        call = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(call, dict) or call.get("name") not in names:
        return None
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as JSON text
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(id=new_call_id(), function=FunctionCall(name=call["name"], arguments=json.dumps(arguments)))


class CallWatch:
    """A streamed answer's text, let through while it cannot be a call and held from where it may.

    Held from the start when the call is forced, or the answer opens with "{"; from a
    "<tool_call>" on; and, like a stop string, a tail that may be the start of one.
    """

    def __init__(self, forced: bool):
        self.holding = forced
        self.text = ""
        self.sent = 0

    def feed(self, new: str) -> str:
        """The part of the answer so far that may go to the client now."""
        self.text += new
        if self.holding or not self.text.strip():
            return ""
        if self.text.lstrip().startswith("{"):
            self.holding = True
            return ""
        at = self.text.find(OPEN, self.sent)
        self.holding = at != -1
        end = at if self.holding else len(self.text) - held_back(self.text, [OPEN])
        out, self.sent = self.text[self.sent:end], max(self.sent, end)
        return out

    def finish(self, names: set[str]) -> tuple[str, list[ToolCall]]:
        """(the text still to send, the calls) once the answer is complete."""
        _, calls = parse_calls(self.text, names)
        unsent = self.text[self.sent:]
        if not calls:
            return unsent, []
        return (BLOCK.sub("", unsent).strip() if OPEN in self.text else ""), calls

"""Tools in the prompt of a model whose chat template does not render them (SmolLM2's does not).

The format is Hermes' (Qwen2.5's and NousHermes' templates write the same): the
functions as JSON inside <tools></tools> in the system message, each call as
{"name", "arguments"} JSON inside <tool_call></tool_call>, and each result back as
a user turn inside <tool_response></tool_response>. A model trained on it answers in
it; the ingress (serve_app/tool_calls.py) reads calls in this format whichever
template wrote the prompt.
"""

from __future__ import annotations

import json

from serve_app.engines.base import ChatMessage

INSTRUCTIONS = (
    "You may call one or more functions to answer the user. The functions, as JSON schemas, are in "
    "<tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call a function, write a JSON object with its name and arguments inside <tool_call></tool_call>:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <arguments-object>}}\n</tool_call>'
)


def call_block(call: dict) -> str:
    function = call["function"]
    return f"<tool_call>\n{json.dumps({'name': function['name'], 'arguments': function['arguments']})}\n</tool_call>"


def inline_tools(messages: list[ChatMessage], tools: list[dict] | None) -> list[ChatMessage]:
    """The conversation as plain system/user/assistant turns, any template can render."""
    turns = []
    for m in messages:
        if m.role == "tool":
            turns.append(ChatMessage(role="user", content=f"<tool_response>\n{m.content}\n</tool_response>"))
        elif m.tool_calls:
            calls = "\n".join(call_block(c) for c in m.tool_calls)
            turns.append(ChatMessage(role="assistant", content=f"{m.content}\n{calls}" if m.content else calls))
        else:
            turns.append(ChatMessage(role=m.role, content=m.content))
    if tools:
        listed = INSTRUCTIONS.format(tools="\n".join(json.dumps(t) for t in tools))
        if turns and turns[0].role == "system":
            turns[0] = ChatMessage(role="system", content=f"{turns[0].content}\n\n{listed}")
        else:
            turns.insert(0, ChatMessage(role="system", content=listed))
    return turns

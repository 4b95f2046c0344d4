"""Tool calls, one function at a time: the prompt format, reading calls back, streaming holds."""

import json

import pytest

from serve_app.dialects.openai.protocol import ChatCompletionRequest
from serve_app.engines.base import ChatMessage
from serve_app.engines.tool_prompts import inline_tools
from serve_app.tools.definitions import call_schema
from serve_app.tools.parsing import CallWatch, parse_calls

NAMES = {"get_weather"}
CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("text, content", [
    (f"<tool_call>\n{CALL}\n</tool_call>", None),
    (f"Let me look.\n<tool_call>{CALL}</tool_call>", "Let me look."),
    (f"<tool_call>\n{CALL}", None),  # cut off before its closing tag
    (CALL, None),  # a forced call: bare JSON
    ('{"name": "get_weather", "parameters": {"city": "Paris"}}', None),  # Llama's key
])
def test_calls_are_read_in_every_form_models_write(text, content):
    got_content, calls = parse_calls(text, NAMES)
    assert got_content == content
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert calls[0].id.startswith("call-")


@pytest.mark.parametrize("text", [
    "It is sunny in Paris.",
    '{"city": "Paris"}',  # JSON, but not a call
    '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>',  # not a function of the request
    "<tool_call>{not json}</tool_call>",
    '<tool_call>{"name": "get_weather", "arguments": 5}</tool_call>',
])
def test_anything_else_stays_text(text):
    assert parse_calls(text, NAMES) == (text, [])


def test_two_calls_in_one_answer():
    _, calls = parse_calls(f"<tool_call>{CALL}</tool_call>\n<tool_call>{CALL}</tool_call>", NAMES)
    assert len(calls) == 2 and calls[0].id != calls[1].id


def feed_all(watch, pieces):
    return "".join(watch.feed(p) for p in pieces)


def test_a_stream_lets_prose_through_and_holds_a_call():
    watch = CallWatch(forced=False)
    assert feed_all(watch, ["Let me ", "look.\n<tool", "_call>", CALL, "</tool_call>"]) == "Let me look.\n"
    rest, calls = watch.finish(NAMES)
    assert rest == "" and calls[0].function.name == "get_weather"


def test_a_held_tail_that_was_no_call_is_sent_at_the_end():
    watch = CallWatch(forced=False)
    assert feed_all(watch, ["x < y and <tool"]) == "x < y and "
    assert watch.finish(NAMES) == ("<tool", [])


def test_an_answer_opening_with_json_is_held_whole():
    watch = CallWatch(forced=False)
    assert feed_all(watch, ["  ", '{"city": ', '"Paris"}']) == ""
    assert watch.finish(NAMES) == ('  {"city": "Paris"}', [])


def test_a_forced_call_is_held_whole():
    watch = CallWatch(forced=True)
    assert feed_all(watch, ["Sure", CALL]) == ""


def test_inline_tools_writes_calls_and_results_as_plain_turns():
    history = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Weather in Paris?"),
        ChatMessage(role="assistant", content="", tool_calls=[{"type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Paris"}}}]),
        ChatMessage(role="tool", content="21 C", tool_call_id="call-1"),
    ]
    turns = inline_tools(history, [WEATHER])
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0].content.startswith("Be brief.\n\n") and '"get_weather"' in turns[0].content
    assert parse_calls(turns[2].content, NAMES)[1][0].function.arguments == '{"city": "Paris"}'
    assert turns[3].content == "<tool_response>\n21 C\n</tool_response>"
    assert inline_tools(history[1:2], None) == history[1:2]


def chat(**fields):
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_a_forced_choice_becomes_the_schema_of_one_call():
    other = {"type": "function", "function": {"name": "get_time"}}
    named = chat(tools=[WEATHER, other], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    schema = named.to_generations("s")[0].params.json_schema
    assert schema == call_schema([named.tools[0].function])
    assert schema["properties"]["arguments"]["additionalProperties"] is False
    assert len(chat(tools=[WEATHER, other], tool_choice="required").to_generations("s")[0].params.json_schema["anyOf"]) == 2
    auto = chat(tools=[WEATHER]).to_generations("s")[0]
    assert auto.params.json_schema is None and auto.tools[0]["function"]["name"] == "get_weather"
    assert chat(tools=[WEATHER], tool_choice="none").to_generations("s")[0].tools is None


@pytest.mark.parametrize("fields, names", [
    ({"tool_choice": "required"}, "'tools' is empty"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "nope"),
    ({"tools": [WEATHER, WEATHER]}, "same name"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools.0.function.name"),
])
def test_tool_fields_that_cannot_be_followed_are_refused(fields, names):
    with pytest.raises(ValueError, match=names):
        chat(**fields)

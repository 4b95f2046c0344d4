"""Tool calls through the openai SDK on the default SmolLM2 model (whose chat template
does not render tools, so they go in our documented system-prompt format).

A forced choice ("required", or a named function) is decoded under the call's schema,
so even a 135M model yields a well-formed call with valid arguments. `auto` leaves the
model free: a few-shot conversation gets it to call, a joke request does not.
"""

import json
from functools import partial

import jsonschema
import openai
import pytest
from helpers import at_once

CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
        "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city now",
           "parameters": CITY}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                       "required": ["city"]}}}
PARAMETERS = {"get_weather": CITY, "get_time": TIME["function"]["parameters"]}
PARIS = [{"role": "user", "content": "What is the weather in Paris?"}]


def called(city: str, i: int) -> dict:
    arguments = json.dumps({"city": city, "unit": "celsius"})
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call-{i}", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]}


# Two earlier questions answered by calls: the small model follows the pattern.
FEW_SHOT = [{"role": "user", "content": "What is the weather in Rome?"}, called("Rome", 1),
            {"role": "user", "content": "What is the weather in Oslo?"}, called("Oslo", 2)] + PARIS


def ask(sdk, llm, messages, max_tokens=80, **extra):
    return sdk.chat.completions.create(model=llm, messages=messages, max_tokens=max_tokens, temperature=0, **extra)


# A plain answer shows whether it is a call within its first tokens (a call begins `<tool_call>`):
# these answers stop there rather than at 80 tokens of joke.
PLAIN_TOKENS = 24


def assert_valid_calls(choice, names):
    assert choice.finish_reason == "tool_calls", choice.message
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        assert call.type == "function" and call.id and call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_named_function_is_always_called_with_valid_arguments(sdk, llm, temperature):
    choice = {"type": "function", "function": {"name": "get_time"}}

    def call(seed: int):
        return sdk.chat.completions.create(model=llm, messages=PARIS, tools=[WEATHER, TIME], tool_choice=choice,
                                           max_tokens=80, temperature=temperature, seed=seed)

    # At once: the engine decodes the three in one batch, each row under its own mask and seed.
    for r in at_once(*(partial(call, seed) for seed in range(3))):
        assert_valid_calls(r.choices[0], {"get_time"})


def test_required_yields_a_call_to_one_of_the_tools(sdk, llm):
    r = ask(sdk, llm, [{"role": "user", "content": "Tell me a joke."}], tools=[WEATHER, TIME], tool_choice="required")
    assert_valid_calls(r.choices[0], {"get_weather", "get_time"})
    assert len(r.choices[0].message.tool_calls) == 1


def test_auto_reads_the_call_a_model_writes(sdk, llm):
    r = ask(sdk, llm, FEW_SHOT, tools=[WEATHER])
    choice = r.choices[0]
    assert_valid_calls(choice, {"get_weather"})
    assert json.loads(choice.message.tool_calls[0].function.arguments)["city"] == "Paris"
    assert choice.message.content is None


def test_auto_without_a_call_is_plain_text(sdk, llm):
    r = ask(sdk, llm, [{"role": "user", "content": "Tell me a joke."}], tools=[WEATHER], max_tokens=PLAIN_TOKENS)
    choice = r.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason in ("stop", "length")
    assert choice.message.content and "<tool_call>" not in choice.message.content


def test_a_tool_result_reaches_the_model(sdk, llm):
    history = [{"role": "user", "content": "What is the weather in Rome?"}, called("Rome", 1),
               {"role": "tool", "tool_call_id": "call-1", "content": "Sunny, 21 degrees Celsius"}]
    r = ask(sdk, llm, history, tools=[WEATHER])
    assert r.choices[0].message.tool_calls is None
    assert "21" in r.choices[0].message.content  # only the tool result said so


def stream_calls(sdk, llm, messages, max_tokens=80, **extra):
    chunks = list(sdk.chat.completions.create(model=llm, messages=messages, max_tokens=max_tokens, temperature=0,
                                              stream=True, **extra))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [call for d in deltas for call in d.tool_calls or []]
    content = "".join(d.content or "" for d in deltas)
    return content, calls, chunks[-1].choices[0].finish_reason


@pytest.mark.parametrize("messages, extra", [
    (FEW_SHOT, {}),
    (PARIS, {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
])
def test_a_streamed_call_is_the_same_call(sdk, llm, messages, extra):
    whole, streamed = at_once(lambda: ask(sdk, llm, messages, tools=[WEATHER], **extra),
                              lambda: stream_calls(sdk, llm, messages, tools=[WEATHER], **extra))
    whole = whole.choices[0].message.tool_calls[0]
    content, calls, finish = streamed
    assert finish == "tool_calls" and content == "" and len(calls) == 1
    assert calls[0].index == 0 and calls[0].id and calls[0].type == "function"
    assert (calls[0].function.name, calls[0].function.arguments) == (whole.function.name, whole.function.arguments)


def test_a_streamed_answer_without_a_call_is_streamed_as_text(sdk, llm):
    joke = [{"role": "user", "content": "Tell me a joke."}]
    whole, (content, calls, finish) = at_once(
        lambda: ask(sdk, llm, joke, tools=[WEATHER], max_tokens=PLAIN_TOKENS),
        lambda: stream_calls(sdk, llm, joke, tools=[WEATHER], max_tokens=PLAIN_TOKENS))
    whole = whole.choices[0].message.content
    assert content == whole and calls == [] and finish in ("stop", "length")


@pytest.mark.parametrize("extra, param", [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [WEATHER]}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "x", "parameters": {"type": "wat"}}}],
      "tool_choice": "required"}, None),
])
def test_tool_requests_that_cannot_be_followed_are_400(sdk, llm, extra, param):
    with pytest.raises(openai.BadRequestError) as e:
        ask(sdk, llm, PARIS, **extra)
    if param:
        assert e.value.body["param"] == param
    else:  # a parameters schema the grammar cannot compile
        assert "Invalid type: wat" in e.value.message

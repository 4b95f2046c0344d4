"""The newer dialects with the clients their users run, on the default SmolLM2: the
`openai-agents` package (which calls the Responses API) running an agent with a tool, the
openai SDK's Responses streaming helper, and the `anthropic` SDK with a forced tool call;
answers compared with a direct call to the model's deployment."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from helpers import LLM, direct_generate

QUESTION = "What is the capital of France?"
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}


@pytest.fixture(scope="module")
def agents(base_url):
    import agents

    agents.set_tracing_disabled(True)  # its default exporter would send traces to OpenAI
    return agents, openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0)


def test_an_agent_answers_as_the_model_does(agents):
    sdk, client = agents
    # A question the model answers in one sentence: an answer cut at its token limit is a
    # `response.incomplete`, which the Agents SDK takes as a failed turn (as for OpenAI's own).
    agent = sdk.Agent(name="assistant", model_settings=sdk.ModelSettings(temperature=0),
                      model=sdk.OpenAIResponsesModel(model=LLM, openai_client=client))
    result = sdk.Runner.run_sync(agent, QUESTION, max_turns=1)
    assert result.final_output == direct_generate(LLM, QUESTION) == "The capital of France is Paris."


def test_an_agent_calls_its_tool_and_answers_with_the_result(agents):
    sdk, client = agents
    calls = []

    @sdk.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"It is sunny in {city}."

    # The tool's output is the answer (a 135M model's prose after it would run to its token limit,
    # which the Agents SDK takes as a failed turn, as it does OpenAI's own `response.incomplete`).
    agent = sdk.Agent(name="forecaster", instructions="Use the tool.", tools=[get_weather],
                      model_settings=sdk.ModelSettings(temperature=0, tool_choice="required"),
                      tool_use_behavior="stop_on_first_tool",
                      model=sdk.OpenAIResponsesModel(model=LLM, openai_client=client))
    result = sdk.Runner.run_sync(agent, "What is the weather in Paris?", max_turns=3)
    assert len(calls) == 1 and isinstance(calls[0], str), "the forced call reached the tool with its argument"
    kinds = [item.type for item in result.new_items]
    assert "tool_call_item" in kinds and "tool_call_output_item" in kinds
    assert result.final_output == f"It is sunny in {calls[0]}."


def test_the_responses_stream_helper_gets_the_whole_response(base_url):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0)
    with client.responses.stream(model=LLM, input=QUESTION, temperature=0) as stream:
        final = stream.get_final_response()  # needs response.completed: the model ended on its own
    assert final.status == "completed" and final.output_text == direct_generate(LLM, QUESTION)
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
              "additionalProperties": False}
    structured = client.responses.create(model=LLM, input="Name a city in France.", temperature=0,
                                         text={"format": {"type": "json_schema", "name": "city", "schema": schema}})
    assert set(json.loads(structured.output_text)) == {"city"}


def test_anthropics_sdk_gets_the_models_answer_and_a_forced_tool_use(base_url):
    claude = anthropic.Anthropic(base_url=base_url, api_key="none", max_retries=0)
    greedy = {"extra_body": {"temperature": 0}}  # the SDK (2.x) no longer takes a temperature; the API does
    message = claude.messages.create(model=LLM, max_tokens=64, messages=[{"role": "user", "content": QUESTION}], **greedy)
    assert message.content[0].text == direct_generate(LLM, QUESTION, max_new_tokens=64)
    called = claude.messages.create(model=LLM, max_tokens=64, tool_choice={"type": "any"}, **greedy,
                                    tools=[{"name": "get_weather", "description": "The weather in a city.",
                                            "input_schema": WEATHER}],
                                    messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    [use] = [b for b in called.content if b.type == "tool_use"]
    assert called.stop_reason == "tool_use" and use.name == "get_weather" and isinstance(use.input["city"], str)
    answered = claude.messages.create(model=LLM, max_tokens=32, **greedy, messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C."}]}])
    assert answered.content and answered.stop_reason in ("end_turn", "max_tokens")
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
              "additionalProperties": False}
    structured = claude.messages.create(model=LLM, max_tokens=64, **greedy, output_config={"format": {
        "type": "json_schema", "schema": schema}}, messages=[{"role": "user", "content": "Name a city in France."}])
    assert set(json.loads(structured.content[0].text)) == {"city"}, structured

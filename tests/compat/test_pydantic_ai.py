"""pydantic-ai, unmodified, pointed at /v1 (#33: strict typed clients): an agent with a tool and
a typed result, on the default SmolLM2 through the Chat Completions API, and a typed result
through the Responses API. What pydantic-ai sends (tool_choice "required" for its output tool,
strict function schemas, parallel_tool_calls, stream_options) must be taken, and what comes
back must validate into the types it asked for."""

from __future__ import annotations

import pytest
from helpers import LLM
from pydantic import BaseModel


class City(BaseModel):
    name: str
    country: str


@pytest.fixture(scope="module")
def provider(base_url):
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIProvider(base_url=f"{base_url}/v1", api_key="none")


def settings():
    from pydantic_ai.settings import ModelSettings

    return ModelSettings(temperature=0, max_tokens=64)


def test_an_agent_calls_its_tool_and_returns_its_typed_result(provider):
    from pydantic_ai import Agent, ToolOutput
    from pydantic_ai.models.openai import OpenAIChatModel

    asked: list[str] = []
    agent = Agent(OpenAIChatModel(LLM, provider=provider), output_type=ToolOutput(City), model_settings=settings(),
                  system_prompt="Look the city up with the tool, then give the city and its country.")

    @agent.tool_plain
    def capital_of(country: str) -> str:
        """The capital city of a country."""
        asked.append(country)
        return "Paris"

    result = agent.run_sync("What is the capital of France?")
    assert isinstance(result.output, City) and result.output.name and result.output.country
    calls = [part for message in result.all_messages() for part in getattr(message, "parts", [])
             if type(part).__name__ == "ToolCallPart"]
    # Every call the model made was to a tool the agent has, and the output tool ended the run.
    assert calls and {c.tool_name for c in calls} <= {"capital_of", "final_result"}, calls
    assert calls[-1].tool_name == "final_result"
    assert len(asked) == sum(c.tool_name == "capital_of" for c in calls)


def test_a_streamed_run_validates_into_its_type(provider):
    from pydantic_ai import Agent, ToolOutput
    from pydantic_ai.models.openai import OpenAIChatModel

    agent = Agent(OpenAIChatModel(LLM, provider=provider), output_type=ToolOutput(City), model_settings=settings())

    async def run():
        async with agent.run_stream("Name a city in France, and its country.") as stream:
            return await stream.get_output()

    import asyncio

    assert isinstance(asyncio.run(run()), City)


def test_a_typed_result_through_the_responses_api(provider):
    from pydantic_ai import Agent, ToolOutput
    from pydantic_ai.models.openai import OpenAIResponsesModel

    agent = Agent(OpenAIResponsesModel(LLM, provider=provider), output_type=ToolOutput(City),
                  model_settings=settings())
    assert isinstance(agent.run_sync("Name a city in France, and its country.").output, City)

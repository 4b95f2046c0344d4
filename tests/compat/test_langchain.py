"""LangChain's OpenAI integration (`langchain-openai`) pointed at /v1, compared with direct calls."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import EMBEDDER, LLM, direct_embeddings, direct_generate
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

QUESTION = "What is the capital of France?"
TEXTS = ["A cat sits on the mat.", "Stock markets fell sharply today."]


@pytest.fixture(scope="module")
def chat(base_url) -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{base_url}/v1", api_key="none", model=LLM, temperature=0, max_retries=0)


def test_chat_invoke_is_the_models_answer(chat):
    reply = chat.invoke(QUESTION)
    assert reply.content == direct_generate(LLM, QUESTION)
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata["output_tokens"] > 0


def test_chat_stream_joins_to_the_models_answer(chat):
    pieces = [chunk.content for chunk in chat.stream(QUESTION)]
    assert len([p for p in pieces if p]) > 2, "the answer arrives in pieces"
    assert "".join(pieces) == direct_generate(LLM, QUESTION)


def test_a_conversation_with_a_system_message(chat):
    messages = [("system", "You answer in one short sentence."), ("human", QUESTION)]
    expected = direct_generate(LLM, messages=[{"role": "system", "content": messages[0][1]},
                                              {"role": "user", "content": QUESTION}])
    assert chat.invoke(messages).content == expected


def test_embeddings_are_the_models_vectors(base_url):
    # check_embedding_ctx_length=False sends text, as LangChain advises for servers that are
    # not OpenAI's; its default tokenizes with tiktoken, whose files come from the network.
    embeddings = OpenAIEmbeddings(base_url=f"{base_url}/v1", api_key="none", model=EMBEDDER,
                                  check_embedding_ctx_length=False)
    expected = direct_embeddings(EMBEDDER, TEXTS)
    np.testing.assert_allclose(embeddings.embed_documents(TEXTS), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embeddings.embed_query(TEXTS[0]), expected[0], rtol=1e-5, atol=1e-6)


def test_structured_output_through_langchain(chat):
    from pydantic import BaseModel, Field

    class City(BaseModel):
        """A city and its country."""

        name: str = Field(max_length=30)
        country: str = Field(max_length=30)

    # json_schema: LangChain sends response_format; function_calling: a forced tool call.
    for method in ("json_schema", "function_calling"):
        city = chat.with_structured_output(City, method=method).invoke("Describe Paris.")
        assert isinstance(city, City) and city.name, method


def test_bind_tools_yields_a_parsed_tool_call(chat):
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        return "sunny"

    reply = chat.bind_tools([get_weather], tool_choice="get_weather").invoke("What is the weather in Paris?")
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather"
    assert isinstance(reply.tool_calls[0]["args"]["city"], str)

"""Every `/v1` answer shape we send, validated against OpenAI's published schema (strict
clients read it; the lenient Python SDK would not notice a missing key), and against the openai
SDK's own types, strictly."""

import json

import pydantic
import pytest
from inprocess.local import EMBEDDER, LLM, THINKER
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from openai_schema import problems

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}


def sse(client, path: str, body: dict) -> list[dict]:
    with client.stream("POST", path, json={**body, "stream": True}) as r:
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]


CHATS = {
    "plain": {"model": LLM, "messages": FRANCE, "max_tokens": 5},
    "n": {"model": LLM, "messages": FRANCE, "max_tokens": 5, "n": 2, "seed": 1},
    "tools": {"model": LLM, "messages": FRANCE, "max_tokens": 5, "tools": [TOOL], "tool_choice": "auto"},
    "usage": {"model": LLM, "messages": FRANCE, "max_tokens": 5, "stream_options": {"include_usage": True}},
    "reasoning": {"model": THINKER, "messages": FRANCE, "max_tokens": 12},
}


@pytest.mark.parametrize("case", sorted(CHATS))
def test_chat_answers_and_chunks_follow_the_schema(client, case):
    body = CHATS[case]
    whole = client.post("/v1/chat/completions", json={k: v for k, v in body.items() if k != "stream_options"})
    assert whole.status_code == 200 and problems("CreateChatCompletionResponse", whole.json()) == []
    for chunk in sse(client, "/v1/chat/completions", body):
        assert problems("CreateChatCompletionStreamResponse", chunk) == [], chunk


def test_completions_follow_the_schema(client):
    body = {"model": LLM, "prompt": ["The sky is", "Water is"], "max_tokens": 4, "n": 2}
    assert problems("CreateCompletionResponse", client.post("/v1/completions", json=body).json()) == []
    chunks = sse(client, "/v1/completions", body)
    for chunk in chunks:
        # The spec has no schema of its own for a streamed completion: its frames are this one, but
        # with finish_reason null until a choice ends, as OpenAI's are. That one key aside, exact.
        ended = {**chunk, "choices": [{**c, "finish_reason": c["finish_reason"] or "stop"} for c in chunk["choices"]]}
        assert problems("CreateCompletionResponse", ended) == [], chunk
    assert [c["finish_reason"] for chunk in chunks for c in chunk["choices"] if c["finish_reason"]] == ["length"] * 4


def test_embeddings_and_models_follow_the_schema(client):
    answer = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["a", "b"]}).json()
    assert problems("CreateEmbeddingResponse", answer) == []
    # base64 vectors are a string where the spec says an array (its own gap: OpenAI sends strings too).
    encoded = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["a"], "encoding_format": "base64"}).json()
    assert isinstance(encoded["data"][0]["embedding"], str)
    assert problems("CreateEmbeddingResponse", {**encoded, "data": answer["data"][:1]}) == []
    assert problems("ListModelsResponse", client.get("/v1/models").json()) == []
    assert problems("Model", client.get(f"/v1/models/{LLM}").json()) == []


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "no-such-model", "messages": FRANCE}),
    ("/v1/chat/completions", {"model": LLM, "messages": FRANCE, "max_tokens": -1}),
    ("/v1/chat/completions", {"model": LLM, "messages": FRANCE, "min_tokens": 4}),
    ("/v1/embeddings", {"model": LLM, "input": "x"}),
    ("/v1/responses", {"model": LLM, "input": "x", "truncation": "auto"}),
])
def test_errors_follow_the_schema(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code >= 400 and problems("ErrorResponse", r.json()) == []


def test_a_stream_that_fails_midway_ends_with_a_schema_error_frame_then_done(client, registry):
    worker = registry.local[LLM][1]

    generate = worker.engine.generate

    async def broken(request):
        yield (await anext(generate(request)))
        raise RuntimeError("the device went away")

    worker.engine.generate = broken
    try:
        with client.stream("POST", "/v1/chat/completions", json={"model": LLM, "messages": FRANCE, "stream": True,
                                                                 "max_tokens": 5}) as r:
            lines = [line for line in r.iter_lines() if line]
    finally:
        worker.engine.generate = generate
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])
    assert problems("ErrorResponse", error) == [] and "device went away" in error["error"]["message"]


def test_responses_and_their_events_follow_the_schema(client):
    body = {"model": THINKER, "input": "What is the capital of France?", "max_output_tokens": 12}
    assert problems("Response", client.post("/v1/responses", json=body).json()) == []
    events = sse(client, "/v1/responses", body)
    assert events and all(problems("ResponseStreamEvent", e) == [] for e in events), \
        [(e["type"], problems("ResponseStreamEvent", e)) for e in events if problems("ResponseStreamEvent", e)]


def test_the_openai_sdks_own_types_take_every_answer_strictly(client):
    # The SDK reads answers leniently (a missing key goes unnoticed), but its types follow OpenAI's
    # current API, newer than the published spec above: the Responses API's usage gained a required
    # `cache_write_tokens`, which only this caught. A streamed completion's frames are left out:
    # their finish_reason is null until a choice ends, as OpenAI's are, where the type has none.
    def strict(model_type, answer) -> list[str]:
        try:
            pydantic.TypeAdapter(model_type).validate_python(answer)
            return []
        except pydantic.ValidationError as exc:
            return [f"{getattr(model_type, '__name__', model_type)}: {exc}"]

    chat = {"model": THINKER, "messages": FRANCE, "max_tokens": 12}
    found = strict(ChatCompletion, client.post("/v1/chat/completions", json=chat).json())
    for chunk in sse(client, "/v1/chat/completions", {**chat, "stream_options": {"include_usage": True}}):
        found += strict(ChatCompletionChunk, chunk)
    completion = {"model": LLM, "prompt": ["The sky is", "Water is"], "max_tokens": 4, "n": 2}
    found += strict(Completion, client.post("/v1/completions", json=completion).json())
    found += strict(CreateEmbeddingResponse, client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["a"]}).json())
    found += strict(Model, client.get(f"/v1/models/{LLM}").json())
    response = {"model": THINKER, "input": "What is the capital of France?", "max_output_tokens": 12}
    found += strict(Response, client.post("/v1/responses", json=response).json())
    events = sse(client, "/v1/responses", response)
    for event in events:
        found += strict(ResponseStreamEvent, event)
    assert len(events) > 3 and found == [], found

"""The OpenAI-compatible routes, through the official `openai` SDK and raw HTTP."""

import base64
import json

import numpy as np
import openai
import pytest
from helpers import EMBEDDER, LLM, RERANKER, direct_generate

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def sdk(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def sse_events(client, path, body):
    """Raw SSE lines of a streaming call: the parsed JSON frames and the final marker."""
    with client.stream("POST", path, json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    payloads = [line[len("data: "):] for line in lines]
    return [json.loads(p) for p in payloads[:-1]], payloads[-1]


def test_chat_completion(sdk):
    r = sdk.chat.completions.create(model=LLM, messages=FRANCE, temperature=0)
    assert r.object == "chat.completion" and r.model == LLM
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "The capital of France is Paris."
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0


def test_chat_stream_deltas_join_to_the_non_streamed_text(sdk):
    body = dict(model=LLM, messages=[{"role": "user", "content": "Name three fruits."}], temperature=0, max_tokens=40)
    whole = sdk.chat.completions.create(**body).choices[0].message.content
    chunks = list(sdk.chat.completions.create(**body, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 3, "deltas are incremental, several of them"
    assert "".join(c.choices[0].delta.content for c in content) == whole
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0] is chunks[-2]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_chat_stream_ends_with_done(client):
    events, last = sse_events(
        client, "/v1/chat/completions", {"model": LLM, "messages": FRANCE, "temperature": 0, "stream": True}
    )
    assert last == "[DONE]"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in e and e["usage"] for e in events), "no usage chunk unless asked"


def test_max_completion_tokens_and_stop(sdk):
    r = sdk.chat.completions.create(model=LLM, messages=FRANCE, temperature=0, max_completion_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = sdk.chat.completions.create(model=LLM, messages=FRANCE, temperature=0, stop=["Paris", "London"])
    assert r.choices[0].message.content == "The capital of France is "


def test_completions_string_and_list(sdk):
    one = sdk.completions.create(model=LLM, prompt="The sky is", max_tokens=5, temperature=0)
    assert one.object == "text_completion" and one.choices[0].finish_reason == "length"
    assert one.usage.completion_tokens == 5
    two = sdk.completions.create(model=LLM, prompt=["The sky is", "Water is"], max_tokens=5, temperature=0)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[0].text == one.choices[0].text
    assert two.usage.completion_tokens == 10


def test_an_empty_prompt_completes_from_the_start_of_a_document(sdk):
    out = sdk.completions.create(model=LLM, prompt="", max_tokens=8, temperature=0)
    assert out.usage.prompt_tokens == 1  # the BOS token, as vLLM does
    # SmolLM2's BOS token, written out: the same completion, by another path through the tokenizer.
    assert out.choices[0].text == direct_generate(LLM, prompt="<|im_start|>", max_new_tokens=8)
    assert out.choices[0].text


def test_completions_stream(sdk):
    whole = sdk.completions.create(model=LLM, prompt="Once upon a time", max_tokens=12, temperature=0)
    parts = list(sdk.completions.create(model=LLM, prompt="Once upon a time", max_tokens=12, temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text
    assert parts[-1].choices[0].finish_reason == "length"


def test_embeddings_float_and_base64_agree(sdk, client):
    floats = sdk.embeddings.create(model=EMBEDDER, input=["hello world", "goodbye"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1] and len(floats.data[0].embedding) == 384
    assert floats.usage.prompt_tokens == 7  # [CLS] hello world [SEP] + [CLS] goodbye [SEP]
    raw = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": "hello world", "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats.data[0].embedding, atol=1e-6)
    # The SDK's default asks for base64 and decodes it itself.
    default = sdk.embeddings.create(model=EMBEDDER, input="hello world")
    assert np.allclose(default.data[0].embedding, floats.data[0].embedding, atol=1e-6)


def test_models_list_and_retrieve(sdk):
    ids = {m.id for m in sdk.models.list().data}
    assert {LLM, EMBEDDER, RERANKER} <= ids
    m = sdk.models.retrieve(LLM)
    assert m.id == LLM and m.object == "model" and m.created > 0
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("no-such-model")


def test_prompt_plus_max_tokens_over_context_is_bad_request(sdk):
    # SmolLM2's context is 8192 tokens, so 8190 new tokens pass the request limit
    # (RequestLimits.max_tokens, 8192) but not the model's own context check.
    with pytest.raises(openai.BadRequestError, match="context length"):
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=8190)
    with pytest.raises(openai.BadRequestError, match="context length"):
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=8190, stream=True)


def test_rerank_ranks_the_answer_first(client):
    docs = [
        "The Eiffel Tower is a landmark in Paris.",
        "Photosynthesis converts light into chemical energy in plants.",
        "Football is played by two teams of eleven players.",
    ]
    r = client.post(
        "/v1/rerank",
        json={"model": RERANKER, "query": "How do plants make energy from sunlight?", "documents": docs,
              "top_n": 2, "return_documents": True},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == RERANKER and body["id"] and body["usage"]["total_tokens"] > 0
    results = body["results"]
    assert len(results) == 2 and results[0]["index"] == 1
    assert results[0]["document"] == {"text": docs[1]}
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]

    rel = client.post("/api/v1/beta/relevance", json={"model": RERANKER, "query": "plants and sunlight", "documents": docs}).json()
    assert rel["object"] == "list" and len(rel["data"]) == 3
    assert max(range(3), key=lambda i: rel["data"][i]) == 1, "scores are in input order"

    worker = client.post("/api/worker/embeddings", json={"model": RERANKER, "input": docs, "query": "plants and sunlight"})
    assert worker.status_code == 200 and worker.json() == [rel["data"]]

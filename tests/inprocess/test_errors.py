"""Each dialect's shape of an error, chosen by the route that raised it (http/boundary.py and
each dialect's route class), whatever raised it: a check, a model, the HTTP layer."""

import json

import openai
import pytest
from inprocess.local import EMBEDDER, LLM, RERANKER

from serve_app.dialects.dbgpt.protocol import GENERATE_ERROR_PREFIX

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def test_openai_routes_answer_in_openai_shape(client):
    r = client.post("/v1/chat/completions", json={"model": LLM, "messages": FRANCE, "max_tokens": -1})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "max_tokens" and "max_tokens" in error["message"]
    assert error["code"] is None  # OpenAI's codes are strings, or null where it has none


def test_an_unknown_model_is_404_naming_what_runs(sdk):
    with pytest.raises(openai.NotFoundError) as e:
        sdk.chat.completions.create(model="no-such-model", messages=FRANCE)
    assert "no-such-model" in e.value.message and LLM in e.value.message
    assert e.value.body["type"] == "not_found_error" and e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("no-such-model")


def test_a_model_of_the_wrong_worker_type_is_400_naming_the_type(sdk, client):
    with pytest.raises(openai.BadRequestError, match="text2vec"):
        sdk.embeddings.create(model=LLM, input="x")
    r = client.post("/v1/rerank", json={"model": LLM, "query": "q", "documents": ["d"]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = client.post("/v1/rerank", json={"model": RERANKER, "query": "q", "documents": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "documents"


def test_dbgpt_routes_answer_in_fastapi_shape_and_list_models_on_404(client):
    r = client.post("/api/worker/embeddings", json={"model": "nope", "input": ["x"]})
    assert r.status_code == 404
    assert "nope" in r.json()["detail"] and EMBEDDER in r.json()["available_models"]
    r = client.post("/api/worker/embeddings", json={"model": LLM, "input": ["x"]})
    assert r.status_code == 400 and "text2vec" in r.json()["detail"]
    r = client.post("/api/worker/embeddings", json={"model": EMBEDDER, "input": "not a list"})
    assert r.status_code == 422 and "input" in r.text


@pytest.mark.parametrize("route", ["/api/worker/generate", "/api/worker/generate_stream"])
def test_a_refused_generation_is_an_error_model_output(client, route):
    r = client.post(route, json={"model": "no-such-model", "prompt": "hi"})
    assert r.status_code == 200  # DB-GPT's workers answer a generation's own error with 200
    frames = r.content.split(b"\0")
    if route.endswith("_stream"):
        assert frames[-1] == b"" and len(frames) == 2, "one frame, ended by its NUL byte"
    out = json.loads(frames[0])
    assert out["error_code"] == 1 and out["text"].startswith(GENERATE_ERROR_PREFIX)
    assert "no-such-model" in out["text"] and LLM in out["text"]


def test_a_prompt_longer_than_the_context_is_an_error_model_output(client):
    out = client.post("/api/worker/generate", json={"model": LLM, "prompt": "hello " * 9000}).json()
    assert out["error_code"] == 1 and "context length" in out["text"]


def test_an_unreadable_body_keeps_its_status_on_dbgpt_generation(client):
    r = client.post("/api/worker/generate", content=b'{"model": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error_code"] == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"model": LLM}, "messages"),
        ({"model": LLM, "messages": [{"role": "robot", "content": "hi"}]}, "robot"),
        ({"model": LLM, "prompt": "hi", "temperature": "hot"}, "temperature"),
        ({"model": LLM, "prompt": "hi", "max_new_tokens": -3}, "max_new_tokens"),
        ({"prompt": "hi"}, "model"),
    ],
)
def test_malformed_generate_is_422_naming_the_problem(client, body, field):
    r = client.post("/api/worker/generate", json=body)
    assert r.status_code == 422 and field in r.text


def test_dbgpt_rerank_route_answers_as_dbgpts_api_server_in_openai_shape(client):
    r = client.post("/api/v1/beta/relevance", json={"model": LLM, "query": "q", "documents": ["d"]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = client.post("/api/v1/beta/relevance", json={"model": RERANKER, "query": "q", "documents": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "documents"


def test_a_model_with_no_running_replica_is_503(client, registry):
    registry.stopped.add(EMBEDDER)
    registry.invalidate()
    try:
        r = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": "x"})
    finally:
        registry.stopped.discard(EMBEDDER)
        registry.invalidate()
    assert r.status_code == 503 and "no running replica" in r.json()["error"]["message"]


def test_model_metadata_names_the_model_as_it_is_called(client):
    """DB-GPT's LLM client finds a model's metadata by this name: the application's (here
    `sim-llm`), not the one its replica derives from its weights (`simulated`)."""
    meta = client.post("/api/worker/model_metadata", json={"model": LLM}).json()
    assert meta["model"] == LLM != "simulated"

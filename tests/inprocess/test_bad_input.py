"""Bad input: always a 4xx that names the problem, never a 5xx (in-process: every check and
refusal here is the ingress's own code). Fuzzed bodies: tests/fuzz/test_fuzzed_bodies.py."""

import json

import pytest
from inprocess.local import EMBEDDER, LLM, RERANKER

CHAT = "/v1/chat/completions"

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "path, body, status, names",
    [
        (CHAT, {"model": LLM, "messages": []}, 400, "messages"),
        (CHAT, {"model": LLM}, 400, "messages"),
        (CHAT, {"model": LLM, "messages": "hi"}, 400, "messages"),
        (CHAT, {"model": LLM, "messages": USER, "max_tokens": -5}, 400, "max_tokens"),
        (CHAT, {"model": LLM, "messages": USER, "max_tokens": 10**30}, 400, "max tokens"),
        (CHAT, {"model": LLM, "messages": USER, "temperature": 1e308}, 400, "temperature"),
        (CHAT, {"model": LLM, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
        (CHAT, {"model": LLM, "messages": [{"role": "user", "content": {"deep": [1, {"x": None}]}}]}, 400, "content"),
        (CHAT, {"model": LLM, "messages": USER * 600}, 400, "too many messages"),
        (CHAT, {"model": 12, "messages": USER}, 400, "model"),
        ("/v1/embeddings", {"model": EMBEDDER, "input": ["x"] * 3000}, 400, "too many inputs"),
        ("/v1/embeddings", {"model": EMBEDDER, "input": [1, "two"]}, 400, "input"),
        ("/v1/rerank", {"model": RERANKER, "query": "q", "documents": ["d"] * 1100}, 400, "too many documents"),
        ("/api/worker/generate", {"model": LLM, "prompt": "hi", "max_new_tokens": 10**30}, 422, "max_new_tokens"),
        ("/api/worker/generate", {"model": LLM, "messages": [{"role": "user", "content": 5}]}, 422, "content"),
        ("/api/worker/embeddings", {"model": EMBEDDER, "input": [["nested"]]}, 422, "input"),
        # Degenerate bodies that reached the engines as a 500 (#39).
        ("/tokenize", {"model": LLM, "messages": []}, 400, "messages"),
        ("/v1/responses", {"model": LLM, "input": []}, 400, "input"),
        ("/v1/messages", {"model": LLM, "messages": [], "max_tokens": 4}, 400, "messages"),
    ],
)
def test_bad_input_is_a_named_4xx(client, path, body, status, names):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert names in r.text


def test_prompt_longer_than_context_is_400(client):
    r = client.post(CHAT, json={"model": LLM, "messages": [{"role": "user", "content": "word " * 9000}]})
    assert r.status_code == 400 and "context length" in r.json()["error"]["message"]


def test_unknown_fields_are_ignored(client):
    body = {"model": LLM, "messages": USER, "max_tokens": 2, "logit_bias": {}, "frequency_penalty": 0, "tools": None}
    assert client.post(CHAT, json=body).status_code == 200


@pytest.mark.parametrize("path", [CHAT, "/api/worker/generate"])
def test_malformed_bytes_are_4xx(client, path):
    for raw in (b'{"model": "\xff\xfe", "prompt": "x"}', b"{not json", b"[" * 50_000 + b"]" * 50_000):
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (raw[:20], r.status_code, r.text[:200])


@pytest.mark.parametrize("path", [CHAT, "/api/worker/embeddings"])
def test_ten_megabyte_body_is_413(client, path):
    body = json.dumps({"model": EMBEDDER, "input": ["x" * 1000] * 10_000}).encode()
    assert len(body) > 10_000_000
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than the limit" in r.text

    def chunks():  # no Content-Length: counted as it arrives
        for i in range(0, len(body), 1 << 20):
            yield body[i : i + (1 << 20)]

    r = client.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413

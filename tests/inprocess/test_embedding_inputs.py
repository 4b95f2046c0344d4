"""OpenAI embeddings beyond plain text: `dimensions`, token-id inputs, and inputs longer
than the model reads (refused by default, cut with truncate_prompt_tokens)."""

import numpy as np
import openai
import pytest
from inprocess.local import EMBEDDER, MATRYOSHKA, MINILM

from serve_app.replica.sources import local_dir

TEXT = "A cat sits on the mat."
LONG = "word " * 400  # over MiniLM's 256 tokens


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(local_dir(MINILM, "")[0])


@pytest.fixture(scope="module")
def encoder():
    """The model as sentence-transformers loads it, for the vectors its own `encode` gives."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(local_dir(MINILM, "")[0], device="cpu")


def vector(sdk, model, **extra):
    return np.array(sdk.embeddings.create(model=model, **extra).data[0].embedding)


def test_dimensions_cut_and_renormalise_on_a_matryoshka_model(sdk):
    # MiniLM is not trained as a Matryoshka model: the arg is the operator's word for it, so this
    # checks the mechanics (cut and renormalise), not the quality of short vectors.
    full = vector(sdk, MATRYOSHKA, input=TEXT)
    short = vector(sdk, MATRYOSHKA, input=TEXT, dimensions=128)
    assert short.shape == (128,) and np.linalg.norm(short) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(short, full[:128] / np.linalg.norm(full[:128]), atol=1e-6)


@pytest.mark.parametrize("dimensions, why", [(128, "not trained to be shortened"), (512, "cannot grow")])
def test_dimensions_a_model_cannot_give_are_400(sdk, dimensions, why):
    with pytest.raises(openai.BadRequestError, match=why) as e:
        sdk.embeddings.create(model=EMBEDDER, input=TEXT, dimensions=dimensions)
    assert "dimensions" in e.value.message
    assert len(vector(sdk, EMBEDDER, input=TEXT, dimensions=384)) == 384  # its own size is fine


def test_token_ids_embed_like_their_text(sdk, tokenizer, encoder):
    ids = tokenizer(TEXT)["input_ids"]  # with [CLS] and [SEP], as the model reads the text
    expected = encoder.encode([TEXT])[0]
    np.testing.assert_allclose(vector(sdk, EMBEDDER, input=ids), expected, atol=1e-5)
    r = sdk.embeddings.create(model=EMBEDDER, input=[ids, ids[:3]])
    assert len(r.data) == 2 and r.usage.prompt_tokens == len(ids) + 3


def test_an_input_longer_than_the_model_reads_is_400_by_default_and_is_not_embedded(sdk, registry):
    worker = registry.local[EMBEDDER][1]
    batches = []
    forward = worker._forward
    worker._forward = lambda rows: batches.append([len(r) for r in rows]) or forward(rows)
    try:
        with pytest.raises(openai.BadRequestError, match="at most 256") as e:
            sdk.embeddings.create(model=EMBEDDER, input=["short", LONG])
    finally:
        del worker._forward
    assert "input 1" in e.value.message and "truncate_prompt_tokens" in e.value.message
    assert batches == [[3]], "only the input that fits went through the model"


def test_truncate_prompt_tokens_cuts_each_input(sdk, tokenizer):
    r = sdk.embeddings.create(model=EMBEDDER, input=LONG, extra_body={"truncate_prompt_tokens": -1})
    assert r.usage.prompt_tokens == 256
    cut = sdk.embeddings.create(model=EMBEDDER, input=LONG, extra_body={"truncate_prompt_tokens": 10})
    assert cut.usage.prompt_tokens == 10
    same = tokenizer(LONG, truncation=True, max_length=10)["input_ids"]  # [CLS] 8 words [SEP]
    np.testing.assert_allclose(cut.data[0].embedding, vector(sdk, EMBEDDER, input=same), atol=1e-5)


@pytest.mark.parametrize("body, names", [
    ({"input": [10**9]}, "token 1000000000"),
    ({"input": [[]]}, "empty token list"),
    ({"input": "x", "truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
])
def test_bad_embedding_inputs_are_400(client, body, names):
    r = client.post("/v1/embeddings", json={"model": EMBEDDER, **body})
    assert r.status_code == 400 and names in r.text, r.text

"""Sampling values at the edge of their range, and one row's bad numbers kept to that row.

The same through a real model's batch, with concurrent requests, is
tests/engine/test_transformers_batching.py::test_edge_sampling_values_*.
"""

import pytest
import torch

from serve_app.dialects.anthropic.protocol import MessagesRequest
from serve_app.dialects.dbgpt.protocol import PromptRequest
from serve_app.dialects.openai.protocol import ChatCompletionRequest, CompletionRequest
from serve_app.dialects.responses.protocol import ResponsesRequest
from serve_app.engines.base import SamplingParams
from serve_app.engines.transformers.sampling import RowSampling, RowSamplingError, next_tokens

USER = [{"role": "user", "content": "hi"}]
TINY = [1e-300, 5e-324, 9.9e-6]


def params_of_every_dialect(temperature: float) -> dict[str, SamplingParams]:
    """The SamplingParams each route's request becomes, at this temperature."""
    return {
        "chat": ChatCompletionRequest.model_validate({"model": "m", "messages": USER, "temperature": temperature}).sampling(),
        "completions": CompletionRequest.model_validate({"model": "m", "prompt": "x", "temperature": temperature}).sampling(),
        "messages": MessagesRequest.model_validate(
            {"model": "m", "messages": USER, "max_tokens": 5, "temperature": temperature}).generation("s").params,
        "responses": ResponsesRequest.model_validate(
            {"model": "m", "input": "hi", "temperature": temperature}).generation([], "s").params,
        "dbgpt": PromptRequest(model="m", messages=[{"role": "human", "content": "hi"}],
                               temperature=temperature).to_generation("s").params,
    }


@pytest.mark.parametrize("temperature", TINY)
def test_a_temperature_under_1e_5_is_greedy_on_every_route(temperature):
    for route, params in params_of_every_dialect(temperature).items():
        assert params.temperature == 0.0, route
        assert RowSampling.create(params).greedy, route


def test_a_temperature_at_1e_5_still_samples():
    assert SamplingParams(temperature=1e-5).temperature == 1e-5


@pytest.mark.parametrize("top_p", [5e-324, 1e-300, 1e-9])
def test_a_tiny_top_p_keeps_the_likeliest_token(top_p):
    logits = torch.tensor([[0.0, 3.0, 2.9, 1.0]] * 8)
    rows = [RowSampling.create(SamplingParams(temperature=1.0, top_p=top_p, seed=i)) for i in range(8)]
    chosen = next_tokens(logits, rows)
    assert not chosen.errors
    assert chosen.tokens == [1] * 8


def test_top_k_of_one_is_the_likeliest_token():
    logits = torch.tensor([[0.0, 3.0, 2.9, 1.0]])
    chosen = next_tokens(logits, [RowSampling.create(SamplingParams(temperature=2.0, top_k=1, seed=0))])
    assert chosen.tokens == [1] and not chosen.errors


def test_a_row_with_no_distribution_fails_alone():
    """Row 0's logits are all -inf (nothing to draw), row 1's are NaN (a broken forward for
    that row): each fails with its own error, and rows 2 and 3 get their tokens."""
    logits = torch.tensor([
        [float("-inf")] * 4,
        [float("nan"), 1.0, 2.0, 0.0],
        [0.0, 3.0, 9.0, 1.0],
        [0.0, 9.0, 3.0, 1.0],
    ])
    rows = [RowSampling.create(SamplingParams(temperature=1.0, seed=0)),
            RowSampling.create(SamplingParams(temperature=0.0)),
            RowSampling.create(SamplingParams(temperature=0.0)),
            RowSampling.create(SamplingParams(temperature=0.5, top_p=0.5, seed=3))]
    chosen = next_tokens(logits, rows)
    assert set(chosen.errors) == {0, 1}
    assert all(isinstance(e, RowSamplingError) for e in chosen.errors.values())
    assert "not finite" in str(chosen.errors[0]) and "NaN" in str(chosen.errors[1])
    assert chosen.tokens[2:] == [2, 1]


def test_a_grammar_mask_forbids_exactly_the_tokens_whose_bit_is_clear():
    """Our uncompiled mask against llguidance's own numpy one, on random masks over a vocabulary
    that does not fill its last 32-token word (49,155 tokens, the default llm's is 49,152)."""
    import llguidance.numpy
    import numpy as np
    import torch

    from serve_app.engines.transformers.structured import mask_logits

    rng = np.random.default_rng(7)
    for vocab in (49_155, 49_152, 33):
        words = rng.integers(-(2**31), 2**31, size=(1, (vocab + 31) // 32), dtype=np.int64).astype(np.int32)
        logits = rng.standard_normal((1, vocab)).astype(np.float32)
        theirs = logits.copy()
        llguidance.numpy.apply_token_bitmask_inplace(theirs, words)
        ours = torch.from_numpy(logits.copy())
        mask_logits(ours[0], torch.from_numpy(words[0]))
        assert np.array_equal(ours.numpy(), theirs) and np.isinf(theirs).sum() > vocab // 4

"""The refused-field list and logit_bias sampling, one function at a time."""

import pytest
import torch
from pydantic import ValidationError

from serve_app.dialects.openai.protocol import ChatCompletionRequest, CompletionRequest
from serve_app.dialects.openai.unsupported import NOT_DONE
from serve_app.engines.base import SamplingParams
from serve_app.engines.transformers.sampling import RowSampling, next_tokens

USER = [{"role": "user", "content": "hi"}]


REFUSALS = [(model, field) for model in (ChatCompletionRequest, CompletionRequest) for field in sorted(model.refused_fields)]


@pytest.mark.parametrize("model, field", REFUSALS, ids=[f"{m.__name__}-{f}" for m, f in REFUSALS])
def test_every_refused_field_is_named(model, field):
    body = {"model": "m", "messages": USER, "prompt": "x", field: {"set": True}}
    with pytest.raises(ValidationError, match=field):
        model.model_validate(body)


def test_chat_does_tools_and_completions_refuse_them():
    assert {"tools", "tool_choice"} <= CompletionRequest.refused_fields
    assert not {"tools", "tool_choice"} & ChatCompletionRequest.refused_fields
    assert set(NOT_DONE) == CompletionRequest.refused_fields | ChatCompletionRequest.refused_fields


def test_logit_bias_reaches_the_sampling_params():
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": USER, "logit_bias": {"5": -100, "9": 3}})
    assert req.sampling().logit_bias == {5: -100.0, 9: 3.0}


def test_bias_moves_greedy_choice_per_row_only():
    logits = torch.tensor([[0.0, 5.0, 1.0], [0.0, 5.0, 1.0]])
    rows = [RowSampling.create(SamplingParams(temperature=0.0, logit_bias={1: -100.0})),
            RowSampling.create(SamplingParams(temperature=0.0))]
    assert next_tokens(logits, rows).tokens == [2, 1]


def test_vllms_top_k_and_ignore_eos_reach_the_sampling_params():
    body = {"model": "m", "prompt": "x", "top_k": 5, "ignore_eos": True}
    params = CompletionRequest.model_validate(body).sampling()
    assert params.top_k == 5 and params.ignore_eos is True
    assert CompletionRequest.model_validate({**body, "top_k": -1}).sampling().top_k is None  # vLLM's "all tokens"


def test_ignore_eos_with_a_json_schema_is_refused():
    body = {"model": "m", "messages": USER, "ignore_eos": True, "response_format": {"type": "json_object"}}
    with pytest.raises(ValidationError, match="ignore_eos"):
        ChatCompletionRequest.model_validate(body)


def test_penalties_lower_the_logits_of_tokens_the_row_already_made_and_count_what_it_makes():
    row = RowSampling.create(SamplingParams(temperature=0.0, presence_penalty=0.5, frequency_penalty=1.0))
    plain = RowSampling.create(SamplingParams(temperature=0.0))
    assert row.counts == {} and plain.counts is None
    logits = torch.tensor([[5.0, 4.0, 0.0], [5.0, 4.0, 0.0]])
    assert next_tokens(logits.clone(), [row, plain]).tokens == [0, 0]  # nothing made yet: no penalty
    assert row.counts == {0: 1}
    assert next_tokens(logits.clone(), [row, plain]).tokens == [1, 0]  # token 0: 5 - (1 * 1 + 0.5) = 3.5 < 4
    assert row.counts == {0: 1, 1: 1}
    assert next_tokens(logits.clone(), [row, plain]).tokens == [0, 0]  # 3.5 against 4 - 1.5 = 2.5
    assert row.counts == {0: 2, 1: 1}


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_the_prompt_and_answer():
    row = RowSampling.create(SamplingParams(temperature=0.0, repetition_penalty=2.0), prompt_ids=(0, 1))
    logits = torch.tensor([[3.0, -1.0, 2.0, 0.5]])
    assert next_tokens(logits, [row]).tokens == [2]  # 0: 3 / 2 = 1.5 < 2
    assert logits[0].tolist() == [1.5, -2.0, 2.0, 0.5] and row.seen == {0, 1, 2}
    assert next_tokens(torch.tensor([[3.0, -1.0, 2.0, 0.5]]), [row]).tokens == [0]  # 1.5 against 1.0
    assert RowSampling.create(SamplingParams(), prompt_ids=(0, 1)).seen is None  # 1: nothing kept


def test_min_p_keeps_only_tokens_near_the_likeliest():
    logits = torch.tensor([[2.0, 1.3, 0.0]])  # probabilities about 0.62, 0.31, 0.08
    kept = RowSampling.create(SamplingParams(temperature=1.0, min_p=0.6, seed=1))
    assert {next_tokens(logits.clone(), [kept]).tokens[0] for _ in range(30)} == {0}
    looser = RowSampling.create(SamplingParams(temperature=1.0, min_p=0.2, seed=1))  # 0.08 < 0.2 * 0.62
    assert {next_tokens(logits.clone(), [looser]).tokens[0] for _ in range(30)} == {0, 1}

"""logprobs / top_logprobs through the openai SDK on the default SmolLM2 model (n and its seeds
are in-process: tests/inprocess/test_n_and_seeds.py).

Logprobs are checked against a direct forward pass of the same weights in this
process: the served numbers are the model's own distribution, token by token.
"""

import math

import pytest
import torch
from helpers import LLM_SOURCE

from serve_app.config.workers import LLMArgs
from serve_app.replica.sources import hf_format_dir

PROMPT = "The capital of France is"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def direct():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = LLMArgs(source=LLM_SOURCE)
    directory = hf_format_dir(args.source, args.cache_dir, False)
    return AutoTokenizer.from_pretrained(directory), AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)


def test_completion_logprobs_are_the_models_own(sdk, llm, direct):
    tokenizer, model = direct
    r = sdk.completions.create(model=llm, prompt=PROMPT, max_tokens=8, temperature=0, logprobs=5,
                               extra_body={"return_tokens_as_token_ids": True})
    lp = r.choices[0].logprobs
    ids = [int(t.removeprefix("token_id:")) for t in lp.tokens]
    assert len(ids) == r.usage.completion_tokens == len(lp.token_logprobs) == len(lp.top_logprobs)
    prompt_ids = tokenizer(PROMPT)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([prompt_ids + ids])).logits[0, len(prompt_ids) - 1: -1].float()
    expected = logits.log_softmax(-1)
    for step, token in enumerate(ids):
        assert lp.token_logprobs[step] == pytest.approx(float(expected[step, token]), abs=2e-3)
        top = torch.topk(expected[step], 5)
        served_top = {int(t.removeprefix("token_id:")): v for t, v in lp.top_logprobs[step].items()}
        assert set(served_top) == set(top.indices.tolist())
        for token_id, value in zip(top.indices.tolist(), top.values.tolist()):
            assert served_top[token_id] == pytest.approx(value, abs=2e-3)
        assert token == top.indices[0]  # greedy: the chosen token is the likeliest
    assert tokenizer.decode(ids) == r.choices[0].text
    assert lp.text_offset == [len(tokenizer.decode(ids[:i])) for i in range(len(ids))]


def test_chat_logprobs_shape_and_sum(sdk, llm):
    r = sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=10, temperature=0, logprobs=True,
                                    top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    # The end-of-turn token is scored too (and counted in completion_tokens), as vLLM does.
    assert r.choices[0].finish_reason == "stop" and content[-1].token == "<|im_end|>"
    assert "".join(t.token for t in content[:-1]) == r.choices[0].message.content
    for token in content:
        assert len(token.top_logprobs) == 3 and token.logprob <= 0
        assert token.top_logprobs[0].token == token.token and token.top_logprobs[0].logprob == token.logprob
        assert [t.logprob for t in token.top_logprobs] == sorted((t.logprob for t in token.top_logprobs), reverse=True)
        assert sum(math.exp(t.logprob) for t in token.top_logprobs) <= 1 + 1e-4
        assert token.bytes == list(token.token.encode())
    plain = sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=10, temperature=0)
    assert plain.choices[0].logprobs is None


def test_streamed_logprobs_are_the_same(sdk, llm):
    whole = sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=10, temperature=0, logprobs=True)
    stream = sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=10, temperature=0, logprobs=True,
                                         stream=True)
    streamed = [t for c in stream if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == \
           [(t.token, round(t.logprob, 4)) for t in whole.choices[0].logprobs.content]

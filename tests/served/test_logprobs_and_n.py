"""logprobs / top_logprobs and n > 1 through the openai SDK on the default SmolLM2 model.

Logprobs are checked against a direct forward pass of the same weights in this
process: the served numbers are the model's own distribution, token by token.
"""

import math

import openai
import pytest
import torch

from helpers import LLM_SOURCE
from serve_app.config import LLMArgs
from serve_app.sources import hf_format_dir

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


def test_n_choices_come_from_one_request(sdk, llm):
    one = sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=12, temperature=1.0, seed=3)
    r = sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=12, temperature=1.0, seed=3, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert texts[0] == one.choices[0].message.content  # choice i is seeded seed + i
    assert len(set(texts)) > 1
    assert r.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counts once
    assert r.usage.completion_tokens == sum(
        sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=12, temperature=1.0, seed=3 + i)
        .usage.completion_tokens for i in range(3))


def test_n_on_completions_is_per_prompt_and_streams_every_choice(sdk, llm):
    prompts = ["The sky is", "Water is"]
    r = sdk.completions.create(model=llm, prompt=prompts, max_tokens=4, temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text == r.choices[1].text != r.choices[2].text == r.choices[3].text  # greedy: equal per prompt
    stream = sdk.completions.create(model=llm, prompt=prompts, max_tokens=4, temperature=0, n=2, stream=True)
    texts = {}
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert [texts[i] for i in range(4)] == [c.text for c in r.choices]


@pytest.mark.parametrize("call, names", [
    (dict(messages=FRANCE, top_logprobs=3), "top_logprobs"),
    (dict(messages=FRANCE, logprobs=True, top_logprobs=21), "top_logprobs"),
    (dict(messages=FRANCE, n=17), "n"),
])
def test_out_of_range_is_400(sdk, llm, call, names):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.chat.completions.create(model=llm, max_tokens=2, **call)
    assert e.value.body["param"] == names


def test_completion_logprobs_with_echo_is_refused(sdk, llm):
    with pytest.raises(openai.BadRequestError, match="echo"):
        sdk.completions.create(model=llm, prompt=PROMPT, max_tokens=2, logprobs=1, echo=True)

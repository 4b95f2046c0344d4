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


def test_responses_logprobs_are_chats_for_the_same_tokens_whole_and_streamed(sdk, llm):
    # include: ['message.output_text.logprobs'] with top_logprobs, on the Responses API.
    include = ["message.output_text.logprobs"]
    r = sdk.responses.create(model=llm, input=FRANCE[0]["content"], max_output_tokens=6, temperature=0,
                             include=include, top_logprobs=2)
    chat = sdk.chat.completions.create(model=llm, messages=FRANCE, max_tokens=6, temperature=0, logprobs=True,
                                       top_logprobs=2).choices[0].logprobs.content
    scored = r.output[0].content[0].logprobs
    assert [(t.token, round(t.logprob, 4)) for t in scored] == [(t.token, round(t.logprob, 4)) for t in chat]
    assert len(scored) == 6 and "".join(t.token for t in scored) == r.output_text and r.top_logprobs == 2
    assert [[a.token for a in t.top_logprobs] for t in scored] == [[a.token for a in t.top_logprobs] for t in chat]
    assert all(t.bytes == list(t.token.encode()) for t in scored)
    with sdk.responses.stream(model=llm, input=FRANCE[0]["content"], max_output_tokens=6, temperature=0,
                              include=include, top_logprobs=2) as stream:
        events = list(stream)
    deltas = [lp.token for e in events if e.type == "response.output_text.delta" for lp in e.logprobs]
    (done,) = [e for e in events if e.type == "response.output_text.done"]
    assert deltas == [lp.token for lp in done.logprobs] == [t.token for t in scored]
    assert [t.token for t in events[-1].response.output[0].content[0].logprobs] == deltas
    plain = sdk.responses.create(model=llm, input=FRANCE[0]["content"], max_output_tokens=6, temperature=0)
    assert plain.output[0].content[0].logprobs == [] and plain.output_text == r.output_text


def test_presence_and_frequency_penalties_are_vllms_rule_on_the_models_own_logits(sdk, llm, direct):
    # Each generated token's logit loses presence once it has appeared and frequency times its count.
    tokenizer, model = direct
    prompt, presence, frequency = "Repeat after me: cat cat cat cat cat", 0.5, 1.0
    body = {"model": llm, "prompt": prompt, "max_tokens": 10, "temperature": 0}
    served = sdk.completions.create(**body, presence_penalty=presence, frequency_penalty=frequency, logprobs=0,
                                    extra_body={"return_tokens_as_token_ids": True}).choices[0]
    ids = [int(t.removeprefix("token_id:")) for t in served.logprobs.tokens]
    assert served.finish_reason == "length" and len(ids) == 10
    prompt_ids, made, counts = tokenizer(prompt)["input_ids"], [], {}
    with torch.inference_mode():
        for _ in ids:
            logits = model(torch.tensor([prompt_ids + made])).logits[0, -1].float()
            for token, count in counts.items():
                logits[token] -= frequency * count + presence
            made.append(int(logits.argmax()))
            counts[made[-1]] = counts.get(made[-1], 0) + 1
    assert made == ids, (tokenizer.decode(made), served.text)
    assert sdk.completions.create(**body).choices[0].text != served.text, "the penalties changed the answer"


def test_repetition_penalty_is_vllms_rule_over_the_prompt_and_answer_and_min_p_1_is_greedy(sdk, llm, direct):
    tokenizer, model = direct
    prompt, penalty = "Repeat after me: cat cat cat cat cat", 1.8
    body = {"model": llm, "prompt": prompt, "max_tokens": 10, "temperature": 0}
    served = sdk.completions.create(**body, logprobs=0, extra_body={"repetition_penalty": penalty,
                                                                    "return_tokens_as_token_ids": True}).choices[0]
    ids = [int(t.removeprefix("token_id:")) for t in served.logprobs.tokens]
    prompt_ids, made = tokenizer(prompt)["input_ids"], []
    with torch.inference_mode():
        for _ in ids:
            logits = model(torch.tensor([prompt_ids + made])).logits[0, -1].float()
            seen = sorted(set(prompt_ids + made))
            logits[seen] = torch.where(logits[seen] > 0, logits[seen] / penalty, logits[seen] * penalty)
            made.append(int(logits.argmax()))
    assert made == ids and len(ids) == 10, (tokenizer.decode(made), served.text)
    greedy = sdk.completions.create(**body).choices[0].text
    assert greedy != served.text, "the penalty changed the answer"
    # min_p 1 keeps only the likeliest token: sampling at temperature 1 then gives the greedy answer.
    assert sdk.completions.create(**{**body, "temperature": 1.0}, extra_body={"min_p": 1.0}).choices[0].text == greedy


def test_stop_token_ids_end_the_answer_at_that_token_as_vllms_do(sdk, llm, direct):
    tokenizer, _ = direct
    body = {"model": llm, "prompt": PROMPT, "max_tokens": 12, "temperature": 0, "logprobs": 0,
            "extra_body": {"return_tokens_as_token_ids": True}}
    whole = sdk.completions.create(**body).choices[0]
    ids = [int(t.removeprefix("token_id:")) for t in whole.logprobs.tokens]
    stop_at = next(i for i, t in enumerate(ids) if i > 0 and t not in ids[:i])  # a later token, not seen before
    body["extra_body"] = {**body["extra_body"], "stop_token_ids": [ids[stop_at]]}
    cut = sdk.completions.create(**body).choices[0]
    # Not a special token: it stays in the text, as vLLM leaves it.
    assert cut.finish_reason == "stop" and cut.text == tokenizer.decode(ids[:stop_at + 1]), (cut.text, whole.text)


# --- the prompt scored (#33): OpenAI's echo with logprobs, vLLM's prompt_logprobs --------------


def expected_prompt_logprobs(direct, ids: list[int]) -> torch.Tensor:
    """Row i: the model's log-distribution for the token at place i + 1, given those before it."""
    with torch.inference_mode():
        return direct[1](torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)


def ids_of(tokens: list[str]) -> list[int]:
    return [int(t.removeprefix("token_id:")) for t in tokens]


def test_echo_with_logprobs_and_max_tokens_0_scores_the_prompt_as_the_model_does(sdk, llm, direct):
    tokenizer = direct[0]
    r = sdk.completions.create(model=llm, prompt=PROMPT, max_tokens=0, echo=True, logprobs=3, temperature=0,
                               extra_body={"return_tokens_as_token_ids": True})
    choice, lp = r.choices[0], r.choices[0].logprobs
    assert choice.text == PROMPT and choice.finish_reason == "length" and r.usage.completion_tokens == 0
    ids = ids_of(lp.tokens)
    assert ids == tokenizer(PROMPT)["input_ids"] and r.usage.prompt_tokens == len(ids)
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing before the first token
    expected = expected_prompt_logprobs(direct, ids)
    for place, token in enumerate(ids[1:]):
        assert lp.token_logprobs[place + 1] == pytest.approx(float(expected[place, token]), abs=1e-3)
        top = torch.topk(expected[place], 3)
        served = {int(t.removeprefix("token_id:")): v for t, v in lp.top_logprobs[place + 1].items()}
        assert list(served) == top.indices.tolist()
        assert list(served.values()) == pytest.approx(top.values.tolist(), abs=1e-3)
    assert lp.text_offset == [len(tokenizer.decode(ids[:i])) for i in range(len(ids))]


def test_echo_with_generation_after_gives_the_prompts_tokens_then_the_answers(sdk, llm):
    plain = sdk.completions.create(model=llm, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=1)
    echoed = sdk.completions.create(model=llm, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=1, echo=True)
    lp, answer = echoed.choices[0].logprobs, plain.choices[0].logprobs
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text
    prompt_tokens = echoed.usage.prompt_tokens
    assert len(lp.tokens) == prompt_tokens + 4
    assert lp.tokens[prompt_tokens:] == answer.tokens
    assert lp.token_logprobs[prompt_tokens:] == pytest.approx(answer.token_logprobs, abs=1e-4)
    assert lp.text_offset[prompt_tokens:] == [len(PROMPT) + at for at in answer.text_offset]
    # What lm-evaluation-harness reads: the answer's first token scored after the whole prompt.
    assert all(v is not None for v in lp.token_logprobs[1:])

    streamed = list(sdk.completions.create(model=llm, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=1,
                                           echo=True, stream=True))
    frames = [f.choices[0] for f in streamed if f.choices]
    assert frames[0].text == PROMPT and len(frames[0].logprobs.tokens) == prompt_tokens
    assert "".join(f.text for f in frames) == echoed.choices[0].text
    values = [v for f in frames if f.logprobs for v in f.logprobs.token_logprobs]
    assert values[0] is None and values[1:] == pytest.approx(lp.token_logprobs[1:], abs=1e-4)
    assert [t for f in frames if f.logprobs for t in f.logprobs.tokens] == lp.tokens


def test_prompt_logprobs_of_token_id_prompts_in_vllms_shape(sdk, llm, direct):
    tokenizer = direct[0]
    prompts = [tokenizer(PROMPT)["input_ids"], tokenizer("Water boils at")["input_ids"]]
    r = sdk.completions.create(model=llm, prompt=prompts, max_tokens=1, temperature=0,
                               extra_body={"prompt_logprobs": 2})
    assert [c.index for c in r.choices] == [0, 1] and r.usage.prompt_tokens == sum(map(len, prompts))
    for choice, ids in zip(r.choices, prompts):
        scored = choice.model_extra["prompt_logprobs"]
        assert len(scored) == len(ids) and scored[0] is None
        expected = expected_prompt_logprobs(direct, ids)
        for place, (token, entry) in enumerate(zip(ids[1:], scored[1:])):
            mine = entry[str(token)]
            assert mine["logprob"] == pytest.approx(float(expected[place, token]), abs=1e-3)
            assert mine["rank"] == int((expected[place] > expected[place, token]).sum()) + 1
            assert mine["decoded_token"] == tokenizer.decode([token])
            ranks = {t: e["rank"] for t, e in entry.items() if t != str(token)}
            assert sorted(ranks.values()) == [r for r in (1, 2) if r != mine["rank"]]
    # A prompt of token ids answers as its text does.
    text = sdk.completions.create(model=llm, prompt=PROMPT, max_tokens=4, temperature=0)
    ids = sdk.completions.create(model=llm, prompt=prompts[0], max_tokens=4, temperature=0)
    assert ids.choices[0].text == text.choices[0].text

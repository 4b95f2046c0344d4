"""`n` choices: n streams opened at once from one request, choice i seeded seed + i, the prompt
counted once in usage; on completions, n per prompt, every choice streamed. (On the
simulated llm, whose words follow the prompt and the seed; logprobs need a real
vocabulary: tests/served/test_logprobs_and_n.py.)"""

from inprocess.local import LLM

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def test_n_choices_come_from_one_request_each_seeded_in_turn(sdk):
    def ask(seed, n=1):
        return sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=12, temperature=1.0, seed=seed, n=n)

    r = ask(3, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert texts == [ask(3 + i).choices[0].message.content for i in range(3)]  # choice i is seeded seed + i
    assert len(set(texts)) == 3
    one = ask(3)
    assert r.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counts once
    assert r.usage.completion_tokens == 3 * one.usage.completion_tokens == 36


def test_n_on_completions_is_per_prompt_and_streams_every_choice(sdk):
    prompts = ["The sky is", "Water is"]
    r = sdk.completions.create(model=LLM, prompt=prompts, max_tokens=4, temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text == r.choices[1].text != r.choices[2].text == r.choices[3].text  # equal per prompt
    stream = sdk.completions.create(model=LLM, prompt=prompts, max_tokens=4, temperature=0, n=2, stream=True)
    texts = {}
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert [texts[i] for i in range(4)] == [c.text for c in r.choices]


def test_streamed_chat_choices_join_to_the_whole_ones_and_end_with_done(client):
    body = {"model": LLM, "messages": FRANCE, "max_tokens": 6, "seed": 1, "n": 2}
    whole = client.post("/v1/chat/completions", json=body).json()
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True,
                                                             "stream_options": {"include_usage": True}}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    import json

    frames = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    texts = {}
    for frame in frames:
        for c in frame["choices"]:
            texts[c["index"]] = texts.get(c["index"], "") + (c["delta"].get("content") or "")
    assert [texts[i] for i in range(2)] == [c["message"]["content"] for c in whole["choices"]]
    # OpenAI's shapes exactly: a message always carries `refusal`; a delta only what it carries.
    assert all(c["message"]["refusal"] is None for c in whole["choices"])
    deltas = [c["delta"] for frame in frames for c in frame["choices"]]
    assert all(None not in d.values() for d in deltas)
    assert [d.get("role") for d in deltas].count("assistant") == 2 and {} in deltas
    assert frames[-1]["choices"] == [] and frames[-1]["usage"] == whole["usage"]

"""A reasoning model's thinking apart from its answer on the OpenAI chat route: `reasoning_content`
and `reasoning`, streamed as their own deltas, counted in usage, left out on request; and
`chat_template_kwargs` reaching the template (or refused by name)."""

import json

import openai
import pytest
from inprocess.local import LLM, THINKER

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def chat(client, **extra):
    return client.post("/v1/chat/completions", json={"model": THINKER, "messages": FRANCE, "max_tokens": 12, **extra})


def test_the_thinking_comes_apart_from_the_answer_and_is_counted(client):
    body = chat(client).json()
    message, usage = body["choices"][0]["message"], body["usage"]
    assert message["reasoning_content"] == message["reasoning"] and len(message["reasoning"].split()) == 5
    assert message["content"] and len(message["content"].split()) == 12 - 7  # 7: the tags and 5 words of thinking
    assert "think>" not in message["content"] + message["reasoning"]
    assert usage["completion_tokens"] == 12 and usage["completion_tokens_details"] == {"reasoning_tokens": 7}


def test_streamed_thinking_comes_first_in_its_own_deltas_and_joins_to_the_whole(client):
    whole = chat(client).json()["choices"][0]["message"]
    with client.stream("POST", "/v1/chat/completions", json={"model": THINKER, "messages": FRANCE, "max_tokens": 12,
                                                             "stream": True}) as r:
        deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in r.iter_lines()
                  if line.startswith("data: {")]
    thinking = [d["reasoning"] for d in deltas if "reasoning" in d]
    answer = [d["content"] for d in deltas if d.get("content")]
    assert "".join(thinking) == whole["reasoning"] and "".join(answer) == whole["content"]
    assert all(d["reasoning_content"] == d["reasoning"] for d in deltas if "reasoning" in d)
    last_thought = max(i for i, d in enumerate(deltas) if "reasoning" in d)
    assert last_thought < min(i for i, d in enumerate(deltas) if d.get("content"))
    assert not any("think>" in json.dumps(d) for d in deltas)


def test_include_reasoning_false_leaves_the_thinking_out_but_counts_it(client):
    body = chat(client, include_reasoning=False).json()
    message = body["choices"][0]["message"]
    assert "reasoning" not in message and "reasoning_content" not in message
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 7}


def test_chat_template_kwargs_reach_the_template(sdk):
    r = sdk.chat.completions.create(model=THINKER, messages=FRANCE, max_tokens=6,
                                    extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    message = r.choices[0].message.model_dump()
    assert "reasoning" not in message and len(message["content"].split()) == 6
    assert r.usage.completion_tokens_details is None


@pytest.mark.parametrize("kwargs, names", [
    ({"enable_thinkng": False}, "enable_thinkng"),
    ({"messages": []}, "messages"),
    ("off", "chat_template_kwargs"),
])
def test_chat_template_kwargs_the_template_cannot_take_are_400(sdk, kwargs, names):
    with pytest.raises(openai.BadRequestError, match=names) as e:
        sdk.chat.completions.create(model=THINKER, messages=FRANCE, max_tokens=2,
                                    extra_body={"chat_template_kwargs": kwargs})
    assert "chat_template_kwargs" in e.value.message


def test_a_raw_completion_is_what_the_model_wrote(sdk):
    text = sdk.completions.create(model=THINKER, prompt="The capital of France is", max_tokens=8).choices[0].text
    assert text.startswith("<think>") and "</think>" in text


# --- DB-GPT's worker API: what each version's ModelOutput can carry ---------------------------

DBGPT_07_CONTEXT = {"stream": True, "user_name": None, "span_id": None, "is_reasoning_model": False}
DBGPT_06_CONTEXT = {"stream": True, "user_name": None, "span_id": None}


def dbgpt_frames(client, context: dict) -> list[dict]:
    body = {"model": THINKER, "messages": [{"role": "human", "content": FRANCE[0]["content"]}], "max_new_tokens": 12,
            "context": context}
    raw = client.post("/api/worker/generate_stream", json=body).content
    return [json.loads(f) for f in raw.split(b"\0") if f]


def test_dbgpt_07_and_later_get_thinking_and_text_parts_cumulatively(client):
    whole = chat(client).json()["choices"][0]["message"]
    frames = dbgpt_frames(client, DBGPT_07_CONTEXT)
    assert all("text" not in f for f in frames if "content" in f), "DB-GPT refuses text and content together"
    last = frames[-1]["content"]
    assert [part["type"] for part in last] == ["thinking", "text"]
    assert last[0]["object"]["data"] == whole["reasoning"] and last[1]["object"]["data"] == whole["content"]
    thoughts = [f["content"][0]["object"]["data"] for f in frames if "content" in f]
    assert all(b.startswith(a) for a, b in zip(thoughts, thoughts[1:])), "cumulative, thinking too"
    assert all(part["object"]["data"] is not None for f in frames if "content" in f for part in f["content"])


def test_dbgpt_06_gets_the_thinking_inline_in_its_legacy_text(client):
    whole = chat(client).json()["choices"][0]["message"]
    frames = dbgpt_frames(client, DBGPT_06_CONTEXT)
    assert all(set(f) == {"text", "error_code", "incremental", "model_context", "finish_reason", "usage", "metrics"}
               for f in frames)
    assert frames[-1]["text"] == f"<think>{whole['reasoning']}</think>{whole['content']}"


@pytest.mark.parametrize("model, switch, answers", [(LLM, False, True), (LLM, True, False),
                                                     (THINKER, False, True), (THINKER, True, True)])
def test_enable_thinking_is_taken_where_it_asks_for_what_the_model_does(sdk, model, switch, answers):
    """Clients send `enable_thinking` to every model (#33): a model that never thinks takes `false` and
    refuses `true`, naming the key; a model whose template has the switch takes both."""
    ask = lambda: sdk.chat.completions.create(model=model, messages=FRANCE, max_tokens=2,  # noqa: E731
                                              extra_body={"chat_template_kwargs": {"enable_thinking": switch}})
    if answers:
        assert ask().choices[0].finish_reason in ("stop", "length")  # answered, not refused
    else:
        with pytest.raises(openai.BadRequestError, match="enable_thinking") as e:
            ask()
        assert "never thinks" in e.value.message

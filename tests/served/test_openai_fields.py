"""OpenAI request fields that change the answer: done (logit_bias, /tokenize) or refused by name.
response_format and tools have their own files: test_structured_output.py, test_tool_calls.py."""

import openai
import pytest

from helpers import CHAT, LLM

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def sdk(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"functions": [WEATHER_TOOL["function"]]}, "functions"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1}, "presence_penalty"),
    ],
)
def test_fields_that_would_change_the_answer_are_refused_by_name(sdk, extra, param):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=2, **extra)
    assert e.value.body["param"] == param and "not supported" in e.value.message


def test_their_no_op_values_are_accepted(sdk):
    r = sdk.chat.completions.create(
        model=LLM, messages=FRANCE, max_tokens=2, response_format={"type": "text"}, tool_choice="none",
        frequency_penalty=0, presence_penalty=0, logprobs=False,
    )
    assert r.choices[0].message.content


def test_image_content_is_refused(client):
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    r = client.post(CHAT, json={"model": LLM, "messages": [{"role": "user", "content": parts}]})
    assert r.status_code == 400 and "image_url" in r.json()["error"]["message"]


@pytest.mark.parametrize("extra", [{"suffix": "return x"}, {"extra_body": {"tools": [WEATHER_TOOL]}}])
def test_completions_refuse_suffix_and_tools(sdk, extra):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.completions.create(model=LLM, prompt="def f(", max_tokens=2, **extra)
    assert e.value.body["param"] == next(iter(extra.get("extra_body", extra)))


def test_logit_bias_bans_and_forces_tokens(sdk, client):
    plain = sdk.chat.completions.create(model=LLM, messages=FRANCE, temperature=0, max_tokens=4)
    first = plain.choices[0].message.content
    first_id = client.post("/tokenize", json={"model": LLM, "prompt": first, "add_special_tokens": False}).json()["tokens"][0]

    banned = sdk.chat.completions.create(model=LLM, messages=FRANCE, temperature=0, max_tokens=4,
                                         logit_bias={str(first_id): -100})
    assert banned.choices[0].message.content != first

    paris = client.post("/tokenize", json={"model": LLM, "prompt": " Paris", "add_special_tokens": False}).json()["tokens"]
    forced = sdk.chat.completions.create(model=LLM, messages=FRANCE, temperature=0, max_tokens=3,
                                         logit_bias={str(paris[0]): 100})
    text = forced.choices[0].message.content
    assert text == client.post("/detokenize", json={"model": LLM, "tokens": [paris[0]] * 3}).json()["prompt"]


@pytest.mark.parametrize("bias, names", [({"99999999": 5}, "99999999"), ({"hello": 1}, "token ids"), ({"7": 101}, "100")])
def test_bad_logit_bias_is_400(sdk, bias, names):
    with pytest.raises(openai.BadRequestError, match=names):
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=2, logit_bias=bias)


def test_tokenize_counts_what_the_model_reads(sdk, client):
    r = client.post("/tokenize", json={"model": LLM, "messages": FRANCE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["max_model_len"] == 8192 and body["count"] == len(body["tokens"])
    usage = sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=1).usage
    assert body["count"] == usage.prompt_tokens

    text = "The capital of France is Paris."
    ids = client.post("/tokenize", json={"model": LLM, "prompt": text, "add_special_tokens": False}).json()["tokens"]
    assert client.post("/detokenize", json={"model": LLM, "tokens": ids}).json() == {"prompt": text}


@pytest.mark.parametrize(
    "path, body, names",
    [
        ("/tokenize", {"model": LLM}, "exactly one of 'prompt' and 'messages'"),
        ("/tokenize", {"model": "nope", "prompt": "x"}, "nope"),
        ("/detokenize", {"model": LLM, "tokens": [-1]}, "token -1"),
        ("/detokenize", {"model": LLM, "tokens": "abc"}, "tokens"),
    ],
)
def test_tokenizer_routes_name_bad_input(client, path, body, names):
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500 and names in r.text, r.text

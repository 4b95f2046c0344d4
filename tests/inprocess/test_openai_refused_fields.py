"""OpenAI request fields that would change the answer and are not done: refused by name
(dialects/openai/unsupported.py), their no-op values accepted; out-of-range values named.
Fields that are done (logit_bias, logprobs, tools, response_format) are checked on a real
model's tokens in tests/served."""

import openai
import pytest
from inprocess.local import LLM

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"functions": [WEATHER_TOOL["function"]]}, "functions"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"extra_body": {"min_tokens": 8}}, "min_tokens"),
        ({"web_search_options": {}}, "web_search_options"),  # an empty object turns OpenAI's search on
        ({"extra_body": {"guided_json": {"type": "object"}}}, "guided_json"),  # vLLM's: use response_format
        ({"extra_body": {"bad_words": ["Paris"]}}, "bad_words"),
        ({"extra_body": {"continue_final_message": True}}, "continue_final_message"),
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
        # vLLM's defaults, as a client written for vLLM may send them
        extra_body={"skip_special_tokens": True, "add_generation_prompt": True, "echo": False, "stop_token_ids": []},
    )
    assert r.choices[0].message.content


def test_image_content_is_refused(client):
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    r = client.post("/v1/chat/completions", json={"model": LLM, "messages": [{"role": "user", "content": parts}]})
    assert r.status_code == 400 and "image_url" in r.json()["error"]["message"]


@pytest.mark.parametrize("extra", [{"suffix": "return x"}, {"extra_body": {"tools": [WEATHER_TOOL]}}])
def test_completions_refuse_suffix_and_tools(sdk, extra):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.completions.create(model=LLM, prompt="def f(", max_tokens=2, **extra)
    assert e.value.body["param"] == next(iter(extra.get("extra_body", extra)))


@pytest.mark.parametrize("bias, names", [({"hello": 1}, "token ids"), ({"7": 101}, "100")])
def test_bad_logit_bias_is_400(sdk, bias, names):
    with pytest.raises(openai.BadRequestError, match=names):
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=2, logit_bias=bias)


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"temperature": 5}, "temperature"),
        ({"n": 17}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"extra_body": {"min_p": 1.5}}, "min_p"),
        ({"extra_body": {"repetition_penalty": 0}}, "repetition_penalty"),
        ({"presence_penalty": -3}, "presence_penalty"),
    ],
)
def test_out_of_range_is_400_naming_the_field(sdk, extra, param):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.chat.completions.create(model=LLM, messages=FRANCE, **extra)
    assert e.value.body["param"] == param and param in e.value.message


def test_prompt_scoring_on_an_engine_without_a_vocabulary_is_refused(sdk):
    """Echo with logprobs and prompt_logprobs score the prompt (tests/served/test_logprobs_and_n.py);
    the simulated engine has no tokens to score, and says so."""
    for extra in ({"logprobs": 1, "echo": True}, {"extra_body": {"prompt_logprobs": 0}}, {"prompt": [1, 2, 3]}):
        body = {"prompt": "The sky is", **extra}
        with pytest.raises(openai.BadRequestError, match="no token vocabulary"):
            sdk.completions.create(model=LLM, max_tokens=2, **body)


def test_max_tokens_0_takes_echo_or_prompt_logprobs(sdk):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.completions.create(model=LLM, prompt="The sky is", max_tokens=0)
    assert e.value.body["param"] == "max_tokens" and "echo" in e.value.message
    echoed = sdk.completions.create(model=LLM, prompt="The sky is", max_tokens=0, echo=True)
    choice = echoed.choices[0]
    assert choice.text == "The sky is" and choice.finish_reason == "length" and echoed.usage.completion_tokens == 0


@pytest.mark.parametrize("value", [0, 2])
def test_prompt_logprobs_on_chat_is_refused_even_at_0(sdk, value):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=2, extra_body={"prompt_logprobs": value})
    assert e.value.body["param"] == "prompt_logprobs" and "/v1/completions" in e.value.message


@pytest.mark.parametrize("prompt", [[], [[]], [[1], []]])
def test_an_empty_token_prompt_is_400(client, prompt):
    r = client.post("/v1/completions", json={"model": LLM, "prompt": prompt, "max_tokens": 1})
    assert r.status_code == 400 and "prompt" in r.text


@pytest.mark.parametrize(
    "path, body, names",
    [
        ("/tokenize", {"model": LLM}, "exactly one of 'prompt' and 'messages'"),
        ("/tokenize", {"model": "nope", "prompt": "x"}, "nope"),
        ("/detokenize", {"model": LLM, "tokens": "abc"}, "tokens"),
    ],
)
def test_tokenizer_routes_name_bad_input(client, path, body, names):
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500 and names in r.text, r.text


def test_stop_token_ids_on_an_engine_without_a_vocabulary_are_refused(sdk):
    # Done on a real tokenizer (tests/served/test_logprobs_and_n.py); the simulated engine has no ids.
    with pytest.raises(openai.BadRequestError, match="stop_token_ids"):
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=2, extra_body={"stop_token_ids": [2]})
    with pytest.raises(openai.BadRequestError, match="stop_token_ids"):
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=2, extra_body={"stop_token_ids": [-1]})


def test_include_stop_str_in_output_ends_the_text_with_the_stop_string(sdk):
    whole = sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=12).choices[0].message.content
    stop = whole.split()[3]
    cut = sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=12, stop=[stop]).choices[0]
    kept = sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=12, stop=[stop],
                                       extra_body={"include_stop_str_in_output": True}).choices[0]
    assert cut.finish_reason == kept.finish_reason == "stop"
    assert kept.message.content == cut.message.content + stop == whole[:whole.index(stop) + len(stop)]

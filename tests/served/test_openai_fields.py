"""OpenAI request fields that change the answer and need the model's own vocabulary: logit_bias,
/tokenize and /detokenize. response_format and tools have their own files
(test_structured_output.py, test_tool_calls.py); fields refused by name are in-process
(tests/inprocess/test_openai_fields.py)."""

import openai
import pytest
from helpers import LLM

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def sdk(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)


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


def test_a_logit_bias_on_a_token_the_model_lacks_is_400_naming_it(sdk):
    with pytest.raises(openai.BadRequestError, match="99999999") as e:
        sdk.chat.completions.create(model=LLM, messages=FRANCE, max_tokens=2, logit_bias={"99999999": 5})
    assert "InvalidPromptError" not in e.value.message and "serve_app" not in e.value.message


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


def test_detokenize_names_a_token_the_model_lacks(client):
    r = client.post("/detokenize", json={"model": LLM, "tokens": [-1]})
    assert r.status_code == 400 and "token -1" in r.text, r.text

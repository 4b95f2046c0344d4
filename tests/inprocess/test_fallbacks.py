"""Fallbacks (serving/fallbacks.py): a model that cannot take a generation before its first
token (no running replica, a prompt over its context) hands it to the models its args
name, in order, if the key may call them; the answer names who served it. A saturated
model's fallback needs Serve's queues: tests/served/test_governance.py."""

from inprocess.local import LLM, SHORT, STARTING

from serve_app.config.keys import KeySpec
from serve_app.governance.keys import KeyRecord, hash_key

LONG = [{"role": "user", "content": "word " * 60}]  # over sim-short's 40 words


def chat(client, model, messages=LONG, **extra):
    return client.post("/v1/chat/completions", json={"model": model, "messages": messages, "max_tokens": 4}, **extra)


def test_a_prompt_too_long_for_a_model_goes_to_its_fallback(client):
    answer = chat(client, SHORT)
    assert answer.status_code == 200 and answer.headers["x-smmf-model"] == LLM and answer.json()["model"] == LLM
    worker = client.post("/api/worker/generate", json={"model": SHORT, "messages": LONG})
    assert worker.json()["error_code"] == 0 and worker.headers["x-smmf-model"] == LLM
    fits = chat(client, SHORT, messages=[{"role": "user", "content": "hi"}])
    assert fits.headers["x-smmf-model"] == SHORT, "a prompt that fits stays on its model"


def test_a_model_with_no_running_replica_goes_to_its_fallback(client):
    answer = chat(client, STARTING)
    assert answer.status_code == 200 and answer.headers["x-smmf-model"] == LLM
    stream = client.post("/v1/chat/completions", json={"model": STARTING, "messages": LONG, "max_tokens": 3,
                                                       "stream": True})
    assert stream.headers["x-smmf-model"] == LLM and '"model":"sim-llm"' in stream.text


def test_a_key_must_be_allowed_the_fallback(client, state):
    key = KeyRecord(id="only-short", key_sha256=hash_key("sk-short"), **KeySpec(models=[SHORT]).model_dump())
    with state(keys=[key]):
        refused = chat(client, SHORT, headers={"Authorization": "Bearer sk-short"})
    assert refused.status_code == 400 and "context length" in refused.json()["error"]["message"]


def test_an_unknown_model_does_not_fall_back(client):
    assert chat(client, "no-such-model").status_code == 404

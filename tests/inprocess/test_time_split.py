"""Where a request's time went (http/timing.py): the Server-Timing header of model calls, whole
and streamed, and the access-log line's parts; the parts never add up to more than the time
the request took."""

import logging
import re
import time

from inprocess.local import EMBEDDER, LLM, RERANKER

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def parts(header: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"(\w+);dur=([\d.]+)", header)}


def test_a_whole_answer_says_its_queue_prefill_decode_and_serving_time(client):
    started = time.monotonic()
    r = client.post("/v1/chat/completions", json={"model": LLM, "messages": FRANCE, "max_tokens": 20})
    took_ms = (time.monotonic() - started) * 1000
    split = parts(r.headers["server-timing"])
    assert list(split) == ["queue", "prefill", "decode", "serving"]
    assert split["decode"] > 0 and sum(split.values()) <= took_ms


def test_a_stream_says_what_is_known_when_it_starts(client):
    with client.stream("POST", "/v1/chat/completions",
                       json={"model": LLM, "messages": FRANCE, "max_tokens": 5, "stream": True}) as r:
        split = parts(r.headers["server-timing"])
        r.read()
    assert list(split) == ["queue", "prefill", "serving"]


def test_embeddings_rerank_and_dbgpt_routes_say_it_too(client):
    for path, body in [("/v1/embeddings", {"model": EMBEDDER, "input": ["a", "b"]}),
                       ("/v1/rerank", {"model": RERANKER, "query": "q", "documents": ["a", "b"]}),
                       ("/api/worker/generate", {"model": LLM, "prompt": "hi", "max_new_tokens": 3})]:
        split = parts(client.post(path, json=body).headers["server-timing"])
        assert {"queue", "prefill", "serving"} <= set(split), (path, split)
    assert "server-timing" not in client.get("/v1/models").headers  # no model call, no split


def test_the_access_log_line_carries_the_split(client, caplog):
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        client.post("/v1/chat/completions", json={"model": LLM, "messages": FRANCE, "max_tokens": 4})
    [line] = [m for m in caplog.messages if m.startswith("access route=POST /v1/chat/completions")]
    assert all(f"{part}_ms=" in line for part in ("queue", "prefill", "decode", "serving"))

"""Traces across the graph (serve_app/tracing.py), exported over OTLP/HTTP to a real receiver on
127.0.0.1: the span tree of a streamed chat and of an embeddings call, the client's W3C
traceparent continued, DB-GPT's span_id recorded. Tracing is per process and stays on once
set, so this module runs last in the tier (its name sorts last)."""

import time

import pytest
from inprocess.local import EMBEDDER, LLM
from opentelemetry import trace
from otlp_receiver import Receiver

from serve_app import tracing

TRACE_ID, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"}


@pytest.fixture(scope="module")
def receiver():
    found = Receiver()
    mp = pytest.MonkeyPatch()
    mp.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
    assert tracing.setup("smmf-serve/inprocess")
    yield found
    mp.undo()


def ancestors(spans: dict[str, dict], name: str) -> list[str]:
    by_id = {s["span_id"]: s for s in spans.values()}
    out, parent = [], spans[name]["parent"]
    while parent in by_id:
        out.append(by_id[parent]["name"])
        parent = by_id[parent]["parent"]
    return out


def spans_of(receiver, trace_id: str, count: int) -> dict[str, dict]:
    deadline = time.monotonic() + 10
    while True:
        trace.get_tracer_provider().force_flush()
        spans = [s for s in receiver.spans if s["trace_id"] == trace_id]
        if len(spans) >= count or time.monotonic() > deadline:
            return {s["name"]: s for s in spans}
        time.sleep(0.1)


def test_a_streamed_chat_is_one_trace_from_the_client_to_the_decode(client, receiver):
    body = {"model": LLM, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=TRACEPARENT) as r:
        r.read()
    spans = spans_of(receiver, TRACE_ID, 7)
    root = spans["POST /v1/chat/completions"]
    assert root["parent"] == PARENT, "the client's traceparent is continued"
    assert root["attributes"]["smmf.model"] == LLM and root["attributes"]["http.response.status_code"] == 200
    assert ancestors(spans, f"attempt {LLM}")[-1] == "POST /v1/chat/completions"
    call = spans["call llm"]
    assert call["parent"] == spans[f"attempt {LLM}"]["span_id"]
    for part in ("queue", "prefill", "decode"):
        assert spans[part]["parent"] == call["span_id"], part
    assert spans["queue"]["end"] <= spans["prefill"]["start"] + 1000 and spans["prefill"]["end"] <= spans["decode"]["start"] + 1000
    assert root["end"] >= spans["decode"]["end"], "the request's span lasts until the stream has ended"


def test_an_embeddings_call_and_dbgpts_span_id(client, receiver):
    client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["a"]},
                headers={"traceparent": f"00-{'1' * 32}-{PARENT}-01"})
    spans = spans_of(receiver, "1" * 32, 5)
    call = spans["call text2vec"]
    assert ancestors(spans, "call text2vec")[-1] == "POST /v1/embeddings"
    assert spans["queue"]["parent"] == call["span_id"] and spans["compute"]["parent"] == call["span_id"]

    client.post("/api/worker/generate", json={"model": LLM, "prompt": "hi", "max_new_tokens": 2, "span_id": "dbgpt-span-7"},
                headers={"traceparent": f"00-{'2' * 32}-{PARENT}-01"})
    root = spans_of(receiver, "2" * 32, 6)["POST /api/worker/generate"]
    assert root["attributes"]["dbgpt.span_id"] == "dbgpt-span-7"

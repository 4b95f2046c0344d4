"""A reasoning model through DB-GPT's own clients, in every supported version: 0.7 and 0.8 read
its thinking and its answer apart (`ModelOutput.thinking_text`, `.text`), 0.6's dataclass (text
only) gets the thinking inline; each compared with a direct call to the model's deployment."""

from __future__ import annotations

import pytest
from helpers import THINKER, apply, direct_generate_parts
from test_dbgpt_clients import VERSIONS, run_driver

MODEL = "compat-thinker"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def thinker(client):
    apply(client, model=MODEL, worker_type="llm", apply_type="start", params=THINKER)
    yield direct_generate_parts(MODEL, QUESTION)
    apply(client, model=MODEL, apply_type="stop", delete_after=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_version_reads_the_thinking_as_its_workers_send_it(version, base_url, tmp_path, thinker):
    thinking, answer = thinker
    assert thinking and answer
    results = run_driver(version, tmp_path, "thinking", base_url, MODEL)
    if version == "0.6.3":
        assert results["thinking.dataclass"]["ok"], results["thinking.dataclass"]
        assert results["thinking.dataclass"]["value"]["text"] == f"<think>{thinking}</think>{answer}"
        return
    for name in ("thinking.generate", "thinking.generate_stream"):
        assert results[name]["ok"], results[name]
    whole, stream = results["thinking.generate"]["value"], results["thinking.generate_stream"]["value"]
    assert whole == {"thinking": thinking, "text": answer, "error_code": 0}
    assert stream["last"] == whole and stream["frames"] > 1

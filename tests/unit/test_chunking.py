"""Coalescing chunks into fewer handle messages: what is merged, and what is never held."""

import asyncio

from deployments.chunking import coalesce
from serve_app.engines.base import GenerationChunk


async def paced(words, gap_s: float, finish="length"):
    for i, word in enumerate(words):
        if i:
            await asyncio.sleep(gap_s)
        yield GenerationChunk(text=word, prompt="P" if i == 0 else None, prompt_tokens=2, completion_tokens=i + 1,
                              finish_reason=finish if i == len(words) - 1 else None)


def run(words, gap_s, interval_s, finish="length") -> list[GenerationChunk]:
    async def go():
        return [c async for c in coalesce(paced(words, gap_s, finish), interval_s)]

    return asyncio.run(go())


WORDS = [f" w{i}" for i in range(20)]


def test_fast_chunks_travel_together_and_lose_nothing():
    sent = run(WORDS, 0.002, 0.02)
    assert len(sent) < len(WORDS) / 3, len(sent)
    assert "".join(c.text for c in sent) == "".join(WORDS)
    assert sent[0].text == " w0" and sent[0].prompt == "P", "the first chunk is never held back"
    assert sent[-1].finish_reason == "length" and sent[-1].completion_tokens == 20
    assert all(c.prompt is None for c in sent[1:]) and all(c.finish_reason is None for c in sent[:-1])
    assert [c.completion_tokens for c in sent] == sorted(c.completion_tokens for c in sent)


def test_slow_chunks_and_a_zero_interval_go_one_by_one():
    assert len(run(WORDS[:5], 0.03, 0.02)) == 5
    assert len(run(WORDS, 0.0, 0)) == 20


def test_a_stream_cut_short_still_passes_on_what_it_made():
    sent = run(WORDS[:6], 0.001, 10.0, finish=None)
    assert "".join(c.text for c in sent) == "".join(WORDS[:6]) and sent[-1].finish_reason is None

"""Continuous batching in the transformers engine: concurrent requests share forward
passes, yet each stream gets exactly the text it would get alone.

The tests drive one in-process `TransformersEngine` (no Serve); the same through
Serve is tests/served/test_served_batching.py. Greedy output is compared for exact equality:
a row's attention sees only its own tokens (padding is masked, positions count
real tokens), and the only difference batching makes is float32 rounding in
matmuls of another shape (~1e-6 relative), far below the gap between the top two
logits on these prompts, so no tolerance is needed. Orders of completion are
checked instead of timings.
"""

import asyncio

import pytest
from helpers import LLM, LLM_SOURCE, QUESTIONS

from serve_app.config.workers import LLMArgs
from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams


@pytest.fixture(scope="module")
def engine():
    from serve_app.engines.transformers.engine import TransformersEngine

    return TransformersEngine(LLMArgs(source=LLM_SOURCE))


@pytest.fixture(scope="module")
def batch_sizes(engine):
    """Every batch size the loop ran a forward pass with, recorded through its metric."""
    sizes: list[int] = []
    observe = engine.metrics.batch_size.observe
    engine.metrics.batch_size.observe = lambda value, *a, **k: (sizes.append(value), observe(value, *a, **k))
    return sizes


@pytest.fixture(scope="module")
def alone(engine) -> list[dict]:
    """Each question's greedy answer with ask's defaults, alone in the engine: what a batch must
    give back. Made once for the module (it is the same every time)."""
    return [solo(engine, ask(q)) for q in QUESTIONS]


def ask(question: str, max_new_tokens: int = 24, **params) -> GenerationRequest:
    params.setdefault("temperature", 0)
    return GenerationRequest(
        messages=[ChatMessage(role="user", content=question)],
        params=SamplingParams(max_new_tokens=max_new_tokens, **params),
    )


async def collect(engine, request, delay: float = 0.0, log: list | None = None, name: str = "") -> dict:
    await asyncio.sleep(delay)
    chunks = [c async for c in engine.generate(request)]
    if log is not None:
        log.append(name)
    return {
        "text": "".join(c.text for c in chunks),
        "finish": chunks[-1].finish_reason,
        "tokens": chunks[-1].completion_tokens,
        "chunks": chunks,
    }


def solo(engine, request) -> dict:
    return asyncio.run(collect(engine, request))


def answer(result: dict) -> tuple:
    return result["text"], result["finish"], result["tokens"]


def test_concurrent_streams_each_get_their_own_text(engine, batch_sizes, alone):
    assert alone[0]["text"] == "The capital of France is Paris."
    assert len({r["text"] for r in alone}) == len(QUESTIONS), "different prompts, different answers"

    async def together():
        batch_sizes.clear()
        # Half start at once (one prefill), half arrive while those decode (they join mid-batch).
        # A sampling request shares the batch: per-row sampling must leave greedy rows alone.
        delays = [0, 0, 0, 0.3, 0.6, 0.9]
        sampled = collect(engine, ask("Tell me a story.", temperature=0.9, top_p=0.9, top_k=40, seed=1))
        results = await asyncio.gather(*(collect(engine, ask(q), d) for q, d in zip(QUESTIONS, delays)), sampled)
        return results[:-1], results[-1]

    batched, sampled = asyncio.run(together())
    assert max(batch_sizes) > 1, "the requests shared forward passes"
    assert len(set(batch_sizes)) > 1, "rows joined and left between steps"
    for q, a, b in zip(QUESTIONS, alone, batched):
        assert answer(b) == answer(a), q
        chunks = b["chunks"]
        assert chunks[0].prompt and "<|im_start|>" in chunks[0].prompt
        assert all(c.prompt is None for c in chunks[1:])
        assert len(chunks) > 2, "each stream gets its tokens as they are made"
    assert sampled["tokens"] > 0 and sampled["text"]


def test_short_requests_finish_without_waiting_for_a_long_one(engine, alone):
    long_alone = solo(engine, ask("Write a long story about a dragon.", max_new_tokens=64))
    stop_alone = alone[0]
    assert long_alone["finish"] == "length" and long_alone["tokens"] == 64

    async def together():
        order: list[str] = []
        results = await asyncio.gather(
            collect(engine, ask("Write a long story about a dragon.", max_new_tokens=64), log=order, name="long"),
            collect(engine, ask("Name three fruits.", max_new_tokens=3), 0.2, order, "short"),
            collect(engine, ask(QUESTIONS[0], stop=["Paris"]), 0.2, order, "stop"),
        )
        return results, order

    (long_, short, stop), order = asyncio.run(together())
    assert order[-1] == "long", f"the short requests finished first: {order}"
    assert short["finish"] == "length" and short["tokens"] == 3
    assert stop["text"] == "The capital of France is " and stop["finish"] == "stop"
    assert stop_alone["text"].startswith(stop["text"] + "Paris")
    assert all("Paris" not in c.text for c in stop["chunks"]), "the stop string never leaks"
    assert answer(long_) == answer(long_alone)


def test_closing_a_stream_frees_its_slot(engine):
    long_b = ask("Write a long story about a dragon.", max_new_tokens=64)
    short_c = ask("Who wrote Hamlet?", max_new_tokens=16)
    b_alone, c_alone = solo(engine, long_b), solo(engine, short_c)

    async def scenario():
        order: list[str] = []
        # A asks for far more tokens than anyone else and is closed after its first chunk.
        a = engine.generate(ask("Count from one to one thousand.", max_new_tokens=400))
        first = await a.__anext__()
        b = asyncio.ensure_future(collect(engine, long_b, log=order, name="b"))
        await asyncio.sleep(0.2)
        await a.aclose()  # the client went away
        # Only two places: C starts before B ends only if A's place was given back.
        c = await collect(engine, short_c, log=order, name="c")
        return first, await b, c, order

    saved = engine.max_num_seqs
    engine.max_num_seqs = 2
    try:
        first, b, c, order = asyncio.run(scenario())
    finally:
        engine.max_num_seqs = saved
    assert first.prompt is not None
    assert order == ["c", "b"], "C got A's place and finished while B was still decoding"
    assert answer(b) == answer(b_alone) and answer(c) == answer(c_alone)


def test_waiting_requests_queue_beyond_max_num_seqs(engine):
    requests = [ask(q, max_new_tokens=8) for q in QUESTIONS[:4]]
    alone = [solo(engine, r) for r in requests]

    async def together():
        return await asyncio.gather(*(collect(engine, r) for r in requests))

    saved = engine.max_num_seqs
    engine.max_num_seqs = 2
    try:
        batched = asyncio.run(together())
    finally:
        engine.max_num_seqs = saved
    assert [answer(b) for b in batched] == [answer(a) for a in alone]


def test_engine_metrics_can_be_created_inside_a_replica(monkeypatch):
    """Serve adds its own tags to the dict a metric's default tags are given: each metric needs its own."""
    from types import SimpleNamespace

    from ray.serve import context

    from serve_app.engines.metrics import EngineMetrics

    fake = SimpleNamespace(deployment="llm", replica_tag="r1", app_name=LLM)
    monkeypatch.setattr(context, "_get_internal_replica_context", lambda: fake)
    metrics = EngineMetrics(LLM)
    metrics.batch_size.observe(2)
    metrics.queue_length.set(1)
    metrics.completion_tokens.inc(3)


def test_ignore_eos_generates_past_the_end_of_text_to_the_budget(engine):
    natural = solo(engine, ask(QUESTIONS[0], max_new_tokens=48))
    assert natural["finish"] == "stop" and natural["tokens"] < 48, "the question's answer ends on its own"
    forced = solo(engine, ask(QUESTIONS[0], max_new_tokens=48, ignore_eos=True))
    assert forced["finish"] == "length" and forced["tokens"] == 48
    assert forced["text"].startswith(natural["text"])


@pytest.mark.parametrize("edge", [{"temperature": 1e-300}, {"temperature": 5e-324}, {"temperature": 1.0, "top_p": 5e-324}],
                         ids=["temperature-1e-300", "temperature-5e-324", "top_p-5e-324"])
def test_edge_sampling_values_answer_and_leave_the_batch_alone(engine, batch_sizes, alone, edge):
    """Three ordinary requests and one at the edge of OpenAI's ranges in one batch: all four answer,
    the ordinary ones exactly as alone, and the edge one as greedy does (a tiny temperature is greedy,
    a tiny top_p keeps only the likeliest token)."""
    ordinary = [ask(q) for q in QUESTIONS[:3]]
    greedy = alone[3]

    async def together():
        batch_sizes.clear()
        return await asyncio.gather(*(collect(engine, r) for r in ordinary),
                                    collect(engine, ask(QUESTIONS[3], **{**edge, "seed": 7})))

    *batched, edged = asyncio.run(together())
    assert max(batch_sizes) == 4, "all four shared forward passes"
    assert [answer(b) for b in batched] == [answer(a) for a in alone[:3]]
    assert answer(edged) == answer(greedy)


def test_a_row_that_cannot_be_sampled_fails_alone(engine, batch_sizes, alone):
    """A row whose every token is biased to -inf has no distribution to draw from: it alone fails,
    with an error that says so, and the rows beside it answer exactly as alone."""
    ordinary = [ask(q) for q in QUESTIONS[:3]]
    vocab = engine.grammars.vocab_size
    broken = ask(QUESTIONS[3], temperature=1.0, logit_bias={t: float("-inf") for t in range(vocab)})

    async def together():
        batch_sizes.clear()
        return await asyncio.gather(*(collect(engine, r) for r in ordinary), collect(engine, broken),
                                    return_exceptions=True)

    *batched, failed = asyncio.run(together())
    assert max(batch_sizes) >= 3, "the ordinary rows shared forward passes"
    assert isinstance(failed, RuntimeError) and "not finite" in str(failed), failed
    assert [answer(b) for b in batched] == [answer(a) for a in alone[:3]]
    assert engine.scheduler.alive


def test_enable_thinking_false_is_what_a_model_without_the_switch_does_anyway(engine):
    """SmolLM2's template has no `enable_thinking` (#33): `false` answers exactly as no kwargs do,
    `true` is refused naming the key."""
    from serve_app.engines.base import InvalidPromptError

    plain = solo(engine, ask(QUESTIONS[0]))
    off = ask(QUESTIONS[0])
    off.chat_template_kwargs = {"enable_thinking": False}
    assert answer(solo(engine, off)) == answer(plain)
    on = ask(QUESTIONS[0])
    on.chat_template_kwargs = {"enable_thinking": True}
    with pytest.raises(InvalidPromptError, match="enable_thinking"):
        solo(engine, on)

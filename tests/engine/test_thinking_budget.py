"""Anthropic's `thinking.budget_tokens`, enforced (#33): a reasoning model thinks at most the
budget, then the engine writes the end tag itself and the answer follows. The engines emit
the raw text, tags included (deployments/llm.py splits the thinking off after)."""

from __future__ import annotations

import asyncio

from helpers import LLM_SOURCE

from serve_app.config.workers import LLMArgs
from serve_app.dialects.anthropic.protocol import MessagesRequest
from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams
from serve_app.engines.simulated.engine import SimulatedEngine

QUESTION = [ChatMessage(role="user", content="What is the capital of France?")]


def ask(**params) -> GenerationRequest:
    return GenerationRequest(messages=QUESTION, params=SamplingParams(temperature=0, **params))


def run(engine, request) -> list:
    async def collect():
        return [chunk async for chunk in engine.generate(request)]

    return asyncio.run(collect())


def text(chunks) -> str:
    return "".join(c.text for c in chunks)


def test_the_transformers_engine_closes_the_thinking_at_its_budget_and_the_answer_follows():
    from serve_app.engines.transformers.engine import TransformersEngine

    # deepseek_r1: the chat template has opened the think block, so all SmolLM2 writes is thinking
    # until an end tag, which SmolLM2 never writes by itself.
    engine = TransformersEngine(LLMArgs(source=LLM_SOURCE, reasoning_parser="deepseek_r1"))
    # ignore_eos: SmolLM2 answers this in 8 tokens; the runs go on to 24 so both have the same length.
    free = run(engine, ask(max_new_tokens=24, ignore_eos=True))
    assert "</think>" not in text(free) and free[-1].completion_tokens == 24
    capped = run(engine, ask(max_new_tokens=24, ignore_eos=True, thinking_budget=4))
    thinking, tag, answer = text(capped).partition("</think>")
    assert tag and answer.strip(), text(capped)
    # Greedy, the same prompt: the capped thinking is the free run's first 4 tokens, word for word.
    assert thinking == text(c for c in free if c.completion_tokens <= 4)
    assert capped[-1].completion_tokens == 24  # the tag and the answer spend the rest of max_tokens


def test_the_simulated_engine_thinks_at_most_its_budget():
    engine = SimulatedEngine(LLMArgs(source="simulated", engine="simulated", simulated_thinking_tokens=6,
                                     simulated_tokens_per_s=10_000))
    free = text(run(engine, ask(max_new_tokens=12)))
    capped = text(run(engine, ask(max_new_tokens=12, thinking_budget=2)))
    assert len(free.split("</think>")[0].split()) == 1 + 6  # "<think>" and six words
    assert len(capped.split("</think>")[0].split()) == 1 + 2
    assert capped.split("</think>")[1].strip()


def test_the_messages_api_hands_the_budget_to_the_engine_only_when_thinking_is_on():
    body = {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}
    on = MessagesRequest(**body, thinking={"type": "enabled", "budget_tokens": 2048})
    off = MessagesRequest(**body, thinking={"type": "disabled"})
    assert on.generation("s").params.thinking_budget == 2048
    assert off.generation("s").params.thinking_budget is None
    assert MessagesRequest(**body).generation("s").params.thinking_budget is None

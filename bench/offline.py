"""The ceilings: the same engines in-process, with no Serve, HTTP or other clients."""

from __future__ import annotations

import asyncio
import statistics
import time

import torch
from workload import EMBEDDER_SOURCE, LLM_SOURCE, NEW_TOKENS, QUESTIONS, TEXTS, VLLM_ARGS


def llm_ceiling(threads: int, engine_name: str = "transformers") -> dict:
    """One of our engines given all 16 prompts at once (one batch), and one prompt's TTFT.

    `threads` is torch's in this process; vLLM's engine core process picks its own.
    """
    from deployments.llm import load_engine
    from serve_app.config.workers import LLMArgs
    from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams

    torch.set_num_threads(threads)
    engine = load_engine(LLMArgs(source=LLM_SOURCE, num_threads=threads, **(VLLM_ARGS if engine_name == "vllm" else {})))

    def request(q: str, n: int = NEW_TOKENS) -> GenerationRequest:
        return GenerationRequest(messages=[ChatMessage(role="user", content=q)],
                                 params=SamplingParams(temperature=0, max_new_tokens=n))

    async def one(q: str, n: int = NEW_TOKENS) -> tuple[float, int]:
        started, first, tokens = time.perf_counter(), None, 0
        async for chunk in engine.generate(request(q, n)):
            if chunk.text and first is None:
                first = time.perf_counter() - started
            tokens = chunk.completion_tokens
        return first, tokens

    async def run() -> dict:
        await one(QUESTIONS[0], 4)  # warm-up
        ttfts = [(await one(q, 2))[0] for q in QUESTIONS[:5]]
        started = time.perf_counter()
        results = await asyncio.gather(*(one(q) for q in QUESTIONS))
        elapsed = time.perf_counter() - started
        tokens = sum(t for _, t in results)
        return {"threads": threads, "tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed,
                "ttft_p50_ms": 1000 * statistics.median(ttfts), "ttft_samples_ms": [1000 * t for t in ttfts]}

    try:
        return {**asyncio.run(run()), "engine": engine_name}
    finally:
        asyncio.run(engine.shutdown())  # vLLM's engine core process: gone before Serve starts


def text2vec_ceiling(threads: int, total: int) -> dict:
    """Batched encode of as many texts as the HTTP run sends, 64 at a time."""
    from sentence_transformers import SentenceTransformer

    from serve_app.replica.sources import local_dir

    torch.set_num_threads(threads)
    directory, _ = local_dir(EMBEDDER_SOURCE, "")
    model = SentenceTransformer(directory, device="cpu")
    texts = (TEXTS * (total // len(TEXTS) + 1))[:total]
    model.encode(texts[:64], batch_size=64)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=64)
    elapsed = time.perf_counter() - started
    return {"threads": threads, "texts": total, "seconds": elapsed, "texts_per_s": total / elapsed}

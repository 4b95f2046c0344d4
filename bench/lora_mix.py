"""LoRA adapters in mixed traffic on the transformers engine (#31's target: 8 adapters at
least 0.7 of the base alone's tok/s), in-process, in one run: 16 concurrent greedy requests
on the base alone, then the same 16 spread over 8 adapters (two each), built here with peft
on the default model. Also the time to load an adapter, and the first request's TTFT to an
adapter just loaded against the base's. Median of 3 rounds each:

    .venv/bin/python bench/lora_mix.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from adapters import make_adapter  # noqa: E402
from helpers import LLM_SOURCE, QUESTIONS  # noqa: E402

from serve_app.config.workers import LLMArgs  # noqa: E402
from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams  # noqa: E402

ADAPTERS, CLIENTS, TOKENS = 8, 16, 32


def request(i: int, adapter: str | None) -> GenerationRequest:
    return GenerationRequest(messages=[ChatMessage(role="user", content=QUESTIONS[i % len(QUESTIONS)])],
                             adapter=adapter, params=SamplingParams(temperature=0, max_new_tokens=TOKENS,
                                                                    ignore_eos=True))


async def one(engine, req: GenerationRequest) -> tuple[float, int]:
    started, first, tokens = time.perf_counter(), None, 0
    async for chunk in engine.generate(req):
        if chunk.text and first is None:
            first = time.perf_counter() - started
        tokens = chunk.completion_tokens
    return first, tokens


async def rate(engine, adapters: list[str | None]) -> float:
    started = time.perf_counter()
    done = await asyncio.gather(*(one(engine, request(i, adapters[i % len(adapters)])) for i in range(CLIENTS)))
    return sum(t for _, t in done) / (time.perf_counter() - started)


async def measure() -> dict:
    from serve_app.engines.transformers.engine import TransformersEngine

    engine = TransformersEngine(LLMArgs(source=LLM_SOURCE, max_num_seqs=CLIENTS))
    home = Path(tempfile.mkdtemp(prefix="lora-bench-"))
    paths = {f"a{i}": make_adapter(home / f"a{i}", seed=i) for i in range(ADAPTERS)}
    await one(engine, request(0, None))  # warm-up
    base_ttft = statistics.median([(await one(engine, request(i, None)))[0] for i in range(3)])
    loads, cold_ttft = [], []
    for name, path in paths.items():
        started = time.perf_counter()
        await engine.load_adapter(name, path)
        loads.append(time.perf_counter() - started)
        cold_ttft.append((await one(engine, request(0, name)))[0])
    base, mixed = [], []
    for _ in range(3):  # alternating, so that drift on the machine hits both alike
        base.append(await rate(engine, [None]))
        mixed.append(await rate(engine, list(paths)))
    await engine.shutdown()
    b, m = statistics.median(base), statistics.median(mixed)
    return {"adapters": ADAPTERS, "clients": CLIENTS, "tokens": TOKENS, "base_tokens_per_s": b,
            "mixed_tokens_per_s": m, "ratio": m / b, "load_ms_p50": 1000 * statistics.median(loads),
            "cold_adapter_ttft_ms_p50": 1000 * statistics.median(cold_ttft), "base_ttft_ms_p50": 1000 * base_ttft}


if __name__ == "__main__":
    r = asyncio.run(measure())
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {CLIENTS} clients x {TOKENS} tokens, median of 3")
    print(f"base alone: {r['base_tokens_per_s']:.1f} tok/s; over {ADAPTERS} adapters: {r['mixed_tokens_per_s']:.1f} "
          f"tok/s; ratio {r['ratio']:.2f} (target >= 0.7)")
    print(f"adapter load: median {r['load_ms_p50']:.0f} ms; first request's TTFT on a just-loaded adapter: median "
          f"{r['cold_adapter_ttft_ms_p50']:.0f} ms (base: {r['base_ttft_ms_p50']:.0f} ms)")

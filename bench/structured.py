"""The cost of structured output: a batch of free rows against the same batch with some
rows held to a JSON schema (their token masks are computed in the step loop, so a
constrained row's cost lands on every row of its batch).

Every row writes exactly `TOKENS` tokens: completions of a text that does not end soon,
and a schema whose one string must be longer than that, so all rows finish by length
and each mix does the same work but for the masks.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
from workload import LLM

ROWS = 8
TOKENS = 48
ROUNDS = 3
PROMPT = "Once upon a time, in a small village by the sea, there lived"
SCHEMA = {"type": "object", "properties": {"story": {"type": "string", "minLength": 1000, "maxLength": 2000}},
          "required": ["story"], "additionalProperties": False}


async def _row(http: httpx.AsyncClient, constrained: bool) -> int:
    body = {"model": LLM, "prompt": PROMPT, "max_tokens": TOKENS, "temperature": 0}
    if constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "story", "schema": SCHEMA}}
    r = await http.post("/v1/completions", json=body)
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]


async def _batch(base_url: str, constrained_rows: int) -> float:
    """Tokens per second of one batch of ROWS rows, `constrained_rows` of them under the schema."""
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as http:
        started = time.perf_counter()
        tokens = await asyncio.gather(*(_row(http, i < constrained_rows) for i in range(ROWS)))
        elapsed = time.perf_counter() - started
    assert all(t == TOKENS for t in tokens), f"every row writes {TOKENS} tokens, got {tokens}"
    return sum(tokens) / elapsed


def measure(base_url: str) -> dict:
    """Median tokens/s over ROUNDS batches of each mix, the mixes interleaved round by round."""
    mixes = {"all free": 0, "half constrained": ROWS // 2, "all constrained": ROWS}
    asyncio.run(_batch(base_url, ROWS))  # warm-up: the first schema compile and the grammar's caches
    samples: dict[str, list[float]] = {name: [] for name in mixes}
    for _ in range(ROUNDS):
        for name, constrained in mixes.items():
            samples[name].append(asyncio.run(_batch(base_url, constrained)))
    return {"rows": ROWS, "tokens": TOKENS, "rounds": ROUNDS,
            "tokens_per_s": {name: statistics.median(s) for name, s in samples.items()}}

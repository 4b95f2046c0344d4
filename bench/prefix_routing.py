"""Routing a conversation to the replica that holds its prefix (issue 25's routing rows).

Three copies of one simulated model, four replicas each, differing only in `routing`:
least_loaded (Serve's default), prefix_affinity and session. The simulated engine
keeps a prefix cache per replica and prefills the prompt tokens it lacks one prompt at
a time, at a GPU's pace (engines/simulated/prefix_cache.py): so a turn that reaches the replica
holding its conversation starts sooner. Two workloads, each against all three, in
one sitting:

- multi_turn: CLIENTS clients, each holding conversations of 4-8 turns; a turn's
  prompt is the whole conversation so far (a long system prompt, then each user turn
  and answer), as chat clients send it; X-Session-Id names the conversation.
- unique: the same number of requests of the same lengths, no two sharing a prefix,
  to show what affinity costs where it cannot help.

Per run: time to first token p50/p99 at the client, output tokens/s, and the share of
prompt tokens the replicas found cached (usage.prompt_tokens_details.cached_tokens).
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp
from load import percentile

ROUTINGS = ("least_loaded", "prefix_affinity", "session")
REPLICAS = 4
CLIENTS = 16
CONVERSATIONS_PER_CLIENT = 2
SYSTEM_WORDS, TURN_WORDS, ANSWER_TOKENS = 400, 60, 32
ENGINE = {"simulated_tokens_per_s": 50, "simulated_ttft_ms": 20, "simulated_prefill_ms_per_token": 1.0,
          "simulated_prefix_cache_tokens": 32768, "max_num_seqs": 64}


def app_name(routing: str) -> str:
    return f"routing-{routing.replace('_', '-')}"


def apps() -> list[dict]:
    from deployments.request_routers import ROUTERS

    return [{
        "name": app_name(routing), "route_prefix": None, "import_path": "deployments.llm:build_app",
        "args": {"source": "simulated", "engine": "simulated", **ENGINE},
        "deployments": [{"name": "llm", "num_replicas": REPLICAS, "max_ongoing_requests": 64,
                         "request_router_config": ROUTERS[routing], "ray_actor_options": {"num_cpus": 0.1}}],
    } for routing in ROUTINGS]


def words(tag: str, n: int) -> str:
    return " ".join(f"{tag}w{i}" for i in range(n))


def plans(seed: int = 25) -> list[list[int]]:
    """Per client, the turns of each of its conversations."""
    rng = random.Random(seed)
    return [[rng.randint(4, 8) for _ in range(CONVERSATIONS_PER_CLIENT)] for _ in range(CLIENTS)]


async def turn(http, base_url: str, model: str, messages: list[dict], session: str) -> dict:
    body = {"model": model, "messages": messages, "max_tokens": ANSWER_TOKENS, "stream": True,
            "stream_options": {"include_usage": True}}
    sent, first, text, usage, buf = time.perf_counter(), None, "", {}, b""
    async with http.post(base_url + "/v1/chat/completions", json=body, headers={"X-Session-Id": session}) as r:
        r.raise_for_status()
        async for data in r.content.iter_any():
            *frames, buf = (buf + data).split(b"\n\n")
            for frame in frames:
                if not frame.startswith(b"data: {"):
                    continue
                event = json.loads(frame[6:])
                delta = "".join((c.get("delta") or {}).get("content") or "" for c in event.get("choices", []))
                if delta and first is None:
                    first = time.perf_counter()
                text, usage = text + delta, event.get("usage") or usage
    return {"ttft_s": (first or time.perf_counter()) - sent, "text": text, "usage": usage}


async def client(http, base_url: str, model: str, workload: str, c: int, plan: list[int], tag: str) -> list[dict]:
    done = []
    for k, turns in enumerate(plan):
        conversation = f"{tag}-c{c}-{k}"
        messages = [{"role": "system", "content": f"{conversation} {words('sys', SYSTEM_WORDS)}"}]
        for t in range(turns):
            if workload == "unique":  # as long as this turn would be, but a new conversation each time
                messages = [{"role": "system", "content": f"{conversation}-t{t} {words('sys', SYSTEM_WORDS)}"},
                            *[{"role": "user", "content": words(f"u{t}{j}", TURN_WORDS + ANSWER_TOKENS)}
                              for j in range(t)]]
            messages.append({"role": "user", "content": f"turn {t} " + words(f"t{t}", TURN_WORDS)})
            answer = await turn(http, base_url, model, messages, f"{conversation}-t{t}" if workload == "unique"
                                else conversation)
            messages.append({"role": "assistant", "content": answer["text"]})
            done.append(answer)
    return done


async def run(base_url: str, routing: str, workload: str, tag: str) -> dict:
    connector = aiohttp.TCPConnector(limit=CLIENTS + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http:
        started = time.perf_counter()
        per_client = await asyncio.gather(*(client(http, base_url, app_name(routing), workload, c, plan, tag)
                                            for c, plan in enumerate(plans())))
        wall = time.perf_counter() - started
    answers = [a for done in per_client for a in done]
    ttft = [1000 * a["ttft_s"] for a in answers]
    prompt = sum(a["usage"].get("prompt_tokens", 0) for a in answers)
    cached = sum((a["usage"].get("prompt_tokens_details") or {}).get("cached_tokens", 0) for a in answers)
    completion = sum(a["usage"].get("completion_tokens", 0) for a in answers)
    return {"routing": routing, "workload": workload, "requests": len(answers), "seconds": wall,
            "ttft_ms": {"p50": percentile(ttft, 0.5), "p99": percentile(ttft, 0.99)},
            "output_tokens_per_s": completion / wall, "cached_share": cached / prompt if prompt else 0.0}


def measure(base_url: str, step) -> dict:
    """Both workloads against every routing, in one sitting; the routings take turns."""
    tag = f"r{int(time.time())}"
    for routing in ROUTINGS:  # warm each app's replicas and its router
        asyncio.run(turn_all_replicas(base_url, routing, tag))
    rows = []
    for workload in ("multi_turn", "unique"):
        for routing in ROUTINGS:
            row = asyncio.run(run(base_url, routing, workload, f"{tag}-{workload}"))
            rows.append(row)
            step(f"routing {routing} {workload}: TTFT p50 {row['ttft_ms']['p50']:.0f} ms, "
                 f"{row['output_tokens_per_s']:.0f} tok/s, {row['cached_share']:.0%} of prompt tokens cached")
    return {"replicas": REPLICAS, "clients": CLIENTS, "engine": ENGINE, "system_words": SYSTEM_WORDS,
            "turn_words": TURN_WORDS, "answer_tokens": ANSWER_TOKENS, "rows": rows}


async def turn_all_replicas(base_url: str, routing: str, tag: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(*(turn(http, base_url, app_name(routing),
                                    [{"role": "user", "content": f"warm {tag} {i}"}], f"warm-{i}")
                               for i in range(2 * REPLICAS)))


def section(r: dict) -> list[str]:
    """BENCHMARKS.md's rows for this run."""
    e = r["engine"]
    lines = ["## Routing by prefix: a conversation's turns to the replica holding its prefix", "",
             f"One simulated model three times over, {r['replicas']} replicas each, differing only in `routing`; "
             f"{r['clients']} clients at once, each holding conversations of 4-8 turns (a {r['system_words']}-word "
             f"system prompt, {r['turn_words']}-word user turns, {r['answer_tokens']}-token answers; X-Session-Id names "
             f"the conversation). The engine prefills {e['simulated_prefill_ms_per_token']} ms per prompt token not in "
             f"its replica's prefix cache ({e['simulated_prefix_cache_tokens']} tokens, LRU), one prompt at a time, and "
             f"decodes {e['simulated_tokens_per_s']:.0f} tok/s per stream. `unique`: as many requests of the same "
             "lengths, none sharing a prefix.", "",
             "| workload | routing | requests | TTFT p50 ms | TTFT p99 ms | output tok/s | prompt tokens cached |",
             "|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['workload']} | {row['routing']} | {row['requests']} | {row['ttft_ms']['p50']:.0f} | "
                     f"{row['ttft_ms']['p99']:.0f} | {row['output_tokens_per_s']:.0f} | {row['cached_share']:.0%} |")
    return lines + [""]


if __name__ == "__main__":  # alone, for a quick look: `python bench/prefix_routing.py` (no BENCHMARKS.md)
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parent)]
    import ray
    from cluster import deploy, free_port, step, wait_running
    from ray import serve

    started = time.perf_counter()
    ray.init(address="local", num_cpus=8, log_to_driver=False, include_dashboard=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    router = {"name": "router", "route_prefix": "/", "import_path": "serve_app.ingress.deployment:build_app"}
    deploy({"http_options": {"host": "127.0.0.1", "port": port}, "applications": [router, *apps()]})
    wait_running(serve, ["router", *map(app_name, ROUTINGS)], 300)
    print(json.dumps(measure(f"http://127.0.0.1:{port}", lambda s: step(s, started)), indent=1))
    serve.shutdown()

"""Overload: every request answered, fast 503s with Retry-After, no 500."""

import asyncio
import json
import os
import time

from helpers import CHAT, apply, start_simulated

OVERLOAD_BURSTS = int(os.environ.get("OVERLOAD_BURSTS", "1"))  # `make stress` sends more
USER = [{"role": "user", "content": "hi"}]
MODEL = "overloaded-sim"


def test_two_hundred_concurrent_requests_against_a_small_queue(client, base_url):
    import aiohttp

    # A simulated llm of its own (these limits would starve the other tests' models), at a
    # CPU model's pace: each request holds its place for about a third of a second.
    assert start_simulated(client, MODEL, max_ongoing_requests=4, max_queued_requests=16,
                           simulated_tokens_per_s=10)["success"]

    routes = [  # (path, body, the answer's last ModelOutput or OpenAI body from the raw bytes)
        (CHAT, {"model": MODEL, "messages": USER, "max_tokens": 4}, json.loads),
        ("/api/worker/generate", {"model": MODEL, "prompt": "Hi", "max_new_tokens": 4}, json.loads),
        ("/api/worker/generate_stream", {"model": MODEL, "prompt": "Hi", "max_new_tokens": 4},
         lambda raw: json.loads(raw.rstrip(b"\0").split(b"\0")[-1])),
    ]

    async def one(http, i):
        """(route, status, Retry-After, answer, seconds from sending to the whole answer)"""
        path, body, parse = routes[i % len(routes)]
        sent = time.monotonic()
        async with http.post(base_url + path, json=body) as r:
            answer = parse(await r.read())
            return path, r.status, r.headers.get("retry-after"), answer, time.monotonic() - sent

    async def burst():
        # aiohttp, not httpx: on 2 shared cores httpx's own cost for 200 concurrent
        # requests adds most of a second to every measured latency.
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            return await asyncio.gather(*(one(http, i) for i in range(200)))

    try:
        for _ in range(OVERLOAD_BURSTS):
            refusal_s, served_s = [], []
            for path, status, retry_after, answer, seconds in asyncio.run(burst()):
                assert status in (200, 503), (path, status, answer)
                message = answer["error"]["message"] if path == CHAT and status != 200 else answer.get("text")
                if status == 503:  # OpenAI's error shape, or DB-GPT's error ModelOutput
                    assert retry_after == "1" and "saturated" in message, (path, answer)
                    assert path == CHAT or answer["error_code"] == 1
                    refusal_s.append(seconds)
                else:
                    assert path == CHAT or answer["error_code"] == 0, (path, answer)
                    served_s.append(seconds)
            refusal_s.sort()
            served_s.sort()
            served = len(served_s)
            print(f"overload: {served} served, {len(refusal_s)} refused; seconds from sending to the refusal: "
                  f"p50={refusal_s[len(refusal_s) // 2]:.2f} max={refusal_s[-1]:.2f}")
            assert served >= 20 and len(refusal_s) >= 20, (served, len(refusal_s))
            # Every request came back (none hung), and a refused one is told at once, not after
            # waiting for a place: sooner than the requests served from the queue. (How soon in
            # seconds is the machine's: 1.5 s p50 for 200 at once on 2 busy cores.)
            assert refusal_s[-1] < served_s[-1], (refusal_s[-5:], served_s[-5:])
        assert client.post(CHAT, json={"model": MODEL, "messages": USER, "max_tokens": 2}).status_code == 200
    finally:
        assert apply(client, model=MODEL, apply_type="stop")["success"]

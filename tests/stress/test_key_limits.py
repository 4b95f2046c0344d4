"""Eight keys with different limits hammer two models through two ingress replicas, for a
bounded time (KEY_STRESS_SECONDS: 10 in `make test`, 60 in `make stress`): every key gets
what its limits allow, within one window, and no more; nothing answers 5xx."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import httpx
from helpers import apply, keyed_ingress, start_simulated

SECONDS = float(os.environ.get("KEY_STRESS_SECONDS", "10"))
ADMIN = "sk-test-key-stress-admin"
MODELS = ("stress-a", "stress-b")
# (requests per minute, tokens per minute): the first four limited by requests, the
# next two by tokens, the last two both ways.
LIMITS = [(12, None), (24, None), (36, None), (60, None), (None, 300), (None, 600), (30, 400), (48, 200)]
MAX_TOKENS = 8


def hammer(base_url: str, key: str, i: int, outcomes: Counter, tokens: list, stop: threading.Event) -> None:
    with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        n = 0
        while not stop.is_set():
            r = http.post("/v1/chat/completions", json={"model": MODELS[(i + n) % 2], "max_tokens": MAX_TOKENS,
                                                        "messages": [{"role": "user", "content": f"key {i} asks"}]})
            outcomes[r.status_code] += 1
            if r.status_code == 200:
                tokens.append(r.json()["usage"]["total_tokens"])
            elif r.status_code == 429:
                time.sleep(0.05)  # a polite client backs off a little; the limit holds either way
            n += 1


def test_eight_keys_get_what_their_limits_allow_and_no_more(serve_instance, base_url):
    with keyed_ingress(serve_instance, base_url, ADMIN) as admin:
        for name in MODELS:
            assert start_simulated(admin, name, simulated_tokens_per_s=200)["success"]
        try:
            keys = []
            for rpm, tpm in LIMITS:
                limits = {k: v for k, v in (("requests_per_minute", rpm), ("tokens_per_minute", tpm)) if v}
                r = admin.post("/api/keys", json={"limits": limits})
                keys.append((r.json()["key"], r.json()["id"]))
            outcomes = [Counter() for _ in keys]
            tokens = [[] for _ in keys]
            stop = threading.Event()
            threads = [threading.Thread(target=hammer, args=(base_url, key, i, outcomes[i], tokens[i], stop))
                       for i, (key, _) in enumerate(keys)]
            [t.start() for t in threads]
            time.sleep(SECONDS)
            stop.set()
            [t.join(timeout=60) for t in threads]
            assert not any(t.is_alive() for t in threads), "a request hung"
            windows = max(1, -(-SECONDS // 60))  # minutes the run touched
            for (rpm, tpm), seen, spent in zip(LIMITS, outcomes, tokens):
                served, used = seen[200], sum(spent)
                print(f"key rpm={rpm} tpm={tpm}: {dict(seen)}, {used} tokens")
                assert set(seen) <= {200, 429}, seen
                assert served >= 5, "every key was served"
                if rpm:  # never more than its limit
                    assert served <= rpm * windows, (rpm, seen)
                if tpm:  # tokens are counted as responses end: its limit, plus what was in flight
                    assert used <= tpm * windows + MAX_TOKENS * 2 + 40, (tpm, used)
                if seen[429]:  # refused only once a limit was reached: it got all its limits allow
                    assert (rpm and served >= rpm) or (tpm and used >= tpm), (rpm, tpm, seen, used)
            assert sum(1 for seen in outcomes if seen[429]) >= len(LIMITS) // 2, "the load went past most limits"
        finally:
            for name in MODELS:
                apply(admin, model=name, apply_type="stop")

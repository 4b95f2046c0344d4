"""Per-key governance over two ingress replicas: keys made through the admin routes, models
a key may call, limits that hold across replicas, revocation, usage, fallbacks, and eight keys
hammering their limits (`make stress` runs that one longer). All on a second router application
beside the default one (helpers.governed_router), deployed through the old import paths that
running clusters' configs still name."""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from collections import Counter

import httpx
import pytest
from helpers import (
    GOVERNED,
    apply,
    deployed_configs,
    governed_router,
    router_log_lines,
    smmf,
    start_simulated,
    wait_until,
)

from serve_app.governance.governor import FLUSH_S, KEYS
from serve_app.governance.keys import hash_key
from serve_app.kv import SqliteStore

ADMIN = "sk-test-governance-admin"
USER = [{"role": "user", "content": "hi"}]


# A model whose config names its request router by the old path (now deployments.request_routers).
LEGACY_MODEL = {"name": "legacy-routed-model", "route_prefix": None, "import_path": "deployments.llm:build_app",
                "args": {"source": "simulated", "engine": "simulated"},
                "deployments": [{"name": "llm", "ray_actor_options": {"num_cpus": 0.1},
                                 "request_router_config": {"request_router_class": "serve_app.routing:RandomRouter"}}]}


@pytest.fixture(scope="module")
def state_path(tmp_path_factory):
    return tmp_path_factory.mktemp(GOVERNED) / "state.db"


@pytest.fixture(scope="module")
def gov_url(base_url) -> str:
    return f"{base_url}/{GOVERNED}"


@pytest.fixture(scope="module")
def governed(serve_instance, base_url, state_path):
    """Two ingress replicas, an admin key in the config (its hash only), two simulated models."""
    with governed_router(serve_instance, base_url, ADMIN, state_path, more_apps=(LEGACY_MODEL,)) as admin:
        for name in ("gov-a", "gov-b"):
            assert start_simulated(admin, name)["success"]
        try:
            yield admin
        finally:
            for name in ("gov-a", "gov-b"):
                apply(admin, model=name, apply_type="stop")


def new_key(admin, **spec) -> tuple[str, str]:
    r = admin.post("/api/keys", json=spec)
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()["id"]


def as_key(gov_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=gov_url, timeout=60, headers={"Authorization": f"Bearer {key}"})


def chat(http, model: str, max_tokens: int = 4) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": model, "messages": USER, "max_tokens": max_tokens})


def test_a_key_limited_to_one_model_is_refused_the_other_and_does_not_see_it(governed, gov_url):
    key, _ = new_key(governed, models=["gov-a"])
    with as_key(gov_url, key) as http:
        assert chat(http, "gov-a").status_code == 200
        refused = chat(http, "gov-b")
        assert refused.status_code == 403 and "gov-b" in refused.json()["error"]["message"]
        worker = http.post("/api/worker/generate", json={"model": "gov-b", "prompt": "hi"})
        assert worker.status_code == 403 and worker.json()["error_code"] == 1 and "gov-b" in worker.json()["text"]
        assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["gov-a"]


def test_the_old_import_paths_deploy_and_serve_behind_a_route_prefix(governed, gov_url):
    """This module's router is deployed through `serve_app.router:build_app`, and LEGACY_MODEL
    names its request router as `serve_app.routing:RandomRouter`: both serve."""
    configs = deployed_configs()
    assert configs[GOVERNED]["import_path"] == "serve_app.router:build_app"
    assert configs[LEGACY_MODEL["name"]]["deployments"][0]["request_router_config"]["request_router_class"] \
        == "serve_app.routing:RandomRouter"
    assert httpx.get(f"{gov_url}/api/health").json() == {"status": "ok"}
    out = governed.post("/api/worker/generate", json={"model": LEGACY_MODEL["name"], "prompt": "hi",
                                                      "max_new_tokens": 3}).json()
    assert out["error_code"] == 0 and out["finish_reason"] == "length", out


def test_a_keys_models_and_limits_hold_for_an_adapter_by_its_own_name(governed, gov_url, tmp_path):
    """A LoRA adapter is a model to keys too (#31): a key for its base alone may not call it or
    see it, a key that names it may, within its own limits. (The simulated engine loads no
    weights: the files are not read.)"""
    (tmp_path / "gov-lora").mkdir()
    apply(governed, model="gov-a", apply_type="update_params",
          params={"lora_modules": {"gov-a-lora": str(tmp_path / "gov-lora")}})
    try:
        wait_until(lambda: "gov-a-lora" in [m["id"] for m in governed.get("/v1/models").json()["data"]], 30,
                   "the adapter in /v1/models")
        base_only, _ = new_key(governed, models=["gov-a"])
        adapter_too, _ = new_key(governed, models=["gov-a", "gov-a-lora"], limits={"requests_per_minute": 2})
        with as_key(gov_url, base_only) as http:
            refused = chat(http, "gov-a-lora")
            assert refused.status_code == 403 and "gov-a-lora" in refused.json()["error"]["message"], refused.text
            assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["gov-a"]
        with as_key(gov_url, adapter_too) as http:
            answers = [chat(http, "gov-a-lora") for _ in range(3)]  # every request counts, a listing too
            assert [r.status_code for r in answers] == [200, 200, 429], [r.text for r in answers]
            assert answers[0].json()["model"] == "gov-a-lora"
        with as_key(gov_url, new_key(governed, models=["gov-a", "gov-a-lora"])[0]) as http:
            assert {m["id"] for m in http.get("/v1/models").json()["data"]} == {"gov-a", "gov-a-lora"}
    finally:
        apply(governed, model="gov-a", apply_type="update_params", params={"lora_modules": {"gov-a-lora": None}})


def test_requests_per_minute_hold_across_two_ingress_replicas(governed, gov_url):
    key, key_id = new_key(governed, limits={"requests_per_minute": 6})
    with as_key(gov_url, key) as http:
        answers = [chat(http, "gov-a") for _ in range(12)]
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 6 and codes.count(429) == 6, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and refused.json()["error"]["type"] == "rate_limit_error"
    # Both replicas served this key: the count is one count, not one per replica.
    replicas = {line.split(f"{GOVERNED}_router ")[1].split()[0] for line in router_log_lines(GOVERNED)
                if f"key={key_id}" in line}
    assert len(replicas) == 2, replicas


def state_file(path) -> SqliteStore:
    """The second router's state store, the SQLite file its config names."""
    return SqliteStore(str(path))


def test_a_revoked_key_stops_within_a_second_everywhere(governed, gov_url, state_path):
    key, key_id = new_key(governed)
    assert KEYS + key_id in state_file(state_path).items("") and key not in str(state_file(state_path).items(""))
    with as_key(gov_url, key) as http:
        assert chat(http, "gov-a").status_code == 200
        assert governed.delete(f"/api/keys/{key_id}").status_code == 200
        assert KEYS + key_id not in state_file(state_path).items(""), "revoked: gone from the file too"
        revoked_at = time.monotonic()
        time.sleep(1.0)
        codes = [http.get("/v1/models").status_code for _ in range(10)]
    assert codes == [401] * 10, (codes, time.monotonic() - revoked_at)


def test_a_backup_brings_back_a_key_its_counts_and_a_model_started_through_the_api(governed, gov_url, tmp_path):
    """`smmf state export`, then the key revoked and the model stopped and forgotten, then
    `smmf state import`: all three are back (as a move from a laptop to a cluster would be)."""
    key, key_id = new_key(governed, name="backed-up", models=["gov-a"])
    assert chat(as_key(gov_url, key), "gov-a").status_code == 200
    assert start_simulated(governed, "backed-model")["success"]
    time.sleep(FLUSH_S + 1)  # the governor writes a key's tokens today every FLUSH_S seconds
    backup = tmp_path / "state.json"
    out = smmf(gov_url, "state", "export", str(backup), api_key=ADMIN)
    assert out.returncode == 0, out.stderr
    assert key not in backup.read_text() and hash_key(key) in backup.read_text(), "keys travel as hashes only"
    try:
        assert governed.delete(f"/api/keys/{key_id}").status_code == 200
        assert apply(governed, model="backed-model", apply_type="stop", delete_after=True)["success"]
        wait_until(lambda: chat(as_key(gov_url, key), "gov-a").status_code == 401, 30, "the key revoked")

        out = smmf(gov_url, "state", "import", str(backup), api_key=ADMIN)
        assert out.returncode == 0 and "models started: backed-model" in out.stdout, out.stdout + out.stderr
        wait_until(lambda: chat(as_key(gov_url, key), "gov-a").status_code == 200, 30, "the key back")
        wait_until(lambda: chat(governed, "backed-model").status_code == 200, 120, "the model back")
        assert governed.get(f"/api/keys/{key_id}").json()["usage"]["today"]["tokens"] > 0, "its counts too"
    finally:
        apply(governed, model="backed-model", apply_type="stop", delete_after=True)


def test_a_saturated_model_is_answered_by_its_fallback(governed, gov_url):
    assert start_simulated(governed, "gov-busy", max_ongoing_requests=1, max_queued_requests=1,
                           simulated_tokens_per_s=20, fallbacks=["gov-b"])["success"]
    answers = []
    # Six at once: one place running and one queue place per ingress replica's handle, at most
    # three on gov-busy; the rest find it saturated and go to its fallback.
    senders = [threading.Thread(target=lambda: answers.append(chat(governed, "gov-busy", max_tokens=40)))
               for _ in range(6)]
    try:
        [t.start() for t in senders]
        [t.join(timeout=60) for t in senders]
        assert [a.status_code for a in answers] == [200] * 6
        served_by = [a.headers["x-smmf-model"] for a in answers]
        assert served_by.count("gov-b") >= 3 and set(served_by) == {"gov-busy", "gov-b"}, served_by
        assert all(a.json()["model"] == a.headers["x-smmf-model"] for a in answers)
        assert chat(governed, "gov-busy").headers["x-smmf-model"] == "gov-busy", "no longer saturated"
    finally:
        apply(governed, model="gov-busy", apply_type="stop")


def queue_wait(answer: httpx.Response) -> float:
    """The seconds the request waited for a place in the model's replica (its Server-Timing)."""
    return float(re.search(r"queue;dur=([0-9.]+)", answer.headers["server-timing"]).group(1)) / 1000


def test_a_flooding_key_does_not_hold_up_another_keys_requests(governed, gov_url):
    """Requests from both ingress replicas meet in the model's replica, whose fair queue
    (serve_app/fairness/) takes a key that has had little service before one that floods: the
    light key waits for the next free place, not behind the flood's queue, and takes the place of
    the flood's newest waiting request when the band is full (which gets a 429)."""
    assert start_simulated(governed, "gov-fair", max_num_seqs=2, simulated_tokens_per_s=40,
                           queue={"standard": {"max_queue": 4}})["success"]
    flood_key, _ = new_key(governed, name="flood")
    light_key, _ = new_key(governed, name="light")
    stop, codes, flood_waits, light_waits = threading.Event(), Counter(), [], []

    def flood():
        with as_key(gov_url, flood_key) as http:
            while not stop.is_set():
                r = chat(http, "gov-fair", max_tokens=40)  # a place for 1 s
                codes[r.status_code] += 1
                if r.status_code == 200:
                    flood_waits.append(queue_wait(r))
                else:
                    time.sleep(0.05)

    senders = [threading.Thread(target=flood) for _ in range(8)]  # 2 run, 4 wait, 2 are refused and retry
    try:
        [t.start() for t in senders]
        time.sleep(2.5)
        with as_key(gov_url, light_key) as http:
            for _ in range(4):
                r = chat(http, "gov-fair")
                assert r.status_code == 200, r.text
                light_waits.append(queue_wait(r))
    finally:
        stop.set()
        [t.join(timeout=60) for t in senders]
        apply(governed, model="gov-fair", apply_type="stop")
    assert set(codes) <= {200, 429, 503} and codes[429] >= 1, codes
    # First come first served, each would wait behind the 4 waiting, as the flood's requests do
    # (about 2 s here). Compared with the flood's wait, not a number of seconds: on a loaded machine
    # the simulated answers run slower, and so does the wait for the next free place (1.54 s once).
    assert max(light_waits) < statistics.median(flood_waits), (light_waits, sorted(flood_waits))
    assert statistics.median(light_waits) < statistics.median(flood_waits) / 2, (light_waits, sorted(flood_waits))


# --- eight keys at their limits -----------------------------------------------------------------

KEY_STRESS_SECONDS = float(os.environ.get("KEY_STRESS_SECONDS", "10"))
STRESS_MODELS = ("stress-a", "stress-b")
# (requests per minute, tokens per minute): the first four limited by requests, the
# next two by tokens, the last two both ways. A request here is about 13 tokens. Low enough
# that a loaded machine reaches them in 10 s: with limits up to 60 requests, a run beside
# a pip install got 22-25 answers per key, and only 2 of the 8 keys were ever refused.
STRESS_LIMITS = [(6, None), (10, None), (15, None), (20, None), (None, 120), (None, 200), (12, 200), (20, 100)]
STRESS_MAX_TOKENS = 8


def hammer_key(gov_url: str, key: str, i: int, outcomes: Counter, tokens: list, stop: threading.Event) -> None:
    with httpx.Client(base_url=gov_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        n = 0
        while not stop.is_set():
            r = http.post("/v1/chat/completions", json={
                "model": STRESS_MODELS[(i + n) % 2], "max_tokens": STRESS_MAX_TOKENS,
                "messages": [{"role": "user", "content": f"key {i} asks"}]})
            outcomes[r.status_code] += 1
            if r.status_code == 200:
                tokens.append(r.json()["usage"]["total_tokens"])
            elif r.status_code == 429:
                time.sleep(0.25)  # a polite client backs off (our 429 says Retry-After); the limit holds either way
            n += 1


def test_eight_keys_get_what_their_limits_allow_and_no_more(governed, gov_url):
    """Eight keys with different limits hammer two models through the two ingress replicas for a
    bounded time (KEY_STRESS_SECONDS: 10 in `make test`, 60 in `make stress`): every key gets what
    its limits allow, within one window, and no more; nothing answers 5xx. It shares this module's
    second router (deploying one costs about 20 s)."""
    admin = governed
    for name in STRESS_MODELS:
        assert start_simulated(admin, name, simulated_tokens_per_s=200)["success"]
    try:
        keys = []
        for rpm, tpm in STRESS_LIMITS:
            limits = {k: v for k, v in (("requests_per_minute", rpm), ("tokens_per_minute", tpm)) if v}
            r = admin.post("/api/keys", json={"limits": limits})
            keys.append((r.json()["key"], r.json()["id"]))
        outcomes = [Counter() for _ in keys]
        tokens = [[] for _ in keys]
        stop = threading.Event()
        threads = [threading.Thread(target=hammer_key, args=(gov_url, key, i, outcomes[i], tokens[i], stop))
                   for i, (key, _) in enumerate(keys)]
        began = time.monotonic()
        [t.start() for t in threads]
        time.sleep(KEY_STRESS_SECONDS)
        def far_enough() -> bool:  # what the asserts below need the load to have reached
            return (sum(1 for seen in outcomes if seen[429]) >= len(STRESS_LIMITS) // 2
                    and all(seen[200] >= 5 for seen in outcomes))

        # On a slow day the load may not get that far in KEY_STRESS_SECONDS (`make test` of
        # 2026-12-07, load average 39: the key allowed 6 a minute had 4 answers in 10 s): it goes on
        # until it has, within the minute that the limits below are checked against.
        while not far_enough() and time.monotonic() - began < 50:
            time.sleep(0.5)
        stop.set()
        [t.join(timeout=60) for t in threads]
        assert not any(t.is_alive() for t in threads), "a request hung"
        windows = max(1, -(-int(time.monotonic() - began) // 60))  # minutes the run touched
        for (rpm, tpm), seen, spent in zip(STRESS_LIMITS, outcomes, tokens):
            served, used = seen[200], sum(spent)
            print(f"key rpm={rpm} tpm={tpm}: {dict(seen)}, {used} tokens")
            assert set(seen) <= {200, 429}, seen
            assert served >= 5, "every key was served"
            if rpm:  # never more than its limit
                assert served <= rpm * windows, (rpm, seen)
            if tpm:  # tokens are counted as responses end: its limit, plus what was in flight
                assert used <= tpm * windows + STRESS_MAX_TOKENS * 2 + 40, (tpm, used)
            if seen[429]:  # refused only once a limit was reached: it got all its limits allow
                assert (rpm and served >= rpm) or (tpm and used >= tpm), (rpm, tpm, seen, used)
        assert sum(1 for seen in outcomes if seen[429]) >= len(STRESS_LIMITS) // 2, "the load went past most limits"
    finally:
        for name in STRESS_MODELS:
            apply(admin, model=name, apply_type="stop")

"""A full model's queue through the ingress (serve_app/fairness/, deployments/llm.py): a key's
band and vLLM's `priority` decide who runs next, and a full band refuses with 429 the key that
holds more than its share and with 503 the one that does not. The model here has one place
(`QUEUED`); the order across keys is tests/unit/test_fair_queue.py's, across replicas
tests/served/test_fairness.py's."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from inprocess.local import QUEUED

from serve_app.config.keys import ApiKey
from serve_app.governance.keys import hash_key, record_of

KEYS = {name: f"sk-test-{name}" for name in ("ops", "nightly", "app", "chat")}
RECORDS = [record_of(ApiKey(key_sha256=hash_key(KEYS["ops"]), id="ops", scope="admin")),
           record_of(ApiKey(key=KEYS["nightly"], id="nightly", band="batch")),
           record_of(ApiKey(key=KEYS["app"], id="app")),
           record_of(ApiKey(key=KEYS["chat"], id="chat", band="interactive"))]


@pytest.fixture
def keyed(state):
    with state(keys=RECORDS):
        yield


def ask(client, key: str, tokens: int = 20, **extra):
    return client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {KEYS[key]}"}, json={
        "model": QUEUED, "max_tokens": tokens, "messages": [{"role": "user", "content": "hi"}], **extra})


def in_order(client, sends: list[tuple[str, dict]]) -> list[str]:
    """Each (key, fields) sent 0.12 s after the one before, the first holding the place for 1.2 s (so
    all are queued behind it, one after another); the labels in the order their answers ended."""
    ended, lock = [], threading.Lock()

    def one(i, key, extra):
        time.sleep(0.12 * i)
        r = ask(client, key, **({"tokens": 240} if i == 0 else {}), **extra)
        assert r.status_code == 200, r.text
        with lock:
            ended.append(f"{key}{i}")

    with ThreadPoolExecutor(len(sends)) as pool:
        for f in [pool.submit(one, i, key, extra) for i, (key, extra) in enumerate(sends)]:
            f.result()
    return ended


def test_a_higher_bands_request_runs_before_those_of_a_lower_band_that_came_first(client, keyed):
    # One place at 200 tokens/s: each later answer holds it 0.1 s.
    ended = in_order(client, [("nightly", {}), ("nightly", {}), ("nightly", {}), ("app", {}), ("chat", {})])
    assert ended[0] == "nightly0", ended  # it had the place when the others came
    assert ended[1:3] == ["chat4", "app3"], f"interactive, then standard, then batch: {ended}"


def test_vllms_priority_lowers_a_request_below_its_keys_band(client, keyed):
    ended = in_order(client, [("app", {}), ("app", {"priority": 1}), ("app", {"priority": 1}), ("app", {})])
    assert ended[:2] == ["app0", "app3"], f"priority 1 put two of them in the batch band: {ended}"
    raised = in_order(client, [("nightly", {}), ("nightly", {"priority": -10}), ("app", {})])
    assert raised[:2] == ["nightly0", "app2"], f"a negative priority does not raise a key's band: {raised}"


def test_a_full_band_refuses_with_503_when_the_model_is_full_and_429_the_key_over_its_share(client, keyed):
    with ThreadPoolExecutor(5) as pool:
        held = [pool.submit(ask, client, "app", 240)]  # the place, for 1.2 s
        time.sleep(0.2)
        held += [pool.submit(ask, client, "app", 4) for _ in range(3)]  # the standard band's 3 waiting
        time.sleep(0.3)
        alone = ask(client, "app", 4)  # the only key here: the model is full, not the key greedy
        # Interactive lowered to standard, the same full band: under its share, it takes the place
        # of app's newest waiting request, which gets the 429.
        other = pool.submit(ask, client, "chat", 4, priority=1)
        time.sleep(0.2)
        over = ask(client, "app", 4)  # app holds 4 of the 5 requests here, over its half
        statuses = sorted(f.result().status_code for f in held)
        assert other.result().status_code == 200, other.result().text
    assert alone.status_code == 503 and alone.headers["retry-after"] == "1", alone.text
    assert "saturated" in alone.json()["error"]["message"] and "(standard)" in alone.json()["error"]["message"]
    assert statuses == [200, 200, 200, 429], "one of app's waiting requests made room for chat's"
    assert over.status_code == 429 and over.headers["retry-after"] == "2", over.text
    assert over.json()["error"]["type"] == "rate_limit_error" and "more than its share" in over.json()["error"]["message"]
    assert ask(client, "chat", 4).status_code == 200, "the queue is whole again once they ended"


def test_a_key_made_through_the_api_carries_its_band_and_weight(client, keyed):
    made = client.post("/api/keys", headers={"Authorization": f"Bearer {KEYS['ops']}"},
                       json={"name": "etl", "band": "batch", "weight": 0.5})
    assert made.status_code == 201, made.text
    assert (made.json()["band"], made.json()["weight"]) == ("batch", 0.5)
    refused = client.post("/api/keys", headers={"Authorization": f"Bearer {KEYS['ops']}"}, json={"band": "urgent"})
    assert refused.status_code == 422 and "band" in refused.text  # the management routes' validation status
    client.delete(f"/api/keys/{made.json()['id']}", headers={"Authorization": f"Bearer {KEYS['ops']}"})


def test_a_keys_usage_shows_its_share_of_each_model_it_used(client, keyed):
    for key, tokens in [("app", 30), ("chat", 10), ("app", 30)]:
        assert ask(client, key, tokens).status_code == 200
    time.sleep(0.6)  # a key without limits sends its counts every quarter second
    usage = client.get("/api/keys/app/usage", headers={"Authorization": f"Bearer {KEYS['ops']}"})
    assert usage.status_code == 200, usage.text
    report = usage.json()
    assert (report["id"], report["band"], report["weight"]) == ("app", "standard", 1.0)
    model = report["models"][QUEUED]
    minute = model["last_minute"]
    assert minute["tokens"] >= 60 + 2 * 3 and minute["all_keys_tokens"] >= minute["tokens"] + 10
    assert minute["share"] == pytest.approx(minute["tokens"] / minute["all_keys_tokens"], abs=1e-3)
    assert client.get("/api/keys/nobody/usage", headers={"Authorization": f"Bearer {KEYS['ops']}"}).status_code == 404


def test_a_batchs_lines_run_in_the_batch_band_whatever_their_keys_band(sdk, caplog):
    import logging

    from helpers import batch_finished

    logging.getLogger("ray.serve").addHandler(caplog.handler)  # the replica's own log (Ray's logger does not propagate)
    try:
        upload = sdk.files.create(file=("lines.jsonl", (json.dumps({
            "custom_id": "line", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": QUEUED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}}) + "\n").encode()),
            purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert batch_finished(sdk, batch.id).request_counts.completed == 1
        sdk.chat.completions.create(model=QUEUED, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                    extra_body={"priority": 1})
    finally:
        logging.getLogger("ray.serve").removeHandler(caplog.handler)
    bands = [r.getMessage().split("generate (")[1].split(",")[0] for r in caplog.records if "generate (" in r.getMessage()]
    assert bands == ["batch", "batch"], bands  # the line's (its key: standard), then a chat lowered by priority 1


def test_a_batch_line_refused_by_a_full_queue_is_tried_again_and_answered(sdk, client, caplog):
    import logging

    from helpers import batch_finished, batch_rows

    logging.getLogger("ray.serve").addHandler(caplog.handler)
    try:
        with ThreadPoolExecutor(4) as pool:
            no_key = {"Authorization": "Bearer none"}
            body = {"model": QUEUED, "messages": [{"role": "user", "content": "hi"}]}
            held = [pool.submit(client.post, "/v1/chat/completions", json={**body, "max_tokens": 240}, headers=no_key)]
            time.sleep(0.2)  # the place, for 1.2 s; then the batch band's 3 places, by chats lowered to it
            held += [pool.submit(client.post, "/v1/chat/completions", json={**body, "max_tokens": 2, "priority": 1},
                                 headers=no_key) for _ in range(3)]
            time.sleep(0.2)
            line = {"custom_id": "late", "method": "POST", "url": "/v1/chat/completions",
                    "body": {**body, "max_tokens": 2}}
            upload = sdk.files.create(file=("late.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch")
            batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")
            done = batch_finished(sdk, batch.id)
            assert [f.result().status_code for f in held] == [200] * 4
    finally:
        logging.getLogger("ray.serve").removeHandler(caplog.handler)
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 0), done.request_counts
    [row] = batch_rows(sdk, done.output_file_id)
    assert (row["custom_id"], row["response"]["status_code"]) == ("late", 200)
    refused = [r.getMessage() for r in caplog.records if f"model={QUEUED} status=503" in r.getMessage()]
    assert refused, "the line was first refused (the batch band was full), then tried again"

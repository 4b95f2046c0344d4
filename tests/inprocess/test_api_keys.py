"""API keys in-process: scopes, keys made through `/api/keys`, models a key may call, its
limits and usage, revocation, and the access log. One ingress and one governor here;
limits across two ingress replicas are tests/served/test_governance.py's."""

import logging
import time

import pytest
from fastapi.testclient import TestClient
from inprocess.local import EMBEDDER, LLM

from serve_app.config.keys import ApiKey
from serve_app.governance.keys import hash_key, record_of

ADMIN, INFERENCE = "sk-test-admin", "sk-test-inference"
KEYS = [record_of(ApiKey(key=INFERENCE, scope="inference")), record_of(ApiKey(key_sha256=hash_key(ADMIN), id="ops",
                                                                            scope="admin"))]
USER = [{"role": "user", "content": "hi"}]


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(state):
    with state(keys=KEYS):
        yield


def chat(client, key: str, model: str = LLM, max_tokens: int = 4):
    return client.post("/v1/chat/completions", json={"model": model, "messages": USER, "max_tokens": max_tokens},
                       headers=bearer(key))


def new_key(client, **spec) -> tuple[str, str]:
    r = client.post("/api/keys", json=spec, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()["id"]


def test_without_a_key_every_route_but_health_is_401_in_its_dialect(client, keyed):
    generate = {"model": LLM, "prompt": "Hi", "max_new_tokens": 2}
    r = client.post("/v1/chat/completions", json={"model": LLM, "messages": USER})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = client.post("/api/worker/generate", json=generate)
    assert r.status_code == 401 and r.json()["error_code"] == 1 and "API key" in r.json()["text"]
    r = client.post("/api/worker/generate", json=generate, headers=bearer("sk-wrong"))
    assert r.status_code == 401
    r = client.get("/api/worker/models/supports")
    assert r.status_code == 401 and "API key" in r.json()["detail"]
    assert client.get("/v1/models").status_code == 401
    assert client.get("/api/health").status_code == 200
    assert INFERENCE not in r.text and ADMIN not in r.text


def test_under_a_route_prefix_health_is_open_and_admin_routes_need_an_admin_key(app, keyed):
    """Serve mounts the router under its route_prefix as the ASGI root_path and keeps the prefix
    in the path (tests/served/test_governance.py runs a router so): the key checks read the path
    the routes match, not the one with the prefix."""
    prefixed = TestClient(app, base_url="http://127.0.0.1", root_path="/governed")  # no `with`: one lifespan
    assert prefixed.get("/governed/api/health").status_code == 200
    assert prefixed.get("/governed/v1/models").status_code == 401
    refused = prefixed.post("/governed/api/keys", json={}, headers=bearer(INFERENCE))
    assert refused.status_code == 403 and "admin key" in refused.text, refused.text
    assert prefixed.post("/governed/api/worker/models/shutdown", json={"model": LLM, "worker_type": "llm"},
                         headers=bearer(INFERENCE)).status_code == 403
    assert prefixed.get("/governed/v1/models", headers=bearer(INFERENCE)).status_code == 200


def test_an_inference_key_calls_models_and_an_admin_key_manages_them(client, keyed):
    out = client.post("/api/worker/generate", json={"model": LLM, "prompt": "Hi", "max_new_tokens": 2},
                      headers=bearer(INFERENCE)).json()
    assert out["error_code"] == 0, out
    assert client.get("/v1/models", headers=bearer(INFERENCE)).status_code == 200
    r = client.post("/api/worker/apply", json={}, headers=bearer(INFERENCE))
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert client.get("/api/keys", headers=bearer(INFERENCE)).status_code == 403
    assert client.get("/api/keys", headers=bearer(ADMIN)).status_code == 200


def test_a_key_is_shown_once_and_listed_by_id_only(client, keyed):
    key, key_id = new_key(client, name="team-a")
    assert key.startswith("sk-smmf-")
    listed = client.get("/api/keys", headers=bearer(ADMIN)).json()
    assert key_id in {k["id"] for k in listed} and "ops" in {k["id"] for k in listed}
    assert key not in str(listed) and hash_key(key) not in str(listed), "never the key, nor its hash"
    r = client.delete("/api/keys/ops", headers=bearer(ADMIN))
    assert r.status_code == 409 and "operator" in r.json()["detail"], "the operator's keys are not revocable here"
    assert client.delete("/api/keys/key-nope", headers=bearer(ADMIN)).status_code == 404


def test_a_key_limited_to_one_model_is_refused_the_other_and_does_not_see_it(client, keyed):
    key, _ = new_key(client, models=[LLM])
    assert chat(client, key).status_code == 200
    refused = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": "x"}, headers=bearer(key))
    assert refused.status_code == 403 and EMBEDDER in refused.json()["error"]["message"]
    worker = client.post("/api/worker/embeddings", json={"model": EMBEDDER, "input": ["x"]}, headers=bearer(key))
    assert worker.status_code == 403
    assert [m["id"] for m in client.get("/v1/models", headers=bearer(key)).json()["data"]] == [LLM]


def test_count_token_without_a_model_counts_with_the_llms_the_key_may_call(client, keyed):
    # DB-GPT's RemoteModelWorker sends no model; several llms run here (sim-llm, sim-short, ...).
    prompt = {"prompt": "one two three four five"}
    assert client.post("/api/worker/count_token", json=prompt, headers=bearer(INFERENCE)).json() == 5
    key, _ = new_key(client, models=[EMBEDDER])
    refused = client.post("/api/worker/count_token", json=prompt, headers=bearer(key))
    assert refused.status_code == 400 and "no llm model this key may call" in refused.json()["detail"]


def test_tokens_per_minute_refuse_once_counted(client, keyed):
    key, _ = new_key(client, limits={"tokens_per_minute": 50})
    codes = []
    for _ in range(4):
        codes.append(chat(client, key, max_tokens=30).status_code)
        time.sleep(0.1)  # the tokens are counted as each response ends
    worker = client.post("/api/worker/generate", json={"model": LLM, "prompt": "hi"}, headers=bearer(key))
    assert codes[:2] == [200, 200] and 429 in codes[2:], codes
    assert worker.status_code == 429 and worker.json()["error_code"] == 1 and "tokens per minute" in worker.json()["text"]
    assert int(worker.headers["retry-after"]) >= 1


def test_a_revoked_key_stops_at_once(client, keyed):
    key, key_id = new_key(client)
    assert chat(client, key).status_code == 200
    assert client.delete(f"/api/keys/{key_id}", headers=bearer(ADMIN)).json() == {"id": key_id, "revoked": True}
    assert chat(client, key).status_code == 401


def test_a_keys_usage_report_matches_what_the_responses_reported(client, keyed):
    key, key_id = new_key(client)
    usages = [chat(client, key, max_tokens=n).json()["usage"] for n in (3, 5, 8)]
    embedded = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["a", "b c"]}, headers=bearer(key)).json()
    deadline = time.monotonic() + 5
    while (usage := client.get(f"/api/keys/{key_id}", headers=bearer(ADMIN)).json()["usage"])["requests"] < 4:
        assert time.monotonic() < deadline, usage
        time.sleep(0.05)  # counts arrive as responses end
    assert usage["requests"] == 4
    assert usage["completion_tokens"] == sum(u["completion_tokens"] for u in usages) == 16
    assert usage["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages) + embedded["usage"]["prompt_tokens"]


def test_the_access_log_has_one_line_per_request_and_no_prompt(client, caplog):
    secret = "purple-elephant-prompt-text"
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        r = client.post("/api/worker/generate", json={"model": LLM, "prompt": secret, "max_new_tokens": 2,
                                                       "span_id": "span-access-1"})
    assert r.status_code == 200
    lines = [m for m in caplog.messages if m.startswith("access route=POST /api/worker/generate")]
    assert len(lines) == 1, lines
    assert f"model={LLM}" in lines[0] and "status=200" in lines[0] and "latency_ms=" in lines[0]
    assert "tokens=3" in lines[0] and "span_id=span-access-1" in lines[0]
    assert not any(secret in m for m in caplog.messages), "prompt text stays out of the logs"


def test_a_limited_key_asks_the_governor_per_lease_not_per_request_and_gets_its_limit_exactly(client, keyed, app):
    key, _ = new_key(client, limits={"requests_per_minute": 40})
    governor, asked = app.state.governor, []

    class Counted:  # the governor's own lease method, its calls counted
        def __init__(self, method):
            self.method = method

        def remote(self, *args):
            asked.append(args)
            return self.method.remote(*args)

    governor.lease = Counted(governor.lease)
    codes = [client.get("/v1/models", headers=bearer(key)).status_code for _ in range(50)]
    assert codes == [200] * 40 + [429] * 10, codes
    # Leases of 20, 10, 5, 2, 1, 1, 1 (halved as the key nears its limit), then one call per refusal.
    assert len(asked) - 10 < 40 / 3, f"{len(asked)} governor calls for 40 admitted requests"


def test_without_keys_nobody_can_create_one_and_lock_everyone_out(client):
    """Keys off (none configured): an anonymous key creation is refused with the fix named, and the
    server stays open exactly as before. Before #39 it answered 201 and every route then wanted a key."""
    r = client.post("/api/keys", json={"name": "x", "scope": "inference"})
    assert r.status_code == 403, r.text
    assert "SMMF_API_KEYS" in r.json()["detail"] and "admin" in r.json()["detail"]
    assert client.delete("/api/keys/key-anything").status_code == 403
    assert client.get("/api/keys").json() == [], "nothing was created"
    assert chat(client, "").status_code == 200, "every route answers without a key, as before"
    assert client.post("/api/worker/apply", json={}).status_code != 401


def test_the_last_admin_key_cannot_be_revoked_while_other_keys_remain():
    """An admin key made through the API, where the operator configured only an inference key: revoking
    it would leave keys on and nobody able to manage them."""
    import asyncio

    from serve_app.config.keys import KeySpec
    from serve_app.errors import AuthError, Conflict
    from serve_app.governance.governor import Governor
    from serve_app.kv import MemoryStore

    async def scenario():
        alone = Governor.func_or_class([KEYS[0]], store=MemoryStore())
        with pytest.raises(AuthError, match="admin key"):
            await alone.create(KeySpec(name="x"))
        governor = Governor.func_or_class(list(KEYS), store=MemoryStore())
        admin, _ = await governor.create(KeySpec(name="delegate", scope="admin"))
        other, _ = await governor.create(KeySpec(name="app"))
        governor.configured.pop("ops")  # the operator's admin key taken out of the config
        with pytest.raises(Conflict, match="last admin key"):
            await governor.revoke(admin.id)
        await governor.revoke(other.id)
        return {r["id"] for r in await governor.report()}

    assert asyncio.run(scenario()) >= {KEYS[0].id}


DOCS = ["/docs", "/redoc", "/openapi.json"]


@pytest.mark.parametrize("path", DOCS)
def test_the_docs_and_the_schema_need_a_key_when_keys_are_on(client, keyed, path):
    """Before #33 they answered 200 to anyone: the schema names every route and field."""
    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer("sk-wrong")).status_code == 401
    opened = client.get(path, headers=bearer(INFERENCE))
    assert opened.status_code == 200
    if path == "/openapi.json":
        assert "/v1/chat/completions" in opened.json()["paths"] and not set(DOCS) & set(opened.json()["paths"])


@pytest.mark.parametrize("path", DOCS)
def test_the_operator_may_open_the_docs_and_without_keys_they_are_open(client, state, path):
    assert client.get(path).status_code == 200  # keys off: every route is open
    with state(keys=KEYS, open_docs=True):
        assert client.get(path).status_code == 200
        assert client.post("/v1/chat/completions", json={"model": LLM, "messages": USER}).status_code == 401

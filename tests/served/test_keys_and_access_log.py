"""API keys with scopes, and the access log: what KeysAndAccessLog (serve_app/http.py) does."""

import time

import httpx

from helpers import LLM, deploy, router_log_lines


def _router_with(serve_instance, router_args):
    apps = [
        {**a, "args": {**a.get("args", {}), **router_args}} if a["name"] == "router" else a
        for a in serve_instance["applications"]
    ]
    deploy({**serve_instance, "applications": apps})


def _wait_until(predicate, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.5)


def test_api_keys_and_scopes(serve_instance, base_url):
    keys = [{"key": "sk-test-inference", "scope": "inference"}, {"key": "sk-test-admin", "scope": "admin"}]
    _router_with(serve_instance, {"api_keys": keys})
    body = {"model": LLM, "prompt": "Hi", "max_new_tokens": 2}
    try:
        with httpx.Client(base_url=base_url, timeout=60) as c:
            _wait_until(lambda: c.post("/api/worker/generate", json=body).status_code == 401)
            for path, payload in [
                ("/api/worker/generate", body),
                ("/v1/chat/completions", {"model": LLM, "messages": [{"role": "user", "content": "hi"}]}),
                ("/api/v1/beta/relevance", {"model": "x", "query": "q", "documents": ["d"]}),
            ]:
                r = c.post(path, json=payload)
                assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
                r = c.post(path, json=payload, headers={"Authorization": "Bearer sk-wrong"})
                assert r.status_code == 401
            assert c.get("/v1/models").status_code == 401
            assert c.get("/api/worker/models/supports").status_code == 401

            inference = {"Authorization": "Bearer sk-test-inference"}
            out = c.post("/api/worker/generate", json=body, headers=inference).json()
            assert out.get("error_code") == 0, out
            assert c.get("/v1/models", headers=inference).status_code == 200
            # Routes that change which models run need an admin key.
            r = c.post("/api/worker/apply", json={}, headers=inference)
            assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
            r = c.post("/api/worker/apply", json={}, headers={"Authorization": "Bearer sk-test-admin"})
            assert r.status_code != 403 and r.status_code != 401
            # Keys never leak into errors.
            assert "sk-test" not in c.post("/api/worker/generate", json=body).text
    finally:
        _router_with(serve_instance, {})
        with httpx.Client(base_url=base_url, timeout=60) as c:
            _wait_until(lambda: c.post("/api/worker/generate", json=body).status_code == 200)


# --- the access log ---------------------------------------------------------------

def test_access_log_has_one_line_per_request_and_no_prompt(client):
    secret = "purple-elephant-prompt-text"
    r = client.post("/api/worker/generate", json={"model": LLM, "prompt": secret, "max_new_tokens": 2, "span_id": "span-access-1"})
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        text = router_log_lines()
        lines = [l for l in text if "access route=POST /api/worker/generate" in l and "span-access-1" in l]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(lines) == 1, lines
    assert f"model={LLM}" in lines[0] and "status=200" in lines[0] and "latency_ms=" in lines[0] and "tokens=" in lines[0]
    assert not any(secret in line for line in text), "prompt text stays out of the logs"

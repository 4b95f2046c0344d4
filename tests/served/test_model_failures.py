"""A model that cannot load is reported with its reason, and the others keep serving."""

import json

from helpers import LLM, deploy, wait_for_apps


def test_unreachable_hub_source_fails_with_its_name(serve_instance, client):
    bad = {
        "name": "broken-hub-model",
        "route_prefix": None,
        "import_path": "deployments.llm:build_app",
        # HF_HUB_OFFLINE makes the failure immediate whatever this machine's network does.
        "runtime_env": {"env_vars": {"HF_HUB_OFFLINE": "1"}},
        "args": {"source": "no-such-org/no-such-model"},
        "deployments": [{"name": "llm", "max_constructor_retry_count": 1, "ray_actor_options": {"num_cpus": 0.1}}],
    }
    config = {**serve_instance, "applications": serve_instance["applications"] + [bad]}
    deploy(config)
    try:
        status = wait_for_apps(["broken-hub-model"], timeout_s=180, want=("DEPLOY_FAILED",))
        assert "no-such-org/no-such-model" in status["broken-hub-model"].deployments["llm"].message

        out = client.post("/api/worker/generate", json={"model": "broken-hub-model", "prompt": "hi"}).json()
        assert out["error_code"] == 1
        assert "no running replica" in out["text"] and "DEPLOY_FAILED" in out["text"]
        assert "no-such-org/no-such-model" in out["text"], "the reason reaches the client"
        r = client.post("/api/worker/count_token", json={"model": "broken-hub-model", "prompt": "hi"})
        assert r.status_code == 503 and "broken-hub-model" in r.json()["detail"]

        supports = client.get("/api/worker/models/supports").json()[0]["models"]
        broken = next(m for m in supports if m["model"] == "broken-hub-model")
        assert broken["enabled"] is False and broken["path_exist"] is False

        # The other models never noticed.
        frames = [json.loads(f) for f in client.post(
            "/api/worker/generate_stream", json={"model": LLM, "prompt": "Hi", "max_new_tokens": 3}
        ).content.split(b"\0") if f]
        assert frames[-1]["error_code"] == 0 and frames[-1]["finish_reason"] == "length"
    finally:
        deploy(serve_instance)
        wait_for_apps(["broken-hub-model"], timeout_s=120, want=("MISSING", "NOT_STARTED"))

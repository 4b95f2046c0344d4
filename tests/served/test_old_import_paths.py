"""Import paths that running clusters' configs name still deploy: `serve_app.router:build_app`
(now serve_app.ingress.deployment) and `serve_app.routing:RandomRouter` (now
deployments.request_routers)."""

import httpx
from helpers import deploy, wait_for_apps


def test_configs_naming_the_old_paths_still_deploy_and_serve(serve_instance, base_url, tmp_path):
    legacy = [
        {
            "name": "legacy-router",
            "route_prefix": "/legacy",
            "import_path": "serve_app.router:build_app",
            "args": {"state": {"store": "sqlite", "path": str(tmp_path / "state.db")}},  # never the user's own
            "deployments": [{"name": "router", "ray_actor_options": {"num_cpus": 0.1}}],
        },
        {
            "name": "legacy-routed-model",
            "route_prefix": None,
            "import_path": "deployments.llm:build_app",
            "args": {"source": "simulated", "engine": "simulated"},
            "deployments": [{
                "name": "llm",
                "ray_actor_options": {"num_cpus": 0.1},
                "request_router_config": {"request_router_class": "serve_app.routing:RandomRouter"},
            }],
        },
    ]
    deploy({**serve_instance, "applications": serve_instance["applications"] + legacy})
    try:
        wait_for_apps([app["name"] for app in legacy], timeout_s=180)
        with httpx.Client(base_url=f"{base_url}/legacy", timeout=60) as old:
            assert old.get("/api/health").json() == {"status": "ok"}
            out = old.post("/api/worker/generate", json={"model": "legacy-routed-model", "prompt": "hi",
                                                          "max_new_tokens": 3}).json()
            assert out["error_code"] == 0 and out["finish_reason"] == "length"
    finally:
        deploy(serve_instance)

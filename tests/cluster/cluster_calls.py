"""What the cluster tier's tests share: its models, Serve's view of where replicas run, and
calls through the ingress."""

from __future__ import annotations

from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LLM = "smollm2-135m-instruct"  # the config's llm, here on the simulated engine
EMBEDDER = "all-minilm-l6-v2"
ADMIN_KEY = "sk-cluster-admin"
FAST_HEALTH = {"health_check_period_ms": 1000, "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}
SIMULATED = {"source": "simulated", "engine": "simulated", "simulated_tokens_per_s": 20, "simulated_ttft_ms": 20}



def details() -> dict:
    from ray.serve.context import _get_global_client

    return _get_global_client().get_serve_details()


def replica_nodes(app: str) -> list[str]:
    """Node ids of an application's RUNNING replicas."""
    return [r["node_id"] for d in details()["applications"][app]["deployments"].values()
            for r in d["replicas"] if r["state"] == "RUNNING"]


def apply(client, expect: int = 200, **body) -> dict:
    r = client.post("/api/worker/apply", json=body, timeout=400)
    assert r.status_code == expect, r.text
    return r.json()


def chat(client, model: str, max_tokens: int = 4, **extra) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "max_tokens": max_tokens,
                                                     "messages": [{"role": "user", "content": "hi"}]}, **extra)

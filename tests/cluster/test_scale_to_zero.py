"""A model that autoscales to zero replicas gives its GPU node back when idle, stays listed
as asleep (OpenAI's model list, DB-GPT's controller, `GET /api/models/status`), and the
first request to it wakes it: it waits while the autoscaler adds a node and Serve starts a
replica, then is answered. Time from that request to its answer is measured."""

import time

from cluster_calls import SIMULATED, apply, chat, replica_nodes
from harness import wait_for

SLEEPER = "sleeper"
AUTOSCALING = {"min_replicas": 0, "max_replicas": 1, "initial_replicas": 1, "target_ongoing_requests": 1,
               "upscale_delay_s": 0, "downscale_delay_s": 2, "downscale_to_zero_delay_s": 2,
               "metrics_interval_s": 0.5, "look_back_period_s": 2}


def test_an_idle_model_sleeps_on_no_node_and_a_request_wakes_it(cluster, client):
    apply(client, model=SLEEPER, worker_type="llm", apply_type="start", timeout_s=240,
          params={**SIMULATED, "num_gpus": 1, "autoscaling_config": AUTOSCALING})
    try:
        [node] = replica_nodes(SLEEPER)
        assert chat(client, SLEEPER).status_code == 200

        def gpu_nodes():
            return {n["node_id"] for n in cluster.worker_nodes()}

        status = lambda: {m["model"]: m for m in client.get("/api/models/status").json()}[SLEEPER]  # noqa: E731
        wait_for(lambda: status()["phase"] == "asleep", 120, 0.5, "the model to scale to zero")
        wait_for(lambda: node not in gpu_nodes(), 120, 1, "its GPU node to go")
        assert SLEEPER in [m["id"] for m in client.get("/v1/models").json()["data"]]
        instances = client.get("/api/controller/models", params={"healthy_only": True}).json()
        assert f"{SLEEPER}@llm" in [i["model_name"] for i in instances]

        woken_at = time.monotonic()
        answer = chat(client, SLEEPER, max_tokens=8)
        took = time.monotonic() - woken_at
        print(f"\n[cluster] asleep model: the waking request answered after {took:.1f}s (a node added, a replica started)")
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 8
        assert replica_nodes(SLEEPER) and replica_nodes(SLEEPER)[0] != cluster.head_node_id()
    finally:
        apply(client, model=SLEEPER, apply_type="stop")

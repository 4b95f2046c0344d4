"""Where models land on a cluster of several nodes: a GPU model on a GPU node the autoscaler
adds (and says so while it waits), CPU models on the head, a proxy on every node, a model
no node type can hold refused at once, a model wider than one GPU as one placement group,
and an idle GPU node given back."""

import time

import httpx
from cluster_calls import EMBEDDER, LLM, SIMULATED, apply, chat, replica_nodes
from harness import wait_for


def test_the_config_puts_the_llm_on_a_gpu_node_and_cpu_models_on_the_head(cluster):
    head = cluster.head_node_id()
    gpu_nodes = {n["node_id"] for n in cluster.worker_nodes() if n["node_type"] == "worker.gpu"}
    assert set(replica_nodes(LLM)) <= gpu_nodes and replica_nodes(LLM), "the llm runs on a GPU node"
    assert set(replica_nodes(EMBEDDER)) == {head} and set(replica_nodes("router")) == {head}


def test_a_gpu_model_started_through_the_api_waits_for_a_node_then_runs_there(cluster, client):
    started = time.monotonic()
    answer = client.post("/api/worker/apply", json={"model": "gpu-started", "worker_type": "llm", "apply_type": "start",
                                                    "wait": False, "params": {**SIMULATED, "num_gpus": 1}})
    assert answer.status_code == 202, answer.text
    try:
        # Every GPU node's one GPU is taken by the config's llm: a node must be added, and the status says which.
        phases, _ = wait_for(lambda: [m["phase"] for m in client.get("/api/models/status").json()
                                      if m["model"] == "gpu-started" and "worker.gpu" in m["phase"]], 60, 0.2,
                             "the waiting phase")
        assert phases == ["waiting for a node of type worker.gpu to be added"]
        wait_for(lambda: chat(client, "gpu-started").status_code == 200, 180, 0.5, "an answer")
        print(f"\n[cluster] start to first answer on a new GPU node: {time.monotonic() - started:.1f}s")
        node = replica_nodes("gpu-started")[0]
        assert node != cluster.head_node_id() and node != replica_nodes(LLM)[0]
    finally:
        apply(client, model="gpu-started", apply_type="stop")


def test_a_worker_nodes_proxy_answers_as_the_heads(cluster, client):
    assert any(not n["is_head"] for n in cluster.worker_nodes())
    with httpx.Client(base_url=f"http://127.0.0.1:{cluster.worker_port}", timeout=60, headers=client.headers) as worker:
        body = {"model": EMBEDDER, "input": ["proxies on every node"]}
        via_worker, via_head = worker.post("/v1/embeddings", json=body), client.post("/v1/embeddings", json=body)
        assert via_worker.status_code == via_head.status_code == 200
        assert via_worker.json()["data"] == via_head.json()["data"]
        assert [m["id"] for m in worker.get("/v1/models").json()["data"]] == \
               [m["id"] for m in client.get("/v1/models").json()["data"]]


def test_a_model_no_node_type_can_hold_is_refused_at_once(client):
    started = time.monotonic()
    refused = client.post("/api/worker/apply", json={"model": "two-gpus", "worker_type": "llm", "apply_type": "start",
                                                     "params": {**SIMULATED, "num_gpus": 2}})
    assert refused.status_code == 422 and time.monotonic() - started < 5
    assert "can never be placed" in refused.json()["message"] and "GPU: 1" in refused.json()["message"]
    tensor = client.post("/api/worker/apply", json={"model": "tp2", "worker_type": "llm", "apply_type": "start",
                                                    "params": {**SIMULATED, "tensor_parallel_size": 2}})
    assert tensor.status_code == 422 and "2 bundles, on one node, need" in tensor.json()["message"]


def test_pipeline_stages_span_two_gpu_nodes_as_one_placement_group(cluster, client):
    apply(client, model="pp2", worker_type="llm", apply_type="start", timeout_s=240,
          params={**SIMULATED, "pipeline_parallel_size": 2})
    try:
        metadata = client.post("/api/worker/model_metadata", json={"model": "pp2"}).json()["metadata"]["placement"]
        assert metadata["strategy"] == "PACK" and metadata["bundles"] == [{"GPU": 1.0, "CPU": 1.0}] * 2
        gpu_nodes = {n["node_id"] for n in cluster.worker_nodes() if n["node_type"] == "worker.gpu"}
        assert len(set(metadata["bundle_nodes"])) == 2 and set(metadata["bundle_nodes"]) <= gpu_nodes
        assert chat(client, "pp2").status_code == 200
    finally:
        apply(client, model="pp2", apply_type="stop")


def test_a_stopped_models_gpu_node_goes_back_to_the_autoscaler(cluster, client):
    def gpu_nodes():
        return {n["node_id"] for n in cluster.worker_nodes() if n["node_type"] == "worker.gpu"}

    busy = set(replica_nodes(LLM))
    wait_for(lambda: gpu_nodes() == busy, 120, 1, "the idle GPU nodes to go")  # the earlier tests' nodes
    apply(client, model="short-lived", worker_type="llm", apply_type="start", timeout_s=180,
          params={**SIMULATED, "num_gpus": 1})
    its_node = set(replica_nodes("short-lived"))
    assert its_node and its_node.isdisjoint(busy)
    stopped = time.monotonic()
    apply(client, model="short-lived", apply_type="stop")
    wait_for(lambda: not (its_node & gpu_nodes()), 120, 1, "the idle node to be removed")
    print(f"\n[cluster] idle GPU node removed {time.monotonic() - stopped:.1f}s after its model stopped "
          "(10 s idle timeout, 2 s proxy drain)")

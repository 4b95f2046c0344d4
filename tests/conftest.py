"""One real Ray + Serve instance per test session, running the default serve_config.yaml."""

import os
import socket
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LLM = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
RERANKER = "all-minilm-l6-v2-rerank"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_config() -> dict:
    return yaml.safe_load((ROOT / "serve_config.yaml").read_text())


def wait_for_apps(names, timeout_s=300, want=("RUNNING",)) -> dict:
    """Poll Serve until every app in `names` has a status in `want`; return the statuses."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        statuses = {n: (apps[n].status if n in apps else "MISSING") for n in names}
        if all(s in want for s in statuses.values()):
            return {n: apps.get(n) for n in names}
        if time.monotonic() > deadline:
            raise TimeoutError(f"apps not {want} after {timeout_s}s: {statuses}")
        time.sleep(1)


@pytest.fixture(scope="session")
def serve_instance():
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    # 2 real cores: oversubscribe logical CPUs so every replica (and the extra apps
    # some tests deploy) can be placed. Two pretend GPUs let tests check placement.
    ray.init(num_cpus=8, num_gpus=2, log_to_driver=False)
    config = load_config()
    config["http_options"] = {"host": "127.0.0.1", "port": free_port()}
    serve.start(http_options=config["http_options"])
    _get_global_client().deploy_apps(ServeDeploySchema(**config))
    wait_for_apps([app["name"] for app in config["applications"]])
    yield config
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def base_url(serve_instance) -> str:
    http = serve_instance["http_options"]
    return f"http://{http['host']}:{http['port']}"


@pytest.fixture(scope="session")
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as c:
        yield c

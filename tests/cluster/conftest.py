"""The cluster tier: serve_config.cluster.yaml on a Ray cluster of several nodes on this machine,
whose node types come from cluster.yaml (harness.py): a CPU head, and GPU workers (pretend
GPUs, none kept up) that the real autoscaler adds when a replica asks for a GPU and
removes when idle. The llm runs the simulated engine (GPU-rate streams without weights);
the CPU models are the real ones, pinned to the head by its label.

Its own Ray, started by `ray start` (the cluster tier runs in its own pytest process:
`make test-cluster`, or its tier in `make test`). Knobs that make the tier fast, each
what an operator may set too: GCS health checks every second (a lost node is declared
dead in ~3 s, not ~15 s), a 10 s idle timeout, and a 2 s proxy drain (a draining proxy
keeps a node from going idle).
"""

from __future__ import annotations

import os

# Token auth, as cluster.yaml runs its cluster; Ray reads the mode when it is first imported,
# so it is set before anything here imports Ray (harness.py generates the token).
os.environ["RAY_AUTH_MODE"] = "token"

import socket  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from cluster_calls import ADMIN_KEY, FAST_HEALTH, LLM, ROOT, SIMULATED  # noqa: E402
from harness import SmmfAutoscalingCluster, wait_for  # noqa: E402
from helpers import QUIET_SERVE_ENV  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_config(port: int, node_types: dict) -> dict:
    """The shipped cluster config, as the tier runs it: the llm simulated, HTTP on loopback, and
    an admin key (keys made by the tests then leave the others' requests as they were)."""
    from serve_app.governance.keys import hash_key

    config = yaml.safe_load((ROOT / "serve_config.cluster.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    for app in config["applications"]:
        if app["name"] == LLM:
            app["args"] = {**app["args"], **SIMULATED, "max_new_tokens": 256}
            app["args"].pop("device", None)
        if app["name"] == "router":
            app["args"] = {**app["args"], "node_types": node_types,
                           "api_keys": [{"key_sha256": hash_key(ADMIN_KEY), "id": "ops", "scope": "admin"}]}
    return config


@pytest.fixture(scope="session")
def cluster():
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    port, worker_port = free_port(), free_port()
    harness = SmmfAutoscalingCluster(idle_timeout_s=10, head_cpus=2, worker_cpus=1, worker_proxy_port=worker_port,
                                     system_config=FAST_HEALTH,
                                     env={"RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S": "2", **QUIET_SERVE_ENV})
    with harness:
        ray.init(address=harness.address, log_to_driver=False)
        types = harness.serve_node_types()
        config = cluster_config(port, types)
        serve.start(proxy_location="EveryNode", http_options=config["http_options"])
        started = time.monotonic()
        _get_global_client().deploy_apps(ServeDeploySchema(**config))
        wait_for(lambda: all(a.status == "RUNNING" for a in serve.status().applications.values())
                 and len(serve.status().applications) == len(config["applications"]), 300, 1, "the apps")
        print(f"\n[cluster] default apps running {time.monotonic() - started:.1f}s after deploy")
        harness.base_url = f"http://127.0.0.1:{port}"
        harness.worker_port = worker_port
        harness.serve_config = config
        yield harness
        serve.shutdown()


@pytest.fixture(scope="session")
def client(cluster):
    with httpx.Client(base_url=cluster.base_url, timeout=120, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


# The head's loss first (two nodes of its own: it runs before the tier's cluster starts), then
# placement (it reads the cluster as the config made it), failures last (they break it).
ORDER = ("test_head_loss.py", "test_node_placement.py", "test_scale_to_zero.py", "test_failures.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: ORDER.index(item.path.name) if item.path.name in ORDER else len(ORDER))

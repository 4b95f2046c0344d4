"""What every part of the bench does with the cluster: ports, progress lines, deploys."""

from __future__ import annotations

import importlib.util
import socket
import time

DEPLOY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(name: str, started: float) -> None:
    print(f"[bench {time.perf_counter() - started:6.1f}s] {name}", flush=True)


def wait_running(serve, names, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        states = {n: apps[n].status if n in apps else "MISSING" for n in names}
        if all(s == "RUNNING" for s in states.values()):
            return
        failed = {n: apps[n].message for n in names if n in apps and apps[n].status == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError(f"deploy failed: {failed}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"apps not RUNNING after {timeout_s}s: {states}")
        time.sleep(1)


def deploy(config: dict) -> None:
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    _get_global_client().deploy_apps(ServeDeploySchema(**config))


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None

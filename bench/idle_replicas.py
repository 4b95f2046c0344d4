"""What an idle Ray and Serve cost: the table "what an idle replica costs" in docs/development.md.

Starts a Ray of its own (its own temp dir, no dashboard, as the test tiers start theirs), Serve
with four replicas of a deployment that does nothing, waits for it to settle, then sums every
process's CPU over the idle seconds, filed by bench/suite_cpu.py's categories. Ray's knobs come
from the environment, so one setting is compared with another by running it under each:

    .venv/bin/python bench/idle_replicas.py                                   # Ray's defaults
    RAY_event_stats=0 .venv/bin/python bench/idle_replicas.py --label event_stats=0

With `--config`, the Serve config file's applications instead (as `serve deploy` applies it, its
state files under a temp dir), and `--ttl` sets the router's `registry_ttl_s`: how often the
manager reads Serve's whole state from the controller for the routing table.

    .venv/bin/python bench/idle_replicas.py --config serve_config.yaml --ttl 1
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
import urllib.request

import psutil
import ray
import yaml
from ray import serve
from suite_cpu import category

TEMP_DIR = "/tmp/ray-idle-probe"  # its processes are found by this path in their command lines


@serve.deployment(num_replicas=4, ray_actor_options={"num_cpus": 0.1})
class Idle:
    def __call__(self, request) -> str:
        return "ok"


def ray_processes() -> list[psutil.Process]:
    """This Ray's daemons (their command lines name its temp dir) and everything they started."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        if p.pid != os.getpid() and any(TEMP_DIR in a for a in p.info["cmdline"] or []):
            for q in [p, *p.children(recursive=True)]:
                found[q.pid] = q
    return list(found.values())


def cpu_by_category(procs: list[psutil.Process]) -> dict[int, tuple[str, float]]:
    out = {}
    for p in procs:
        try:
            times = p.cpu_times()
            out[p.pid] = (category(p.cmdline()) or p.name(), times.user + times.system)
        except psutil.NoSuchProcess:
            continue
    return out


def deploy_config(path: str, ttl_s: float | None) -> None:
    """The config file's applications, the router's state under a temp dir, deployed as `serve
    deploy` does; returns once every application is RUNNING."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    with open(path) as f:
        config = yaml.safe_load(f)
    state_dir = tempfile.mkdtemp(prefix="idle-probe-")
    for app in config["applications"]:
        if app["name"] == "router":
            app["args"]["state"] = {"store": "sqlite", "path": f"{state_dir}/state.db"}
            app["args"]["batches"] = {"files_url": f"{state_dir}/files"}
            if ttl_s is not None:
                app["args"]["registry_ttl_s"] = ttl_s
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    serve.start(http_options=config["http_options"])
    client = _get_global_client()
    client.deploy_apps(ServeDeploySchema(**config))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        apps = client.get_serve_details()["applications"]
        if len(apps) == len(config["applications"]) and all(a["status"] == "RUNNING" for a in apps.values()):
            # One request, as any first client makes: the ingress then watches the manager's
            # routing table, and the manager reads Serve's state every registry_ttl_s.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=60) as answer:
                assert answer.status == 200
            return
        time.sleep(1)
    raise TimeoutError(f"{path}'s applications did not all reach RUNNING in 600 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--settle-s", type=float, default=20)
    parser.add_argument("--label", default="Ray's defaults")
    parser.add_argument("--config", help="a Serve config file to deploy instead of four idle replicas")
    parser.add_argument("--ttl", type=float, help="with --config: the router's registry_ttl_s")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=4, log_to_driver=False, include_dashboard=False, _temp_dir=TEMP_DIR)
    try:
        if args.config:
            deploy_config(args.config, args.ttl)
        else:
            serve.start(http_options={"host": "127.0.0.1", "port": 0})
            serve.run(Idle.bind(), name="idle", route_prefix="/idle")
        time.sleep(args.settle_s)  # the replicas' and the controller's start-up work done
        procs = ray_processes()
        before = cpu_by_category(procs)
        time.sleep(args.idle_s)
        after = cpu_by_category(procs)
    finally:
        serve.shutdown()
        ray.shutdown()
    totals: dict[str, float] = {}
    for pid, (cat, cpu) in after.items():
        if pid in before:
            totals[cat] = totals.get(cat, 0.0) + cpu - before[pid][1]
    print(json.dumps({"label": args.label, "idle_s": args.idle_s, "cpu_s": round(sum(totals.values()), 2),
                      "by_process": {k: round(v, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}}))


if __name__ == "__main__":
    main()

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
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import ray
import yaml
from ray import serve
from suite_cpu import category

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "cluster")]  # the tests' helpers, as other benches use them
from harness import session_processes  # noqa: E402
from helpers import deploy, free_port, wait_for_apps, with_state_file  # noqa: E402

TEMP_DIR = "/tmp/ray-idle-probe"  # its processes are found by this path in their command lines


@serve.deployment(num_replicas=4, ray_actor_options={"num_cpus": 0.1})
class Idle:
    def __call__(self, request) -> str:
        return "ok"


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
    deploy` does; returns once every application is RUNNING and has answered one request."""
    with open(path) as f:
        config = yaml.safe_load(f)
    with_state_file(config, Path(tempfile.mkdtemp(prefix="idle-probe-")) / "state.db")
    if ttl_s is not None:
        next(app for app in config["applications"] if app["name"] == "router")["args"]["registry_ttl_s"] = ttl_s
    config["http_options"] = {"host": "127.0.0.1", "port": free_port()}
    serve.start(http_options=config["http_options"])
    deploy(config)
    wait_for_apps([app["name"] for app in config["applications"]], timeout_s=600)
    # One request, as any first client makes: the ingress then watches the manager's routing
    # table, and the manager reads Serve's state every registry_ttl_s.
    with urllib.request.urlopen(f"http://127.0.0.1:{config['http_options']['port']}/v1/models", timeout=60) as answer:
        assert answer.status == 200


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
        procs = session_processes(TEMP_DIR)
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

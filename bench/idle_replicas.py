"""What an idle Ray and Serve cost: the table "what an idle replica costs" in docs/development.md.

Starts a Ray of its own (its own temp dir, no dashboard, as the test tiers start theirs), Serve
with four replicas of a deployment that does nothing, waits for it to settle, then sums every
process's CPU over the idle seconds, filed by bench/suite_cpu.py's categories. Ray's knobs come
from the environment, so one setting is compared with another by running it under each:

    .venv/bin/python bench/idle_replicas.py                                   # Ray's defaults
    RAY_event_stats=0 .venv/bin/python bench/idle_replicas.py --label event_stats=0
"""

from __future__ import annotations

import argparse
import json
import os
import time

import psutil
import ray
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--settle-s", type=float, default=20)
    parser.add_argument("--label", default="Ray's defaults")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=4, log_to_driver=False, include_dashboard=False, _temp_dir=TEMP_DIR)
    try:
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

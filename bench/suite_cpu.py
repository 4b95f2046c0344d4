"""Where `make test`'s CPU goes, process by process: the table in docs/development.md.

A sampler reads every process's CPU time once a second (psutil) until it is stopped, and
files each under what it is: a Ray replica by its deployment (`ray::ServeReplica:<app>:<deployment>`
is a replica's process title; an llm by its model), Ray's own daemons by name, each pytest lane
by its arguments. A process that was already running when it started counts only what it
used since. Processes that live under a second are missed.

    .venv/bin/python bench/suite_cpu.py sample cpu.json &   # then: make test; kill %1 (SIGTERM writes it)
    .venv/bin/python bench/suite_cpu.py report cpu.json
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time

import psutil

DAEMONS = ["raylet", "gcs_server", "dashboard/agent.py", "dashboard.py", "runtime_env/agent", "log_monitor",
           "monitor.py", "prometheus", "redis-server", "dbgpt_driver", "instructor_driver", "lm_eval",
           "serve_app.launch", "uv pip", "dbgpt", "smmf"]


def category(cmdline: list[str]) -> str | None:
    if not cmdline:
        return None  # a process exiting, or a kernel thread: keep what it was filed under
    head = cmdline[0]
    if head.startswith("ray::"):
        title = re.sub(r"#\w+$", "", head.split(" ")[0])
        parts = title.split(":")  # ray, "", ServeReplica, app, deployment[.method]
        if parts[2:3] == ["ServeReplica"] and len(parts) > 4:
            deployment = parts[4].split(".")[0]
            return f"replica {deployment}" + (f" ({parts[3]})" if deployment == "llm" else "")
        return title.split(".")[0]
    joined = " ".join(cmdline)
    if "pytest" in joined:
        return "pytest " + joined.split("pytest", 1)[1][:60].strip()
    return next((d for d in DAEMONS if d in joined), None) or cmdline[0].rsplit("/", 1)[-1][:40]


def processes_now(skip: int | None = None):
    """Every process now but `skip`: its (pid, start time), what it is (its category; None while its
    command line cannot be read), its name, and its CPU seconds so far."""
    for p in psutil.process_iter(["pid", "name", "cmdline", "cpu_times", "create_time"]):
        info = p.info
        if info["pid"] != skip and info["cpu_times"] is not None:
            yield ((info["pid"], info["create_time"]), category(info["cmdline"] or []), info["name"] or "?",
                   info["cpu_times"].user + info["cpu_times"].system)


def sample(out: str) -> None:
    seen: dict[tuple[int, float], list] = {}  # (pid, start) -> [category, cpu since sampling began]
    before: dict[tuple[int, float], float] = {}
    began = time.time()

    def write(*_):
        totals: dict[str, list] = {}
        for cat, cpu in seen.values():
            totals.setdefault(cat, [0.0, 0])
            totals[cat][0] += cpu
            totals[cat][1] += 1
        with open(out, "w") as f:
            json.dump({"cpu_s": {k: v[0] for k, v in totals.items()}, "processes": {k: v[1] for k, v in totals.items()},
                       "seconds": time.time() - began}, f, indent=1)
        sys.exit(0)

    signal.signal(signal.SIGTERM, write)
    me = psutil.Process().pid
    while True:
        for key, cat, name, cpu in processes_now(skip=me):
            if key not in seen:
                if key[1] < began:  # its start time
                    before[key] = cpu
                seen[key] = [cat or name, 0.0]
            seen[key][1] = cpu - before.get(key, 0.0)
            if cat is not None and cat != "ray::IDLE":  # a worker becomes what it runs
                seen[key][0] = cat
        time.sleep(1)


def report(path: str, most: int = 30) -> None:
    data = json.loads(open(path).read())
    total = sum(data["cpu_s"].values())
    print(f"{total:.0f} CPU seconds in {data['seconds']:.0f} s\n\n| CPU s | processes | what |\n|---|---|---|")
    for cat, cpu in sorted(data["cpu_s"].items(), key=lambda kv: -kv[1])[:most]:
        print(f"| {cpu:.0f} | {data['processes'][cat]} | `{cat}` |")


if __name__ == "__main__":
    {"sample": sample, "report": report}[sys.argv[1]](sys.argv[2])

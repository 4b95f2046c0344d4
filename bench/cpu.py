"""CPU seconds each serving process used, from /proc (psutil), to tell which one is the limit."""

from __future__ import annotations

import os

import psutil


def cpu_seconds(processes: dict[str, str]) -> dict[str, float]:
    """{name: user + system seconds} of every process whose command line starts with the
    name's prefix (Ray names its workers `ray::ServeReplica:<app>:<deployment>`), and this one's."""
    out = {name: 0.0 for name in processes}
    out["client"] = sum(psutil.Process(os.getpid()).cpu_times()[:2])
    for p in psutil.process_iter(["cmdline", "cpu_times"]):
        cmd = " ".join(p.info["cmdline"] or [])
        for name, prefix in processes.items():
            if cmd.startswith(prefix) and p.info["cpu_times"]:
                out[name] += p.info["cpu_times"].user + p.info["cpu_times"].system
    return out


def cores(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """Cores each process kept busy on average over `wall_s`."""
    return {name: (after[name] - before[name]) / wall_s for name in after}

"""CPU seconds per test: a pytest plugin that reads the whole machine's CPU time (/proc/stat)
before and after each test (setup, call and teardown together) and prints what each module
and each test cost, largest first.

Whole-machine figures mean something only when the tier runs alone: every Ray process a test
makes busy (replicas, the controller, the proxy) counts, and so would anything beside it.
A session-scoped fixture counts in the first test that asks for it.

    PYTHONPATH=bench .venv/bin/pytest -p cpu_per_test tests/served      # the table at the end
    CPU_TABLE=out.json ... also writes every test's figures
    CPU_BY_PROCESS=1 ...   also which processes spent it, filed as bench/suite_cpu.py files them
                           (each replica by its deployment, Ray's daemons by name): every process's
                           CPU time read before and after each test, so a process that starts and
                           ends within one test counts only what it used by its last reading
"""

from __future__ import annotations

import json
import os
import time

import pytest

TICK = os.sysconf("SC_CLK_TCK")
BY_PROCESS = bool(os.environ.get("CPU_BY_PROCESS"))
_rows: list[tuple[str, float, float]] = []
_by_process: dict[str, dict[str, float]] = {}  # test -> process category -> CPU s


def machine_cpu_s() -> float:
    """user + nice + system + irq + softirq of every core, in seconds (not idle, not iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / TICK


def process_cpu_s() -> dict[tuple[int, float], tuple[str, float]]:
    """(pid, start time) -> (what it is, its CPU seconds so far), for every process now."""
    from suite_cpu import processes_now

    return {key: (cat or name, cpu) for key, cat, name, cpu in processes_now()}


def spent(before: dict, after: dict) -> dict[str, float]:
    by: dict[str, float] = {}
    for key, (cat, cpu) in after.items():
        by[cat] = by.get(cat, 0.0) + cpu - before.get(key, (cat, 0.0))[1]
    return {cat: cpu for cat, cpu in by.items() if cpu >= 0.05}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    processes = process_cpu_s() if BY_PROCESS else None
    cpu, wall = machine_cpu_s(), time.monotonic()
    yield
    _rows.append((item.nodeid, machine_cpu_s() - cpu, time.monotonic() - wall))
    if processes is not None:
        _by_process[item.nodeid] = spent(processes, process_cpu_s())


def pytest_terminal_summary(terminalreporter):
    if not _rows:
        return
    modules: dict[str, list[float]] = {}
    for nodeid, cpu, wall in _rows:
        m = modules.setdefault(nodeid.split("::")[0], [0.0, 0.0])
        m[0] += cpu
        m[1] += wall
    write = terminalreporter.write_line
    total = sum(c for _, c, _ in _rows)
    processes: dict[str, dict[str, float]] = {}  # module -> category -> CPU s
    for nodeid, by in _by_process.items():
        into = processes.setdefault(nodeid.split("::")[0], {})
        for cat, cpu in by.items():
            into[cat] = into.get(cat, 0.0) + cpu
    column = " largest processes (CPU s) |" if BY_PROCESS else ""
    write(f"\nCPU per module ({total:.0f} CPU s in all)\n\n| module | CPU s | wall s |{column}\n|---|---|---|"
          + ("---|" if BY_PROCESS else ""))
    for name, (cpu, wall) in sorted(modules.items(), key=lambda kv: -kv[1][0]):
        largest = sorted(processes.get(name, {}).items(), key=lambda kv: -kv[1])[:4]
        cell = f" {', '.join(f'`{cat}` {c:.0f}' for cat, c in largest)} |" if BY_PROCESS else ""
        write(f"| {name} | {cpu:.1f} | {wall:.1f} |{cell}")
    write("\nCPU per test, the 25 largest\n\n| test | CPU s | wall s |\n|---|---|---|")
    for nodeid, cpu, wall in sorted(_rows, key=lambda r: -r[1])[:25]:
        write(f"| {nodeid} | {cpu:.1f} | {wall:.1f} |")
    if os.environ.get("CPU_TABLE"):
        with open(os.environ["CPU_TABLE"], "w") as f:
            json.dump([{"test": n, "cpu_s": c, "wall_s": w, **({"by_process": _by_process[n]} if BY_PROCESS else {})}
                       for n, c, w in _rows], f, indent=1)

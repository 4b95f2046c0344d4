"""CPU seconds per test: a pytest plugin that reads the whole machine's CPU time (/proc/stat)
before and after each test (setup, call and teardown together) and prints what each module
and each test cost, largest first.

Whole-machine figures mean something only when the tier runs alone: every Ray process a test
makes busy (replicas, the controller, the proxy) counts, and so would anything beside it.
A session-scoped fixture counts in the first test that asks for it.

    PYTHONPATH=bench .venv/bin/pytest -p cpu_per_test tests/served      # the table at the end
    CPU_TABLE=out.json ... also writes every test's figures
"""

from __future__ import annotations

import json
import os
import time

import pytest

TICK = os.sysconf("SC_CLK_TCK")
_rows: list[tuple[str, float, float]] = []


def machine_cpu_s() -> float:
    """user + nice + system + irq + softirq of every core, in seconds (not idle, not iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / TICK


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = machine_cpu_s(), time.monotonic()
    yield
    _rows.append((item.nodeid, machine_cpu_s() - cpu, time.monotonic() - wall))


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
    write(f"\nCPU per module ({total:.0f} CPU s in all)\n\n| module | CPU s | wall s |\n|---|---|---|")
    for name, (cpu, wall) in sorted(modules.items(), key=lambda kv: -kv[1][0]):
        write(f"| {name} | {cpu:.1f} | {wall:.1f} |")
    write("\nCPU per test, the 25 largest\n\n| test | CPU s | wall s |\n|---|---|---|")
    for nodeid, cpu, wall in sorted(_rows, key=lambda r: -r[1])[:25]:
        write(f"| {nodeid} | {cpu:.1f} | {wall:.1f} |")
    if os.environ.get("CPU_TABLE"):
        with open(os.environ["CPU_TABLE"], "w") as f:
            json.dump([{"test": n, "cpu_s": c, "wall_s": w} for n, c, w in _rows], f, indent=1)

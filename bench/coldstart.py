"""`make run`'s launcher on the default config in a subprocess, timed to its first answered
request, with a timeline: when Ray and Serve started and each replica was added (from the
run's own log), when the ingress first answered and each application was RUNNING."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import yaml
from workload import LLM

ROOT = Path(__file__).resolve().parent.parent


def cold_start(port: int, cache_dir: str | None, timeout_s: float) -> dict:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    env = dict(os.environ, RAY_ADDRESS="local")  # a fresh cluster of its own, never someone else's
    if cache_dir:
        env["SMMF_CACHE_DIR"] = cache_dir
    with tempfile.TemporaryDirectory() as tmp:
        router = next(app for app in config["applications"] if app["name"] == "router")
        # A state file of the bench's own: the user's would add what they started through the API.
        router["args"] = {**router.get("args", {}), "state": {"store": "sqlite", "path": f"{tmp}/state.db"}}
        path = Path(tmp) / "serve_config.yaml"
        path.write_text(yaml.safe_dump(config))
        log = open(Path(tmp) / "serve_run.log", "w")
        started, wall = time.perf_counter(), time.time()
        proc = subprocess.Popen(  # what `make run` runs once .venv is installed
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "serve_app.launch", str(path)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        answered, attempts, timeline = None, 0, {}
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                while time.perf_counter() - started < timeout_s and proc.poll() is None:
                    attempts += 1
                    answered = _poll(client, started, timeline)
                    if answered:
                        break
                    time.sleep(0.25)
        finally:
            _stop(proc)
            log.close()
            text = (Path(tmp) / "serve_run.log").read_text(errors="ignore")
    timeline = {**log_timeline(text, wall), **timeline}
    return {"cache": "cold" if cache_dir else "warm", "seconds": answered, "attempts": attempts,
            "timeline": dict(sorted(timeline.items(), key=lambda kv: kv[1])),
            "log_tail": None if answered else text[-2000:]}


# What the run's log says and when (its lines carry the wall clock to the millisecond).
LOG_EVENTS = {
    r"Started a local Ray instance": lambda m: "Ray started",
    r'Started Serve in namespace': lambda m: "Serve started",
    r"Adding 1 replica to Deployment\(name='(\w+)', app='([\w.-]+)'\)": lambda m: f"{m[2]}/{m[1]} replica added",
}
STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def log_timeline(text: str, wall: float) -> dict[str, float]:
    """Seconds from the start to each event's first line in the log."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        stamp = STAMP.search(line)
        for pattern, name in LOG_EVENTS.items():
            if stamp and (m := re.search(pattern, line)):
                at = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").timestamp() - wall
                found.setdefault(name(m), round(at, 1))
    return found


def _poll(client: httpx.Client, started: float, timeline: dict) -> float | None:
    """One look at the starting cluster: when the ingress answered, when each model ran,
    and, once the LLM answers a generate, the seconds to that answer."""
    now = lambda: round(time.perf_counter() - started, 1)  # noqa: E731
    try:
        if "ingress" not in timeline:
            client.get("/api/health").raise_for_status()
            timeline["ingress"] = now()
        for m in client.get("/api/models/status").json():
            if m["status"] == "RUNNING":
                timeline.setdefault(m["model"], now())
        out = client.post("/api/worker/generate", json={
            "model": LLM, "prompt": "Hi", "max_new_tokens": 1, "temperature": 0}).json()
        return time.perf_counter() - started if out.get("error_code") == 0 else None
    except (httpx.HTTPError, ValueError):
        return None


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a user would (serve run then shuts its cluster down); kill the group if it hangs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

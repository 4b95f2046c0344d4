"""The ways `make bench-peers` serves one checkpoint: bare `vllm serve`, Ray Serve LLM's
OpenAI app, and ours (the vllm engine behind our ingress). Each runs as a process group
of its own on 127.0.0.1 and is stopped, with any Ray it started, before the next starts,
so every side has the machine to itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx
import yaml
from workload import LLM as NAME

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
READY_TIMEOUT_S = 900  # vLLM's torch.compile on 2 CPU cores takes minutes
STOP_TIMEOUT_S = 60


@dataclass
class Side:
    """One row's server: how it starts, and what it was told beyond its defaults."""

    label: str
    kind: str  # "vllm", "ray-serve-llm" or "ours"
    command: list[str]
    port: int
    uses_ray: bool
    settings: dict = field(default_factory=dict)  # what this row sets beyond the side's defaults

    @property
    def slug(self) -> str:
        """The label as a file name, for its log and results."""
        return "".join(c if c.isalnum() else "_" for c in self.label)


def bare_vllm(bin_dir: Path, checkpoint: str, port: int, label: str, **settings) -> Side:
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in settings.items()]
    command = [str(bin_dir / "python"), str(HERE / "vllm_cli.py"), "serve", checkpoint,
               "--served-model-name", NAME, "--host", "127.0.0.1", "--port", str(port), *flags]
    return Side(label, "vllm", command, port, uses_ray=False, settings=settings)


def ray_serve_llm(bin_dir: Path, checkpoint: str, port: int, label: str, **settings) -> Side:
    command = [str(bin_dir / "python"), str(HERE / "rayllm.py"), checkpoint, NAME, str(port),
               json.dumps(settings)]
    return Side(label, "ray-serve-llm", command, port, uses_ray=True, settings=settings)


def ours(bin_dir: Path, checkpoint: str, port: int, label: str, max_ongoing_requests: Optional[int] = None,
         **settings) -> Side:
    """serve_config.yaml's router and llm applications, the llm on the vllm engine and the
    checkpoint; `settings` are llm args (vllm_kwargs among them)."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    router = next(a for a in config["applications"] if a["name"] == "router")
    llm = next(a for a in config["applications"] if a["name"] == NAME)
    options = {"max_ongoing_requests": max_ongoing_requests} if max_ongoing_requests else {}
    llm = {**llm, "args": {"source": checkpoint, "engine": "vllm", "device": "auto", **settings},
           "deployments": [{**llm["deployments"][0], **options}]}
    config = {**config, "http_options": {"host": "127.0.0.1", "port": port}, "applications": [router, llm]}
    path = Path(tempfile.mkdtemp(prefix="peers-")) / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [str(bin_dir / "python"), "-m", "serve_app.launch", str(path)]
    return Side(label, "ours", command, port, uses_ray=True, settings={**settings, **options})


class Running:
    """A side's server from start to ready (a one-token completion answers) to stopped."""

    def __init__(self, side: Side, bin_dir: Path, log_dir: Path):
        self.side, self.base_url, self.bin_dir = side, f"http://127.0.0.1:{side.port}", bin_dir
        self.log_path = log_dir / f"{side.slug}.log"
        self.started_s: float = 0.0

    def __enter__(self) -> "Running":
        # A Ray of its own: the launcher starts one when no live cluster is recorded.
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        began = time.perf_counter()
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.side.command, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.started_s = time.perf_counter() - began
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        body = {"model": NAME, "prompt": "Hello", "max_tokens": 1}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.side.label} exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.post(f"{self.base_url}/v1/completions", json=body, timeout=30).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise TimeoutError(f"{self.side.label} did not answer within {READY_TIMEOUT_S} s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(STOP_TIMEOUT_S)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.side.uses_ray:  # what the side started (replicas, vLLM's engine core) goes with it
            subprocess.run([str(self.bin_dir / "ray"), "stop", "--force"], capture_output=True)
        self.log.close()


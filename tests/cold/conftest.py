"""The cold tier's `make run`: the default config on this machine's real CPU count, from cold,
shared by the tier's modules (one launch, as a user makes one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import EMBEDDER, LLM, RERANKER, ROOT, free_port, load_config, wait_until, with_state_file

OPERATOR_KEY = "sk-cold-operator"


class Laptop:
    """`make run` of the tier's config, as a user runs it. Unpacks as (base_url, client, log);
    `stop(sig)` stops it as a user would (SIGINT: Ctrl-C; SIGKILL: kill -9 of everything),
    and `start()` starts it again on the same config and state file."""

    def __init__(self, home: Path, config_path: Path, port: int):
        self.home, self.config_path, self.log_path = home, config_path, home / "make-run.log"
        self.state_path = home / "state.db"
        self.base_url = f"http://127.0.0.1:{port}"
        # An operator's admin key in the environment, as docs/api.md tells a shared server's operator
        # to set: the dashboard's key panels need keys made through /api/keys, which only it may make.
        self.client = httpx.Client(base_url=self.base_url, timeout=60,
                                   headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        self.launcher = None

    def __iter__(self):
        return iter((self.base_url, self.client, self.log_path))

    def start(self) -> None:
        log = open(self.log_path, "a")
        env = {**os.environ, "SMMF_API_KEYS": f"{OPERATOR_KEY}:admin"}
        # SIGINT as a terminal leaves it: `make test` runs this tier in the background, where the
        # shell has the tier ignore SIGINT, and an ignored signal stays ignored across exec.
        self.launcher = subprocess.Popen([sys.executable, "-m", "serve_app.launch", str(self.config_path)], cwd=ROOT,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        log.close()
        # 600 s: beside `make test`'s other lanes on a slow day this machine ran ten and more runnable
        # processes per core, and the launcher may start Ray twice (serve_app/launch.py).
        wait_until(lambda: self.running() and all(self.statuses().get(m, {}).get("phase") == "ready"
                                                  for m in (LLM, EMBEDDER, RERANKER)),
                   600, "the default models did not all run")

    def running(self) -> bool:
        """True while the launcher runs; fails at once when it ended (its log says why)."""
        code = self.launcher.poll()
        assert code is None, f"make run ended with {code} before its models ran: {self.log_path.read_text()[-3000:]}"
        return True

    def statuses(self) -> dict[str, dict]:
        """Each model's status; none while the router comes up, whose status route may answer 503
        then (a clean clone's run of 2026-12-06 met one after 7.7 s, the manager not yet answering)."""
        answer = self.client.get("/api/models/status")
        return {m["model"]: m for m in answer.json()} if answer.status_code == 200 else {}

    def stop(self, sig: int = signal.SIGINT) -> bool:
        """True when `sig` alone stopped it (or it had ended); False when it had to be killed after 90 s."""
        if self.launcher.poll() is not None:
            return True
        os.killpg(self.launcher.pid, sig)  # Ctrl-C: serve run shuts its cluster down
        try:
            self.launcher.wait(timeout=90)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(self.launcher.pid, signal.SIGKILL)
            self.launcher.wait(timeout=30)
            return False


@pytest.fixture(scope="session")
def laptop(tmp_path_factory):
    from ray._private.utils import get_ray_address_file

    from serve_app.launch import live_local_cluster

    assert live_local_cluster()[0] is None, "a live local Ray cluster runs: this tier starts from cold"
    home = tmp_path_factory.mktemp("make-run")
    config = load_config()
    config["http_options"]["port"] = free_port()
    path = home / "serve_config.yaml"
    laptop = Laptop(home, path, config["http_options"]["port"])
    with_state_file(config, laptop.state_path)  # a file of the test's, not the user's ~/.smmf-serve
    path.write_text(yaml.safe_dump(config))
    # What a cluster that ended uncleanly leaves behind: `serve run` alone would wait on it.
    record = Path(get_ray_address_file(None))
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(f"127.0.0.1:{free_port()}")
    try:
        laptop.start()
        yield laptop
    finally:
        if laptop.launcher is not None:
            laptop.stop()
        laptop.client.close()

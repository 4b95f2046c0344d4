"""`smmf model ...`: list, start, stop, restart and update models, with a live line while one starts."""

import sys
import threading
import time
from typing import Optional

from serve_app.cli.client import IngressClient, message_of


def parse_params(items: list[str]) -> dict:
    import yaml  # here, not at the top: only --param needs it, and `smmf model list` starts faster

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param takes key=value, got '{item}'")
        params[key] = yaml.safe_load(value) if value else ""
    return params


def list_models(ingress: IngressClient) -> int:
    rows = [("NAME", "TYPE", "REPLICAS", "STATE", "PHASE")]
    rows += [(m["model"], m["worker_type"], str(m["running_replicas"]), m["status"], m["phase"])
             for m in ingress.statuses().values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def apply(ingress: IngressClient, body: dict, watch: Optional[str]) -> int:
    """Send one management call; while it runs, show the model's start phase as it changes."""
    result: dict = {}

    def send() -> None:
        try:
            r = ingress.send("POST", "/api/worker/apply", body)
            answer = r.json() if r.content_type.startswith("application/json") else None
            if not isinstance(answer, dict) or "success" not in answer:  # not the manager's (a bad key, say)
                raise SystemExit(f"error: {r.status_code}: {message_of(r)}")
            result.update(answer)  # a refused or failed change too: its message, exit status 1
        except SystemExit as exc:  # a clear message, raised on this thread
            result["error"] = exc.code

    call = threading.Thread(target=send)
    call.start()
    progress = Progress(watch) if watch and body.get("wait", True) else None
    while call.is_alive():
        call.join(0.5)
        if progress and call.is_alive():
            progress.show(ingress.statuses().get(watch))
    if progress:
        if result.get("success"):  # the phase it reached, which the last look may have missed
            progress.show(ingress.statuses().get(watch))
        progress.end()
    if "error" in result:
        raise SystemExit(result["error"])
    print(result["message"])
    return 0 if result["success"] else 1


class Progress:
    """One live line in a terminal (rewritten in place); one line per phase elsewhere."""

    def __init__(self, model: str):
        self.model, self.started, self.last = model, time.time(), None
        self.live = sys.stdout.isatty()

    def show(self, state: Optional[dict]) -> None:
        phase = state["phase"] if state else "applying"
        since = (state or {}).get("phase_since") or self.started
        if self.live:
            waited = f" ({state['message']})" if state and state["message"] and phase != "ready" else ""
            line = f"{self.model}: {phase}, {time.time() - since:.0f}s{waited}"
            print("\r\033[K" + line[:150], end="", flush=True)
        elif phase != self.last:
            print(f"{self.model}: {phase}", flush=True)
        self.last = phase

    def end(self) -> None:
        if self.live and self.last is not None:
            print()

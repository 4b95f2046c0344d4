"""`smmf model ...`: manage the running models through the ingress, like `dbgpt model`.

    smmf model list
    smmf model start NAME --type llm --source PATH [--param k=v ...]
    smmf model start NAME                    (a model stopped earlier, as it was)
    smmf model stop NAME [--forget]
    smmf model restart NAME
    smmf model update NAME --param k=v [--param k=v ...]

The address comes from --address or SMMF_ADDRESS (default http://127.0.0.1:8000),
an admin key from --api-key or SMMF_API_KEY.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from typing import NamedTuple, Optional

# A connection that does not open in this long is an ingress that is not there; a management
# call may wait for its model to load (apply_timeout_s, at most an hour).
CONNECT_S, READ_S = 10.0, 3700.0


def parse_params(items: list[str]) -> dict:
    import yaml  # here, not at the top: only --param needs it, and `smmf model list` starts faster

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param takes key=value, got '{item}'")
        params[key] = yaml.safe_load(value) if value else ""
    return params


class Answer(NamedTuple):
    status_code: int
    content_type: str
    text: str

    def json(self):
        return json.loads(self.text)


class IngressClient:
    """The ingress's management and status routes, over HTTP. The standard library's client,
    not httpx: importing httpx alone (about 150 ms) was half of what `smmf model list` took."""

    def __init__(self, address: str, api_key: Optional[str]):
        self.address, url = address, urllib.parse.urlsplit(address)
        self.connection = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.host, self.port, self.prefix = url.hostname, url.port, url.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def send(self, method: str, path: str, body: Optional[dict] = None) -> Answer:
        conn = self.connection(self.host, self.port, timeout=CONNECT_S)
        headers = dict(self.headers)
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        try:
            conn.connect()
            conn.sock.settimeout(READ_S)
            conn.request(method, self.prefix + path, body=data, headers=headers)
            r = conn.getresponse()
            return Answer(r.status, r.getheader("content-type", ""), r.read().decode(errors="replace"))
        except (OSError, http.client.HTTPException) as exc:
            raise SystemExit(f"error: cannot reach the smmf-serve ingress at {self.address}: {exc}") from None
        finally:
            conn.close()

    def request(self, method: str, path: str, body: Optional[dict] = None):
        r = self.send(method, path, body)
        if r.status_code >= 400:
            raise SystemExit(f"error: {r.status_code}: {_message(r)}")
        return r.json()

    def statuses(self) -> dict[str, dict]:
        return {m["model"]: m for m in self.request("GET", "/api/models/status")}


def _message(r: Answer) -> str:
    """The error text of any of the ingress's error shapes (OpenAI's, FastAPI's, DB-GPT's)."""
    try:
        body = r.json()
    except ValueError:
        return r.text
    if not isinstance(body, dict):
        return str(body)
    error = body.get("error")
    return (error.get("message") if isinstance(error, dict) else None) or body.get("detail") or body.get("message") or r.text


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
                raise SystemExit(f"error: {r.status_code}: {_message(r)}")
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


def state_command(ingress: IngressClient, command: str, file: str) -> int:
    if command == "export":
        backup = ingress.request("GET", "/api/state")
        with open(file, "w") as f:
            json.dump(backup, f, indent=1)
        print(f"{len(backup['entries'])} entries written to {file}")
        return 0
    with open(file) as f:
        done = ingress.request("POST", "/api/state", json.load(f))
    started = ", ".join(done["models_started"]) or "none"
    print(f"{sum(done['entries'].values())} entries imported; {done['keys']} keys held; models started: {started}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="smmf", description="Manage the models of an smmf-serve ingress.")
    parser.add_argument("--address", default=os.environ.get("SMMF_ADDRESS", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("SMMF_API_KEY"))
    sub = parser.add_subparsers(dest="group", required=True)
    model = sub.add_parser("model", help="list, start, stop, restart or update models").add_subparsers(
        dest="command", required=True
    )
    model.add_parser("list", help="name, type, replicas and state of every model")
    start = model.add_parser("start", help="start a model")
    start.add_argument("name")
    start.add_argument("--type", default=None, dest="worker_type",
                       help="llm (default), text2vec or reranker; a stopped model keeps its own")
    start.add_argument("--source", help="model path, package:<pkg>/<path> or hub id; not needed to start a stopped model again")
    for name in ("stop", "restart", "update"):
        p = model.add_parser(name, help=f"{name} a model")
        p.add_argument("name")
    model.choices["stop"].add_argument(
        "--forget", action="store_true", help="also forget its config (a stopped model can otherwise start again by name)"
    )
    for p in (start, model.choices["update"]):
        p.add_argument("--param", action="append", default=[], help="key=value (repeatable)")
    for p in model.choices.values():
        p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the change")
    for name in ("start", "restart", "update"):
        model.choices[name].add_argument(
            "--no-wait", action="store_true", help="return once the change is applied; `smmf model list` follows it"
        )
    state = sub.add_parser("state", help="back up or restore what the API made (keys as hashes)").add_subparsers(
        dest="command", required=True)
    state.add_parser("export", help="models, keys, counts and stored responses into FILE").add_argument("file")
    state.add_parser("import", help="FILE into this deployment; what it started is started").add_argument("file")
    args = parser.parse_args(argv)

    ingress = IngressClient(args.address, args.api_key)
    try:
        if args.group == "state":
            return state_command(ingress, args.command, args.file)
        if args.command == "list":
            return list_models(ingress)
        body = {"model": args.name, "timeout_s": args.timeout, "wait": not getattr(args, "no_wait", False)}
        if args.command == "start":
            params = {**({"source": args.source} if args.source else {}), **parse_params(args.param)}
            body.update(apply_type="start", worker_type=args.worker_type, params=params)
        elif args.command == "update":
            body.update(apply_type="update_params", params=parse_params(args.param))
        else:
            body.update(apply_type=args.command, delete_after=getattr(args, "forget", False))
        watch = args.name if args.command in ("start", "restart", "update") else None
        return apply(ingress, body, watch)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

"""`make run`: serve a config on a local Ray cluster, joining a live one or starting a new one.

`serve run` alone joins the cluster Ray last recorded on this machine (its
`ray_current_cluster` file). When that cluster ended uncleanly the record stays,
and `serve run` waits on a dead GCS, printing only connection warnings. So the
record is checked first: a GCS that answers is joined, anything else means a new
local cluster; either way the choice is printed. RAY_ADDRESS, when set, wins.

    python -m serve_app.launch [--fresh] [serve_config.yaml]

The router's state file (a SQLite file, serve_app/kv.py) holds the models started through
the API; the manager applies those the config does not name once Serve runs, and this says
which. `--fresh` moves the file aside first (keys made through the API go with it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

CONNECT_TIMEOUT_S = 2.0
# What `ray.init` raises when a new node's raylet has not registered with its GCS within 30 s,
# a deadline fixed in Ray's code (ray/_private/node.py). On a loaded machine a GCS answers that
# late: `make run` met it here beside the test lanes, its GCS at "RPC error: Deadline Exceeded".
RAY_START_TIMED_OUT = "The current node timed out during startup"
# Beside make test's other lanes two starts in a row missed it once (the raylet gave up on its
# dashboard agent's ports after 16 s each time); a third start is a minute more at most.
START_ATTEMPTS = 3


def live_local_cluster() -> tuple[Optional[str], Optional[str]]:
    """(address of a live local cluster, or None; the recorded address found, or None)."""
    from ray._private.utils import read_ray_address  # what `serve run` itself reads

    recorded = read_ray_address()
    if not recorded:
        return None, None
    host, _, port = recorded.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError):
        return None, recorded
    return recorded, recorded


def state_file(apps: list[dict]) -> Optional[str]:
    """The SQLite file the config's router keeps its state in, or None (the GCS)."""
    from serve_app.config.router import RouterArgs

    router = next((a for a in apps if a.get("name") == "router"), None)
    state = RouterArgs.model_validate((router or {}).get("args") or {}).state
    return os.path.abspath(os.path.expanduser(state.path)) if state.store == "sqlite" else None


def say_what_resumes(apps: list[dict], fresh: bool) -> None:
    """For a new cluster: what the state file adds to the config (its first manager applies
    it once Serve runs, lifecycle/resume.py), or with --fresh, the file moved aside so that
    nothing does."""
    from serve_app.kv import SqliteStore
    from serve_app.lifecycle import catalog

    path = state_file(apps)
    if path is None or not os.path.exists(path):
        return
    if fresh:
        aside = f"{path}.{int(time.time())}.bak"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.replace(path + suffix, aside + suffix)
        print(f"smmf-serve: --fresh: the state file moved aside to {aside}", flush=True)
        return
    resumed = sorted(set(catalog.running(SqliteStore(path))) - {a.get("name") for a in apps})
    if resumed:
        print(f"smmf-serve: {path} adds the models started through the API before: {', '.join(resumed)} "
              "(--fresh starts without them)", flush=True)


def main(argv: list[str]) -> None:
    import yaml

    fresh = "--fresh" in argv
    argv = [a for a in argv if a != "--fresh"]
    config = argv[0] if argv else "serve_config.yaml"
    with open(config) as f:
        apps = (yaml.safe_load(f) or {}).get("applications") or []
    env = dict(os.environ)
    new_cluster = False
    if env.get("RAY_ADDRESS"):
        print(f"smmf-serve: using the Ray cluster RAY_ADDRESS names ({env['RAY_ADDRESS']})", flush=True)
    else:
        live, recorded = live_local_cluster()
        if live:
            print(f"smmf-serve: joining the live local Ray cluster at {live}", flush=True)
            env["RAY_ADDRESS"] = live
        else:
            stale = f" (the one recorded at {recorded} does not answer: it ended uncleanly)" if recorded else ""
            print(f"smmf-serve: starting a new local Ray cluster{stale}", flush=True)
            env["RAY_ADDRESS"] = "local"
            new_cluster = True
    if new_cluster:  # only a new cluster's manager resumes (a running one already did)
        say_what_resumes(apps, fresh)
    elif fresh:
        print("smmf-serve: --fresh ignored: a running cluster holds the state file", flush=True)
    serve = os.path.join(os.path.dirname(sys.executable), "serve")
    sys.exit(serve_run([serve, "run", config], env, retry=new_cluster))


def serve_run(command: list[str], env: dict, retry: bool) -> int:
    """Run `serve run` to its end and return its exit code; again (START_ATTEMPTS in all) when it
    could not start a new Ray node in Ray's fixed 30 s (`retry`: only a cluster of its own; a joined one's
    failure is that cluster's). Its stderr passes through this process, read for that message.
    Ctrl-C reaches `serve run` from the terminal, as it would without this process between;
    a SIGTERM sent here is passed on."""
    # The child's SIGINT as it would have been without this process: ignored if it is ignored here.
    on_sigint = signal.SIG_IGN if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else signal.SIG_DFL
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, errors="replace",
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, on_sigint))
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child stops on it, then so does this
            signal.signal(signal.SIGTERM, lambda *_: child.terminate())
            timed_out = False
            for line in child.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                timed_out = timed_out or RAY_START_TIMED_OUT in line
            code = child.wait()
            if not (retry and timed_out and attempt < START_ATTEMPTS):
                return code
            print(f"smmf-serve: Ray's new node did not register within Ray's 30 s (a busy machine?); "
                  f"starting it once more ({attempt + 1} of {START_ATTEMPTS})", flush=True)
        return code
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


if __name__ == "__main__":
    main(sys.argv[1:])

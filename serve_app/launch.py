"""`make run`: serve a config on a local Ray cluster, joining a live one or starting a new one.

`serve run` alone joins the cluster Ray last recorded on this machine (its
`ray_current_cluster` file). When that cluster ended uncleanly the record stays,
and `serve run` waits on a dead GCS, printing only connection warnings. So the
record is checked first: a GCS that answers is joined, anything else means a new
local cluster; either way the choice is printed. RAY_ADDRESS, when set, wins.

    python -m serve_app.launch [serve_config.yaml]
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Optional

CONNECT_TIMEOUT_S = 2.0


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


def main(argv: list[str]) -> None:
    config = argv[0] if argv else "serve_config.yaml"
    env = dict(os.environ)
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
    serve = os.path.join(os.path.dirname(sys.executable), "serve")
    os.execve(serve, [serve, "run", config], env)


if __name__ == "__main__":
    main(sys.argv[1:])

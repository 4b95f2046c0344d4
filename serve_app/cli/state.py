"""`smmf state export|import FILE`: back up and restore what the API made."""

import json

from serve_app.cli.client import IngressClient


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

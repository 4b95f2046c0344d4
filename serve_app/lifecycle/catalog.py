"""Models stopped through the API, kept so that they can be started again by name.

Serve's config holds running applications only, so a stopped model's config
would be gone. DB-GPT's worker manager lists every model it can run
(`/models/supports`, `enabled: false` when stopped), and `dbgpt model start`
only starts a name from that list; so the manager keeps each stopped model's
last application config in the router's store (serve_app/kv.py), and `start` of that
name brings it back as it was.
"""

from __future__ import annotations

import json

from serve_app.kv import Store

PREFIX = "stopped-model/"
# Models started, updated or restarted through the API, as their application config: what a
# new Ray cluster (`make run` started again) brings back (manager.py's resume).
RUNNING = "api-model/"


def remember(store: Store, name: str, app_config: dict) -> None:
    store.put(PREFIX + name, json.dumps(app_config))


def forget(store: Store, name: str) -> None:
    store.delete(PREFIX + name)


def stopped(store: Store) -> dict[str, dict]:
    """Every stopped model's last application config, by model name."""
    return {name: json.loads(raw) for name, raw in store.items(PREFIX).items()}


def record_running(store: Store, name: str, app_config: dict) -> None:
    store.put(RUNNING + name, json.dumps(app_config))


def drop_running(store: Store, name: str) -> None:
    store.delete(RUNNING + name)


def running(store: Store) -> dict[str, dict]:
    """Every model started through the API and not stopped since, as its application config."""
    return {name: json.loads(raw) for name, raw in store.items(RUNNING).items()}

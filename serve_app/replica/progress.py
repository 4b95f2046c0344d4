"""How far a model's start has got: the phases a replica reports while it loads, and the
phase of a model as a whole, from Serve's replica states and those reports.

Serve knows a replica is waiting for resources (PENDING_ALLOCATION), starting
(STARTING) or running; only the replica knows it is converting or loading weights,
which takes minutes for a large model. A replica reports its phase into Ray's GCS
store (serve_app/kv.py) with the time it began; the ingress
reads them for `GET /api/models/status` and `smmf model start` shows them live.
"""

from __future__ import annotations

import json
import time
from typing import Optional

from serve_app.kv import gcs

PREFIX = "progress/"

QUEUED = "queued for resources"
STARTING = "replica starting"
CONVERTING = "converting weights"
LOADING = "loading weights"
READY = "ready"
ASLEEP = "asleep"  # scaled to zero replicas; the next request wakes it
FAILED = "failed"


def report(phase: str) -> None:
    """From inside a replica's constructor: this replica is now in `phase`."""
    try:
        from ray import serve

        context = serve.get_replica_context()
        key = f"{PREFIX}{context.app_name}/{context.replica_id.unique_id}"
    except Exception:  # not in a replica (an engine used in-process): nobody to tell
        return
    gcs.put(key, json.dumps({"phase": phase, "at": time.time()}))


def done() -> None:
    """From a replica whose constructor finished: Serve's own state says the rest."""
    try:
        from ray import serve

        context = serve.get_replica_context()
    except Exception:
        return
    gcs.delete(f"{PREFIX}{context.app_name}/{context.replica_id.unique_id}")


def reported(app: str) -> dict[str, dict]:
    """{replica id: {phase, at}} of an application's replicas that reported a phase."""
    return {replica_id: json.loads(raw) for replica_id, raw in gcs.items(f"{PREFIX}{app}/").items()}


def forget_gone(app: str, reports: dict[str, dict], live_replica_ids: set[str]) -> None:
    """Drop the reports of replicas Serve no longer lists (started, replaced or stopped)."""
    for replica_id in set(reports) - live_replica_ids:
        gcs.delete(f"{PREFIX}{app}/{replica_id}")


def phase_of(status: str, running: int, replicas: tuple[tuple[str, str, bool], ...], deployed_at: float,
             reports: dict[str, dict], resources_short: bool) -> tuple[str, Optional[float]]:
    """(phase, when it began) of a model: ready once a replica runs; else the furthest of its
    starting replicas, the phase a replica reported winning over Serve's own state. A
    STARTING replica Ray has not given a process yet is queued when no node has free what
    it needs, and is starting otherwise (its process is on its way)."""
    if status == "DEPLOY_FAILED":
        return FAILED, None
    if running:
        return READY, None
    order = [QUEUED, STARTING, CONVERTING, LOADING]
    best, since = None, deployed_at
    for replica_id, state, placed in replicas:
        if replica_id in reports and state == "STARTING":
            phase, at = reports[replica_id]["phase"], reports[replica_id]["at"]
        else:
            phase, at = (QUEUED if not placed and resources_short else STARTING), deployed_at
        if phase in order and (best is None or order.index(phase) > order.index(best)):
            best, since = phase, at
    return best or QUEUED, since

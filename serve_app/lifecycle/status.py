"""A model's state as Serve reports it, and how far its start has got, for
`GET /api/models/status` (routes.py)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel

from serve_app.lifecycle.placement import node_type_for
from serve_app.replica import progress
from serve_app.serving.registry import ModelEntry


class ModelStatus(BaseModel):
    model: str
    worker_type: str
    status: str  # the application's Serve status: RUNNING, DEPLOYING, DEPLOY_FAILED, ...
    running_replicas: int
    message: str  # Serve's own message (why a replica waits, why it failed)
    # queued for resources (or: waiting for a node of type X to be added), replica starting,
    # converting weights, loading weights, ready, asleep, failed
    phase: str
    phase_since: Optional[float] = None  # unix time the phase began, while the model is not ready

    @classmethod
    def of(cls, entry: ModelEntry, free: dict[str, float], launching: list[str] = (),
           node_types: Optional[dict[str, dict[str, float]]] = None) -> "ModelStatus":
        """`free`: the cluster's unreserved resources now (ray.available_resources());
        `launching`: the node types the autoscaler is adding; `node_types`: their resources."""
        reports = {}
        if not entry.running_replicas:  # only a starting model has phases worth reading
            reports = progress.reported(entry.name)
            progress.forget_gone(entry.name, reports, {replica_id for replica_id, *_ in entry.replicas})
        short = any(amount > free.get(resource, 0) for resource, amount in entry.needs.items())
        phase, since = progress.phase_of(entry.status, entry.running_replicas, entry.replicas, entry.created,
                                         reports, short)
        if phase == progress.QUEUED and (node_type := node_type_for(entry.needs, list(launching), node_types or {})):
            phase = f"waiting for a node of type {node_type} to be added"
        if entry.asleep and not entry.replicas:
            phase, since = progress.ASLEEP, None
        return cls(model=entry.name, worker_type=entry.worker_type, status=entry.status,
                   running_replicas=entry.running_replicas, message=entry.message, phase=phase, phase_since=since)

"""`GET /api/models/status`: each model's state as Serve reports it (smmf's own route)."""

from __future__ import annotations

from pydantic import BaseModel

from serve_app.registry import ModelEntry


class ModelStatus(BaseModel):
    model: str
    worker_type: str
    status: str  # the application's Serve status: RUNNING, DEPLOYING, DEPLOY_FAILED, ...
    running_replicas: int
    message: str

    @classmethod
    def of(cls, entry: ModelEntry) -> "ModelStatus":
        return cls(model=entry.name, worker_type=entry.worker_type, status=entry.status,
                   running_replicas=entry.running_replicas, message=entry.message)

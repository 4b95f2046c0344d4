"""`GET /api/models/status`: each model's Serve state and start phase, for `smmf model
list|start` (smmf's own route; errors are FastAPI's `{"detail": ...}`)."""

import ray
from fastapi import APIRouter, Request

from serve_app.http.boundary import BoundaryRoute
from serve_app.lifecycle.status import ModelStatus

router = APIRouter(route_class=BoundaryRoute)


@router.get("/api/models/status")
async def models_status(request: Request) -> list[ModelStatus]:
    free = ray.available_resources()
    return [ModelStatus.of(m, free) for m in await request.app.state.calls.registry.models(fresh=True)]

"""`GET /api/models/status`: each model's Serve state and start phase, for `smmf model
list|start` (smmf's own route; errors are FastAPI's `{"detail": ...}`)."""

import ray
from fastapi import APIRouter, Request

from serve_app.http.boundary import BoundaryRoute
from serve_app.lifecycle.placement import autoscaler_node_types, launching_node_types
from serve_app.lifecycle.status import ModelStatus

router = APIRouter(route_class=BoundaryRoute)


@router.get("/api/models/status")
async def models_status(request: Request) -> list[ModelStatus]:
    free, launching = ray.available_resources(), launching_node_types()
    types = autoscaler_node_types(request.app.state.node_types) if launching else {}
    return [ModelStatus.of(m, free, launching, types) for m in await request.app.state.calls.registry.models(fresh=True)]

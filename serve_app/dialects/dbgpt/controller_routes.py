"""DB-GPT's controller API (`/api/controller/*`), answered from Serve's state: Serve
registers, health-checks and removes replicas itself, so DB-GPT's register, deregister
and heartbeat calls are accepted and change nothing."""

from typing import Optional

from fastapi import APIRouter, Request

from serve_app.dialects.dbgpt import serving
from serve_app.dialects.dbgpt.protocol import ModelInstance
from serve_app.http.boundary import BoundaryRoute

router = APIRouter(route_class=BoundaryRoute)


def address_of(request: Request) -> tuple[str, int]:
    """Where clients reach this ingress, as DB-GPT's instances and supports report it."""
    return request.url.hostname or "127.0.0.1", request.url.port or 80


@router.get("/api/controller/models")
async def controller_models(
    request: Request, model_name: Optional[str] = None, healthy_only: bool = False
) -> list[ModelInstance]:
    models = await request.app.state.calls.registry.models(fresh=True)
    return serving.controller_instances(models, *address_of(request), model_name, healthy_only)


@router.post("/api/controller/models")
async def controller_register() -> bool:
    return True


@router.delete("/api/controller/models")
async def controller_deregister() -> bool:
    return True


@router.post("/api/controller/heartbeat")
async def controller_heartbeat() -> bool:
    return True

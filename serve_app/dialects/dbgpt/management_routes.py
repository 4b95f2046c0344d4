"""DB-GPT's model management (`/api/worker/models/*`, `/api/worker/apply`,
`/api/worker/parameter/descriptions`): which models can run, and starting, stopping,
restarting and updating them (admin scope).

The routes only validate and dispatch: a change goes to the manager deployment
(lifecycle/manager.py), whose handle is on the app's state, and its answer is shaped
by serving.py. Errors are FastAPI's `{"detail": ...}`; a refused or failed change is
a WorkerApplyOutput with its status, never a 200.
"""

from fastapi import APIRouter, Request, Response

from serve_app.config.worker_types import worker_type_of
from serve_app.config.workers import ARGS_BY_WORKER_TYPE
from serve_app.dialects.dbgpt import serving
from serve_app.dialects.dbgpt.controller_routes import address_of
from serve_app.dialects.dbgpt.protocol import (
    ParameterDescription,
    WorkerApplyOutput,
    WorkerApplyRequest,
    WorkerStartupRequest,
    WorkerSupportedModels,
    WorkerTypeParam,
)
from serve_app.http.boundary import BoundaryRoute
from serve_app.lifecycle import catalog

router = APIRouter(route_class=BoundaryRoute)


@router.get("/api/worker/models/supports")
async def supports(request: Request) -> list[WorkerSupportedModels]:
    stopped = {
        name: (worker_type_of(config), config.get("args") or {})
        for name, config in catalog.stopped(request.app.state.store).items()
        if worker_type_of(config)
    }
    running = await request.app.state.calls.registry.models()
    return serving.supported_models(running, stopped, *address_of(request))


@router.get("/api/worker/parameter/descriptions")
async def parameter_descriptions(
    request: Request, model: str, worker_type: WorkerTypeParam = "llm"
) -> list[ParameterDescription]:
    current = {m.name: m for m in await request.app.state.calls.registry.models()}.get(model)
    # Report what the running model uses as each default.
    args = current.args if current and current.worker_type == worker_type else None
    return serving.parameter_descriptions(ARGS_BY_WORKER_TYPE[worker_type], args)


@router.post("/api/worker/models/startup")
async def model_startup(request: Request, req: WorkerStartupRequest) -> WorkerApplyOutput:
    return await _apply(request, WorkerApplyRequest(apply_type="start", **req.model_dump(exclude={"host", "port"})))


@router.post("/api/worker/models/shutdown")
async def model_shutdown(request: Request, req: WorkerStartupRequest) -> WorkerApplyOutput:
    return await _apply(request, WorkerApplyRequest(apply_type="stop", **req.model_dump(exclude={"host", "port"})))


@router.post("/api/worker/apply")
async def apply(request: Request, req: WorkerApplyRequest) -> WorkerApplyOutput:
    return await _apply(request, req)


async def _apply(request: Request, req: WorkerApplyRequest) -> Response:
    result = await request.app.state.manager.apply.remote(req)
    request.app.state.calls.registry.invalidate()  # the next lookup sees the change at once
    return serving.management_result(result)

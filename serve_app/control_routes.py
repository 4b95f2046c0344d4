"""The control routes: which models run and can run, starting and stopping them, DB-GPT's
controller view of them, their progress, and API keys.

They reach no model, so they are plain FastAPI routes on the ingress's app, not methods
of the Ingress class: what they use (the registry, the manager and governor handles,
the keys) the Ingress puts on `app.state` when it starts. Like the model routes, they
only validate and dispatch; the answers' shapes are dbgpt_serving's.
"""

import asyncio
from typing import Optional

import ray
from fastapi import APIRouter, Request, Response

from serve_app import catalog, dbgpt_serving
from serve_app.auth import KeySpec
from serve_app.config import ARGS_BY_WORKER_TYPE
from serve_app.config_edits import worker_type_of
from serve_app.dbgpt_protocol import (
    ModelInstance,
    ParameterDescription,
    WorkerApplyOutput,
    WorkerApplyRequest,
    WorkerStartupRequest,
    WorkerSupportedModels,
    WorkerTypeParam,
)
from serve_app.errors import Conflict, NotFound, as_serve_error
from serve_app.governance import REFRESH_S
from serve_app.governor import KeyNotFound, KeyNotRevocable
from serve_app.status import ModelStatus

router = APIRouter()


def address_of(request: Request) -> tuple[str, int]:
    """Where clients reach this ingress, as DB-GPT's instances and supports report it."""
    return request.url.hostname or "127.0.0.1", request.url.port or 80


# --- DB-GPT worker API: what can run, and starting and stopping it (admin) -------------------


@router.get("/api/worker/models/supports")
async def supports(request: Request) -> list[WorkerSupportedModels]:
    stopped = {
        name: (worker_type_of(config), config.get("args") or {})
        for name, config in catalog.stopped().items()
        if worker_type_of(config)
    }
    return dbgpt_serving.supported_models(await request.app.state.registry.models(), stopped, *address_of(request))


@router.get("/api/worker/parameter/descriptions")
async def parameter_descriptions(
    request: Request, model: str, worker_type: WorkerTypeParam = "llm"
) -> list[ParameterDescription]:
    current = {m.name: m for m in await request.app.state.registry.models()}.get(model)
    # Report what the running model uses as each default.
    args = current.args if current and current.worker_type == worker_type else None
    return dbgpt_serving.parameter_descriptions(ARGS_BY_WORKER_TYPE[worker_type], args)


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
    status_code, output = await _call(request.app.state.manager.apply.remote(req))
    request.app.state.registry.invalidate()  # the next lookup sees the change at once
    return dbgpt_serving.management_result(status_code, output)


# --- DB-GPT controller API, answered from Serve's state --------------------------------------


@router.get("/api/controller/models")
async def controller_models(
    request: Request, model_name: Optional[str] = None, healthy_only: bool = False
) -> list[ModelInstance]:
    models = await request.app.state.registry.models(fresh=True)
    return dbgpt_serving.controller_instances(models, *address_of(request), model_name, healthy_only)


@router.post("/api/controller/models")
async def controller_register() -> bool:
    return True  # Serve registers replicas itself; accepted for DB-GPT workers, changes nothing


@router.delete("/api/controller/models")
async def controller_deregister() -> bool:
    return True  # Serve removes replicas itself


@router.post("/api/controller/heartbeat")
async def controller_heartbeat() -> bool:
    return True  # Serve health-checks replicas itself


# --- smmf's own ------------------------------------------------------------------------------


@router.get("/api/models/status")
async def models_status(request: Request) -> list[ModelStatus]:
    """Each model's Serve state and start phase, for `smmf model list|start`."""
    free = ray.available_resources()
    return [ModelStatus.of(m, free) for m in await request.app.state.registry.models(fresh=True)]


@router.get("/api/health")
async def health() -> dict:
    return {"status": "ok"}


# --- API keys (admin) ------------------------------------------------------------------------


@router.post("/api/keys", status_code=201)
async def create_key(request: Request, spec: KeySpec) -> dict:
    record, key = await _call(request.app.state.governor.create.remote(spec))
    # Answer once every ingress replica has read the keys again, so the new key works at once
    # wherever its first request lands.
    await asyncio.sleep(REFRESH_S + 0.1)
    return {"key": key, **record.public(), "note": "the key is shown once: store it now"}


@router.get("/api/keys")
async def list_keys(request: Request) -> list[dict]:
    return await _call(request.app.state.governor.report.remote())


@router.get("/api/keys/{key_id}")
async def key_usage(request: Request, key_id: str) -> dict:
    [report] = await _call(request.app.state.governor.report.remote(key_id))
    return report


@router.delete("/api/keys/{key_id}")
async def revoke_key(request: Request, key_id: str) -> dict:
    await _call(request.app.state.governor.revoke.remote(key_id))
    await request.app.state.governance.refresh()
    return {"id": key_id, "revoked": True}


async def _call(response):
    """Await a deployment call, turning what it raised into a ServeError with its status."""
    try:
        return await response
    except KeyNotFound as exc:
        raise NotFound(str(exc)) from exc
    except KeyNotRevocable as exc:
        raise Conflict(str(exc)) from exc
    except Exception as exc:
        raise as_serve_error(exc) from exc

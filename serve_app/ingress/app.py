"""The FastAPI app the ingress serves: every dialect's router, the access log around them.

`create_app(...)` takes what the routes use and puts it on `app.state`; the routes read
it from there (`request.app.state.calls`, `.manager`, `.governor`, `.admission`). The
Serve deployment (deployment.py) builds the app when its replica starts; a test builds
it over models running in-process (tests/inprocess) and drives the same app with no
Ray at all.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, FastAPI

from serve_app.batches import routes as batch_routes
from serve_app.config.batches import BatchSettings
from serve_app.dialects.anthropic import routes as anthropic_routes
from serve_app.dialects.dbgpt import controller_routes, management_routes, worker_routes
from serve_app.dialects.openai import adapter_routes
from serve_app.dialects.openai import routes as openai_routes
from serve_app.dialects.responses import routes as responses_routes
from serve_app.dialects.responses.store import ResponseStore
from serve_app.governance import routes as key_routes
from serve_app.http import docs
from serve_app.http.access_log import AccessLog
from serve_app.http.boundary import BoundaryRoute
from serve_app.kv import Store
from serve_app.lifecycle import routes as status_routes
from serve_app.serving.calls import ModelCalls
from serve_app.state import routes as state_routes

health = APIRouter(route_class=BoundaryRoute)


@health.get("/api/health")
async def health_check() -> dict:
    return {"status": "ok"}


ROUTERS = (
    openai_routes.router,
    responses_routes.router,
    batch_routes.router,
    batch_routes.uploads,
    anthropic_routes.router,
    worker_routes.router,
    controller_routes.router,
    management_routes.router,
    adapter_routes.router,
    status_routes.router,
    key_routes.router,
    state_routes.router,
    health,
    docs.router,
)


def create_app(**state: Any) -> FastAPI:
    # The routes are module-level functions: Serve pickles the app, and those travel by
    # reference (the ContextVar they use could not be pickled).
    # FastAPI's own /docs, /redoc and /openapi.json are off: ours (http/docs.py) pass the boundary.
    app = FastAPI(title="smmf-serve", description="DB-GPT's model cluster and the OpenAI API on Ray Serve.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    configure(app, **state)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(AccessLog)
    return app


def configure(app: FastAPI, *, calls: Optional[ModelCalls] = None, manager=None, governor=None, admission=None,
              response_store: Optional[ResponseStore] = None, store: Optional[Store] = None,
              node_types: Optional[dict] = None, max_body_bytes: int = 0, log_prompts: bool = False,
              files=None, batches=None, batch_runner=None, batch_settings: Optional[BatchSettings] = None) -> None:
    """What the routes use: `calls` (serving/calls.py), the manager and governor deployments'
    handles, `admission` (governance/admission.py; None: no keys, no limits), the stored
    responses of the Responses API, the store of what outlives Ray (serve_app/kv.py), the node types an autoscaler may add (RouterArgs), the
    largest body (0: no limit) and whether the access log shows prompts; the Batch API's files,
    batches, the batch runner's handle and its settings (serve_app/batches)."""
    app.state.calls, app.state.manager, app.state.governor, app.state.admission = calls, manager, governor, admission
    app.state.response_store, app.state.store, app.state.node_types = response_store, store, node_types or {}
    app.state.max_body_bytes, app.state.log_prompts = max_body_bytes, log_prompts
    app.state.files, app.state.batches, app.state.batch_runner = files, batches, batch_runner
    app.state.batch_settings = batch_settings or BatchSettings()

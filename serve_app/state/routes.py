"""`GET /api/state` and `POST /api/state` (admin scope): the state store's entries out as one
backup (backup.py), and back in. An import then has the governor read keys and counts again
and the manager start what the backup says was started through the API, as a restart would."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serve_app.http.boundary import BoundaryRoute
from serve_app.lifecycle import catalog
from serve_app.state.backup import StateBackup, export_state, import_state

router = APIRouter(route_class=BoundaryRoute)


class Imported(BaseModel):
    entries: dict[str, int]  # per prefix
    keys: int  # keys made through the API the governor now holds
    models_started: list[str]


@router.get("/api/state")
async def export(request: Request) -> StateBackup:
    # A store read is disk or GCS round trips per entry: off the ingress's event loop.
    return await run_in_threadpool(export_state, request.app.state.store)


@router.post("/api/state")
async def import_(request: Request, backup: StateBackup) -> Imported:
    manager = request.app.state.manager
    before = set(await manager.app_names.remote())
    counts = await run_in_threadpool(import_state, request.app.state.store, backup)
    keys = await request.app.state.governor.reload.remote()
    await manager.restore.remote()
    # What the backup brought back, whoever applied it: the manager's own check (every 5 s,
    # lifecycle/resume.py) may find the imported entries before `restore` does.
    backed = set(await run_in_threadpool(catalog.running, request.app.state.store))
    started = sorted((set(await manager.app_names.remote()) - before) & backed)
    request.app.state.calls.registry.invalidate()
    return Imported(entries=counts, keys=keys, models_started=started)

"""`/api/keys`: creating, listing, reporting on and revoking API keys (admin scope).

What they use, the governor's handle and this replica's admission, is on the app's
state (ingress/app.py). Errors are FastAPI's `{"detail": ...}` with their status.
"""

from fastapi import APIRouter, Request

from serve_app.config.keys import KeySpec
from serve_app.http.boundary import BoundaryRoute

router = APIRouter(route_class=BoundaryRoute)


@router.post("/api/keys", status_code=201)
async def create_key(request: Request, spec: KeySpec) -> dict:
    record, key = await request.app.state.governor.create.remote(spec)
    # It works at once on every ingress replica: one that does not hold it yet reads the keys
    # again before it refuses a key (governance/admission.py).
    return {"key": key, **record.public(), "note": "the key is shown once: store it now"}


@router.get("/api/keys")
async def list_keys(request: Request) -> list[dict]:
    return await request.app.state.governor.report.remote()


@router.get("/api/keys/{key_id}")
async def key_usage(request: Request, key_id: str) -> dict:
    [report] = await request.app.state.governor.report.remote(key_id)
    return report


@router.get("/api/keys/{key_id}/usage")
async def key_shares(request: Request, key_id: str) -> dict:
    """The key's usage, and per model its tokens and its share of the model's last minute: what
    it got when the fair queue (serve_app/fairness/) shared a full model among keys."""
    governor = request.app.state.governor
    [report] = await governor.report.remote(key_id)
    return {**report, "models": await governor.shares_of.remote(key_id)}


@router.delete("/api/keys/{key_id}")
async def revoke_key(request: Request, key_id: str) -> dict:
    await request.app.state.governor.revoke.remote(key_id)
    await request.app.state.admission.refresh()
    return {"id": key_id, "revoked": True}

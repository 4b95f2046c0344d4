"""A change to which models run, as the manager takes it, and its result.

DB-GPT's `/api/worker/apply` body is exactly this (its dialect's `WorkerApplyRequest`
is a `ModelChange`); `startup` and `shutdown` are changes too.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

from pydantic import BaseModel, ConfigDict, Field


class ModelChange(BaseModel):
    """With no model, the change applies to every model. `worker_type` left out means: llm
    for a new model, the stopped model's own type when one is started again, and any type
    otherwise."""

    model_config = ConfigDict(extra="ignore")

    model: Optional[str] = None
    worker_type: Optional[str] = None
    apply_type: Literal["start", "stop", "restart", "update_params"]
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: Optional[float] = Field(default=None, gt=0, le=3600)
    delete_after: bool = False  # with stop: forget the model too, as DB-GPT's shutdown does
    # False: answer 202 once the change is applied; GET /api/models/status follows it.
    wait: bool = True


class ChangeResult(NamedTuple):
    """What a change came to, with the HTTP status it is answered with (never 200 for a
    refusal or a failure: DB-GPT's RemoteWorkerManager reads only the status)."""

    status_code: int
    message: str
    success: bool
    timecost: float

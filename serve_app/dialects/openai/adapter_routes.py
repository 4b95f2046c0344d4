"""vLLM's routes for LoRA adapters at runtime, so its users' scripts work unchanged:
`POST /v1/load_lora_adapter` (`{"lora_name", "lora_path"}`) and `POST /v1/unload_lora_adapter`
(`{"lora_name"}`), with our `base_model` naming the base where more than one llm runs.
Admin scope, as every change to which models run.

Each is an update of the base's `lora_modules` through the manager, as a merge patch
(config_edits.merged_adapters: one adapter changes, the others stay), applied in place
through user_config: the base's replicas do not restart.
"""

from __future__ import annotations

import os
from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from serve_app.config.names import MODEL_NAME
from serve_app.dialects.openai.routes import OpenAIRoute
from serve_app.errors import InvalidRequest, ModelNotFound, NotFound
from serve_app.lifecycle.changes import ModelChange
from serve_app.serving.registry import ModelEntry

router = APIRouter(route_class=OpenAIRoute)  # errors in OpenAI's shape, as vLLM answers them


class LoadLoraAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora_name: str = Field(pattern=MODEL_NAME.pattern)
    lora_path: str = Field(min_length=1)
    base_model: Optional[str] = Field(default=None, description="the llm it runs on; needed where more than one runs")


class UnloadLoraAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora_name: str
    lora_int_id: Optional[int] = None  # vLLM's; the name is what identifies an adapter here
    base_model: Optional[str] = None


@router.post("/v1/load_lora_adapter")
async def load_lora_adapter(request: Request, req: LoadLoraAdapter) -> PlainTextResponse:
    models = await _models(request)
    if req.lora_name in models:
        taken = models[req.lora_name]
        raise InvalidRequest(f"The lora adapter '{req.lora_name}' has already been loaded." if taken.parent
                             else f"lora_name '{req.lora_name}' is already the name of a model")
    if not os.path.isfile(os.path.join(req.lora_path, "adapter_config.json")):
        raise InvalidRequest(f"lora_path '{req.lora_path}': no LoRA adapter there (no adapter_config.json)")
    base = _base(models, req.base_model)
    await _update(request, base, {req.lora_name: req.lora_path})
    return PlainTextResponse(f"Success: LoRA adapter '{req.lora_name}' added successfully.")


@router.post("/v1/unload_lora_adapter")
async def unload_lora_adapter(request: Request, req: UnloadLoraAdapter) -> PlainTextResponse:
    adapter = (await _models(request)).get(req.lora_name)
    if adapter is None or not adapter.parent or req.base_model not in (None, adapter.parent):
        raise NotFound(f"The lora adapter '{req.lora_name}' cannot be found.")
    await _update(request, adapter.parent, {req.lora_name: None})
    return PlainTextResponse(f"Success: LoRA adapter '{req.lora_name}' removed successfully.")


async def _models(request: Request) -> dict[str, ModelEntry]:
    return {m.name: m for m in await request.app.state.calls.registry.models(fresh=True)}


def _base(models: dict[str, ModelEntry], named: Optional[str]) -> str:
    llms = sorted(m.name for m in models.values() if m.worker_type == "llm" and not m.parent)
    if named is not None:
        if named not in llms:
            raise ModelNotFound(named, llms)
        return named
    if len(llms) != 1:
        raise InvalidRequest(f"base_model: {len(llms)} llms run here ({', '.join(llms) or 'none'}): name the base")
    return llms[0]


async def _update(request: Request, base: str, patch: dict[str, Optional[str]]) -> None:
    change = ModelChange(model=base, worker_type="llm", apply_type="update_params", params={"lora_modules": patch})
    result = await request.app.state.manager.apply.remote(change)
    request.app.state.calls.registry.invalidate()  # the next lookup sees the change at once
    if not result.success:  # the manager's refusal (400, 404, 409) or failure, with its status
        error = InvalidRequest(result.message)
        error.status_code = result.status_code
        raise error

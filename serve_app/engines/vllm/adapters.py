"""The vllm engine's LoRA adapters: vLLM's own (`enable_lora`, a `LoRARequest` per request),
named as our config names them.

vLLM knows an adapter by a number that must not be reused for other weights, so every load
takes a new one, and the same name loaded from other files replaces the old weights. What
vLLM refuses (missing files, another base's shapes, a rank above `max_lora_rank`) is an
AdapterError naming the adapter: a 400, and the base serves on. An adapter removed while a
request still uses it is loaded again by vLLM for that request (its LoRARequest carries the
path), so removing never fails a request that is running.
"""

from __future__ import annotations

import itertools
import logging
from typing import Optional

from serve_app.engines.base import AdapterError

logger = logging.getLogger("ray.serve")


class VLLMAdapters:
    def __init__(self, engine, enabled: bool, base: str):
        self.engine, self.enabled, self.base = engine, enabled, base
        self.held: dict = {}  # name -> vLLM's LoRARequest
        self._ids = itertools.count(1)

    async def load(self, name: str, path: str) -> None:
        if not self.enabled:
            raise AdapterError(f"LoRA adapter '{name}': the vllm engine of {self.base} was started without LoRA; "
                               "declare lora_modules in its config (or vllm_kwargs.enable_lora: true) and restart it")
        held = self.held.get(name)
        if held is not None and held.lora_path == path:
            return
        from vllm.lora.request import LoRARequest

        request = LoRARequest(lora_name=name, lora_int_id=next(self._ids), lora_path=path)
        try:
            await self.engine.add_lora(request)
        except Exception as exc:  # vLLM raises what the files raise: missing, another base, a rank too high
            raise AdapterError.refused(name, path, exc) from exc
        if held is not None:
            await self.engine.remove_lora(held.lora_int_id)
        self.held[name] = request
        logger.info("LoRA adapter %s loaded from %s (%d held)", name, path, len(self.held))

    async def unload(self, name: str) -> None:
        held = self.held.pop(name, None)
        if held is not None:
            await self.engine.remove_lora(held.lora_int_id)
            logger.info("LoRA adapter %s unloaded (%d held)", name, len(self.held))

    def request_for(self, name: Optional[str]):
        """The LoRARequest a generation names (None: the base)."""
        if name is None:
            return None
        held = self.held.get(name)
        if held is None:
            raise AdapterError(f"LoRA adapter '{name}' is not loaded on this replica")
        return held

"""The transformers engine's LoRA adapters, through peft: loaded into the base model in place,
several in one batch (peft's mixed-adapter batches: each row names its adapter, and
`__base__` runs a row on the base weights alone).

Everything here runs on the batching loop's thread, between two forward passes
(scheduler.py's chores): loading and deleting add and remove modules, which a forward
running beside them would trip on. An adapter Serve lets go (its LRU, deployments/llm.py)
leaves only once no row in the batch or its queue still uses it.
"""

from __future__ import annotations

import logging
from typing import Optional

from serve_app.engines.base import AdapterError

logger = logging.getLogger("ray.serve")

BASE = "__base__"  # peft's name, in a mixed batch, for a row without an adapter


class PeftAdapters:
    def __init__(self, base_model):
        self.model = base_model  # a PeftModel around it from the first adapter on
        self.loaded: dict[str, str] = {}  # name -> path
        self.leaving: set[str] = set()

    def load(self, name: str, path: str) -> None:
        self.leaving.discard(name)  # asked for again before it left: it stays
        if self.loaded.get(name) == path:
            return
        if name in self.loaded:  # the same name, other files: the new ones replace them
            self._delete(name)
        from peft import PeftModel

        try:
            if hasattr(self.model, "peft_config"):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
        except Exception as exc:  # peft raises what the files raise: missing, another base, bad shapes
            if name in getattr(self.model, "peft_config", {}):
                self.model.delete_adapter(name)
            raise AdapterError.refused(name, path, exc) from exc
        self.model.eval()
        self.loaded[name] = path
        logger.info("LoRA adapter %s loaded from %s (%d held)", name, path, len(self.loaded))

    def leave(self, name: str) -> None:
        if name in self.loaded:
            self.leaving.add(name)

    def sweep(self, in_use: set[Optional[str]]) -> None:
        """Delete the adapters that were let go and that no row uses any more."""
        for name in [n for n in self.leaving if n not in in_use]:
            self._delete(name)

    def forward_kwargs(self, adapters: list[Optional[str]]) -> dict:
        """What a forward pass over rows with these adapters takes (nothing without peft)."""
        if not hasattr(self.model, "peft_config"):
            return {}
        return {"adapter_names": [a or BASE for a in adapters]}

    def _delete(self, name: str) -> None:
        self.model.delete_adapter(name)
        self.loaded.pop(name, None)
        self.leaving.discard(name)
        if not self.model.peft_config:  # the last one: the plain model again, no LoRA layers left
            self.model = self.model.unload()
        elif self.model.active_adapter not in self.model.peft_config:
            # peft reads its active adapter's config on every forward, whatever the rows name.
            self.model.set_adapter(next(iter(self.model.peft_config)))
        logger.info("LoRA adapter %s unloaded (%d held)", name, len(self.loaded))

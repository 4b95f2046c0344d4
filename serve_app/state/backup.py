"""What `smmf state export` writes and `smmf state import` reads: our entries in the state store
(serve_app/kv.py) under the prefixes that must outlive a cluster, each value the JSON text it
is stored as. API keys are there as their SHA-256 hashes (KeyRecord): a backup never holds a
key that could be used."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serve_app.dialects.responses.store import PREFIX as RESPONSES
from serve_app.governance.governor import DAY_USAGE, KEYS
from serve_app.kv import Store
from serve_app.lifecycle import catalog

# Keys made through the API, their counts today, stopped models, models started through the
# API, stored Responses. Not the start phases of replicas (progress/): they belong to a cluster.
PREFIXES = (KEYS, DAY_USAGE, catalog.PREFIX, catalog.RUNNING, RESPONSES)


class StateBackup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["smmf-serve state"] = "smmf-serve state"
    version: Literal[1] = 1
    exported_at: float = Field(default_factory=time.time)
    entries: dict[str, str] = Field(description="store key: its value (JSON text)")

    @field_validator("entries")
    @classmethod
    def _ours(cls, entries: dict[str, str]) -> dict[str, str]:
        for key in entries:
            if not key.startswith(PREFIXES):
                raise ValueError(f"entry '{key}' is not state smmf-serve keeps (its prefixes: {', '.join(PREFIXES)})")
        return entries


def export_state(store: Store) -> StateBackup:
    entries = {}
    for prefix in PREFIXES:
        for key, value in store.items(prefix).items():
            entries[prefix + key] = value.decode()
    return StateBackup(entries=entries)


def import_state(store: Store, backup: StateBackup) -> dict[str, int]:
    """Write every entry (an entry of the same key is replaced; others stay); how many per prefix."""
    counts = dict.fromkeys(PREFIXES, 0)
    for key, value in backup.entries.items():
        store.put(key, value)
        counts[next(p for p in PREFIXES if key.startswith(p))] += 1
    return counts

"""How long and how many requests may wait for a model, per band (serve_app/fairness/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Band = Literal["interactive", "standard", "batch"]
BANDS: tuple[Band, ...] = ("interactive", "standard", "batch")  # first served first


class BandLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_queue: int = Field(default=64, ge=0, description="Requests of the band that may wait in one replica.")
    max_wait_s: float = Field(default=60.0, gt=0, description="How long one of them may wait for a place.")
    share_beside_higher: float = Field(default=1.0, gt=0, le=1, description=(
        "The share of the places the band's requests may hold while a higher band's came in the last minute: "
        "below 1, the band gives way to people's traffic by leaving the engine's batch small."))


class FairQueueArgs(BaseModel):
    """An llm replica's queue: requests beyond its `max_num_seqs` places wait here, the higher band
    first and, within a band, the key with the least weighted service on this model first (VTC)."""

    model_config = ConfigDict(extra="forbid")

    interactive: BandLimits = Field(default_factory=BandLimits)
    standard: BandLimits = Field(default_factory=BandLimits)
    # Batch lines may wait longer: the batch runner tries a refused line again after Retry-After.
    # A quarter of the places beside people's traffic: on a CPU (or a GPU near its compute limit) a batch of
    # 16 makes each step slower for the chat beside it (BENCHMARKS.md, "The Batch API").
    batch: BandLimits = Field(default_factory=lambda: BandLimits(max_queue=256, max_wait_s=300, share_beside_higher=0.25))
    reserved_places: int = Field(default=1, ge=0, description=(
        "Free places no key may take in a band while another key (or band) was here in the last minute, so "
        "that a key that comes to a full model starts at once; a key alone in one band takes every place."))
    prompt_weight: float = Field(default=1.0, ge=0, description="Service counted per prompt token.")
    completion_weight: float = Field(default=2.0, ge=0, description="Service counted per completion token.")

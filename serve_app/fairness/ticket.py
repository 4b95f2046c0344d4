"""What a request carries for the fair queue: its key, its band, and its key's weight.

The ingress fills it in from the request's API key (its band and weight) and vLLM's
`priority` field, which may lower a request's band below its key's, never raise it.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from serve_app.config.fairness import BANDS, Band

DEFAULT_KEY = "default"  # every request's key when the server has no API keys


class Ticket(BaseModel):
    key: str = DEFAULT_KEY
    band: Band = "standard"
    weight: float = Field(default=1.0, gt=0)


def band_for(key_band: Band, priority: Optional[int]) -> Band:
    """The band a request runs in. vLLM's `priority`: lower runs earlier, 0 is the default.
    Here 0 (or less: a request cannot rise above its key) is the key's band, and each step
    above 0 one band lower, down to `batch`."""
    steps = max(0, priority or 0)
    return BANDS[min(len(BANDS) - 1, BANDS.index(key_band) + steps)]

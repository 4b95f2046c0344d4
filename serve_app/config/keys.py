"""API keys as the operator configures them (the router's `api_keys`) and as `POST /api/keys`
creates them: what a key may do and its limits. How keys are checked and counted is
governance/'s."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field, SecretStr, model_validator

from serve_app.config.fairness import Band

Scope = Literal["inference", "admin"]


class Limits(BaseModel):
    requests_per_minute: Optional[int] = Field(default=None, gt=0)
    tokens_per_minute: Optional[int] = Field(default=None, gt=0)
    tokens_per_day: Optional[int] = Field(default=None, gt=0)

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.requests_per_minute, self.tokens_per_minute, self.tokens_per_day))

    @property
    def on_tokens(self) -> bool:
        return self.tokens_per_minute is not None or self.tokens_per_day is not None


class KeySpec(BaseModel):
    """What a key may do: the body of `POST /api/keys`, and part of a configured key."""

    name: str = Field(default="", max_length=200, description="A label, e.g. the team or app.")
    scope: Scope = "inference"
    models: Optional[list[str]] = Field(default=None, description="The models it may call; none: every model.")
    limits: Limits = Field(default_factory=Limits)
    band: Band = Field(default="standard", description=(
        "Its requests' priority when a model is full: interactive before standard before batch. A request may "
        "lower its own with vLLM's `priority` field, never raise it."))
    weight: float = Field(default=1.0, gt=0, le=1000, description=(
        "Its share of a full model against other keys of its band: tokens are served in the ratio of the weights."))


class ApiKey(KeySpec):
    """A key in the ingress's args. Prefer `key_sha256` (`serve config` prints args);
    `key` (plain) is still read, for configs written before hashes."""

    id: Optional[str] = None
    key: Optional[SecretStr] = None
    key_sha256: Optional[str] = Field(default=None, pattern="^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_form(self):
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give a key as exactly one of 'key_sha256' (preferred) and 'key'")
        return self

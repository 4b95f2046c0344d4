"""The AsyncEngineArgs of an `llm` application on the vllm engine, from its args (config/workers.py).

vllm is imported inside functions only (engine.py says why)."""

from __future__ import annotations

import logging

from serve_app.config.lora import vllm_lora_on
from serve_app.config.workers import LLMArgs
from serve_app.replica.dtype import for_engine as resolve_dtype

logger = logging.getLogger("ray.serve")


def engine_options(args: LLMArgs, directory: str, name: str, on_cpu: bool) -> dict:
    """AsyncEngineArgs for an `llm` application's args; `vllm_kwargs` has the last word."""
    # 'auto' means what it means for the transformers engine (replica/dtype.py). vLLM's own
    # 'auto' would run a float32 checkpoint (every converted GGUF) in bfloat16 on CPU, whose
    # greedy answers drift from the float32 ones (SmolLM2 no longer says Paris).
    dtype, why = resolve_dtype(args.dtype, directory, "cpu" if on_cpu else "cuda")
    logger.info("model=%s dtype %s: %s", name, dtype, why)
    options = {
        "model": directory,
        "served_model_name": name,
        "trust_remote_code": args.trust_remote_code,
        "dtype": dtype,
        "max_num_seqs": args.max_num_seqs,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        # Per-step scheduler stats feed the batch-size and queue-length metrics.
        "disable_log_stats": False,
    }
    if args.context_length:
        options["max_model_len"] = args.context_length
    if args.devices > 1:  # across the replica's placement group (deployments/llm.py), one worker a bundle
        options.update(tensor_parallel_size=args.tensor_parallel_size,
                       pipeline_parallel_size=args.pipeline_parallel_size, distributed_executor_backend="ray")
    if args.kv_cache_space_gib:
        # The same field VLLM_CPU_KVCACHE_SPACE sets on CPU, and on a GPU it replaces
        # gpu_memory_utilization's share with a fixed size.
        options["kv_cache_memory_bytes"] = args.kv_cache_space_gib * 2**30
    if vllm_lora_on(args.model_dump()):
        # vLLM's LoRA is set at start: with adapters declared (or asked for in vllm_kwargs), each
        # replica's batch holds up to max_loras of them, of rank up to vLLM's max_lora_rank (16
        # unless vllm_kwargs say otherwise). Without, the base runs without LoRA layers.
        options.update(enable_lora=True, max_loras=args.max_loras)
    return {**options, **args.vllm_kwargs}


def with_structured_outputs(options: dict, reasoning_parser: str = "none") -> dict:
    """vLLM's structured output as ours: llguidance (its "guidance" backend) with no free
    whitespace, unless vllm_kwargs say otherwise. Its default (xgrammar, whitespace allowed)
    let SmolLM2 write newlines between JSON fields until max_tokens. For a reasoning model,
    vLLM's own reasoning parser of the same name holds the grammar back until the thinking
    has ended, as ours does (engines/reasoning.py)."""
    from vllm.config import StructuredOutputsConfig

    chosen = options.get("structured_outputs_config", {"backend": "guidance", "disable_any_whitespace": True})
    if isinstance(chosen, dict):  # from YAML
        if reasoning_parser != "none":
            chosen = {"reasoning_parser": reasoning_parser, **chosen}
        chosen = StructuredOutputsConfig(**chosen)
    return {**options, "structured_outputs_config": chosen}

"""The engine's metrics, exported through Ray (`ray.serve.metrics`): they reach the
Ray dashboard and Prometheus with no server of our own. Inside a replica Serve adds
its deployment, replica and application tags; every series also carries `model`.
"""

from __future__ import annotations

import time
from typing import Optional

from ray.serve import metrics

_LATENCY_BOUNDARIES_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
_BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128]


class EngineMetrics:
    def __init__(self, model: str):
        def tagged(metric):
            # A new dict each time: inside a replica Serve adds its own tags to the dict it is given.
            metric.set_default_tags({"model": model})
            return metric

        self.prompt_tokens = tagged(
            metrics.Counter("smmf_llm_prompt_tokens", "Prompt tokens of finished requests.", tag_keys=("model",))
        )
        self.completion_tokens = tagged(
            metrics.Counter("smmf_llm_completion_tokens", "Completion tokens generated.", tag_keys=("model",))
        )
        self.time_to_first_token = tagged(
            metrics.Histogram(
                "smmf_llm_time_to_first_token_s",
                "Seconds from a request reaching the engine to its first token.",
                boundaries=_LATENCY_BOUNDARIES_S,
                tag_keys=("model",),
            )
        )
        self.time_per_output_token = tagged(
            metrics.Histogram(
                "smmf_llm_time_per_output_token_s",
                "Seconds per completion token after the first, per request.",
                boundaries=_LATENCY_BOUNDARIES_S,
                tag_keys=("model",),
            )
        )
        self.batch_size = tagged(
            metrics.Histogram(
                "smmf_llm_batch_size",
                "Sequences in each forward pass of the batching loop.",
                boundaries=_BATCH_BOUNDARIES,
                tag_keys=("model",),
            )
        )
        self.prefix_cache_queries = tagged(
            metrics.Counter("smmf_llm_prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
                            tag_keys=("model",))
        )
        self.prefix_cache_hits = tagged(
            metrics.Counter("smmf_llm_prefix_cache_hits", "Prompt tokens found in the prefix cache.",
                            tag_keys=("model",))
        )
        self.queue_length = tagged(
            metrics.Gauge(
                "smmf_llm_queue_length",
                "Requests waiting for a place in the batch (max_num_seqs reached).",
                tag_keys=("model",),
            )
        )

    def prefix_cache(self, queried_tokens: int, hit_tokens: int) -> None:
        """Prompt tokens looked up in the prefix cache, and those found (vLLM's prefix_cache_queries/hits)."""
        self.prefix_cache_queries.inc(queried_tokens)
        if hit_tokens:
            self.prefix_cache_hits.inc(hit_tokens)

    def first_token(self, seconds: float, adapter: Optional[str] = None) -> None:
        """A request's time to its first token; a LoRA adapter's request is counted under its name."""
        self.time_to_first_token.observe(seconds, _as(adapter))

    def record_request(self, prompt_tokens: int, completion_tokens: int, first_token_at: Optional[float],
                       adapter: Optional[str] = None) -> None:
        """A request's counts once it ends; `first_token_at` is its first token's perf_counter time.
        A LoRA adapter's request is counted under the adapter's name, as clients call it."""
        self.prompt_tokens.inc(prompt_tokens, _as(adapter))
        if completion_tokens:
            self.completion_tokens.inc(completion_tokens, _as(adapter))
        if first_token_at is not None and completion_tokens > 1:
            per_token = (time.perf_counter() - first_token_at) / (completion_tokens - 1)
            self.time_per_output_token.observe(per_token, _as(adapter))


def _as(adapter: Optional[str]) -> Optional[dict]:
    # A new dict each call (Serve adds its tags to the one it is given); None: the default tags.
    return {"model": adapter} if adapter else None

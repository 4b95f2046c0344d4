"""The `vllm` engine: vLLM's async engine (v1 `AsyncLLM`), whose own scheduler batches
every request in flight over a paged KV cache.

vllm is imported inside functions only: the rest of the project never needs it, and
vLLM starts its engine core in a spawned process that re-imports the modules of the
one that starts it, so importing this module must do nothing. Prompts, token counts
and the overflow rule come from `TokenizerPrompts`, as in the transformers engine;
stop strings are vLLM's own (it holds back a possible stop string's start and cuts
the match, as the transformers engine does), and it streams only the new text of each step (DELTA).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import AsyncIterator, Optional

from serve_app.config.workers import LLMArgs
from serve_app.engines.base import (
    SCHEMA_REFUSED,
    GenerationChunk,
    GenerationRequest,
    InvalidPromptError,
    LLMEngine,
    SamplingParams,
    TokenLogprob,
)
from serve_app.engines.metrics import EngineMetrics
from serve_app.engines.prompts import TokenizerPrompts
from serve_app.engines.vllm import translate
from serve_app.engines.vllm.adapters import VLLMAdapters
from serve_app.engines.vllm.options import engine_options, with_structured_outputs
from serve_app.replica.context import model_name
from serve_app.replica.sources import hf_format_dir

logger = logging.getLogger("ray.serve")


def _stats_logger(metrics: EngineMetrics):
    """A vLLM stat logger factory that turns its per-step scheduler stats into our metrics."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SchedulerStatsToMetrics(StatLoggerBase):
        def __init__(self, vllm_config, engine_index: int = 0):
            pass

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
            if scheduler_stats is None:
                return
            if scheduler_stats.num_running_reqs:
                metrics.batch_size.observe(scheduler_stats.num_running_reqs)
            metrics.queue_length.set(scheduler_stats.num_waiting_reqs)
            cache = getattr(scheduler_stats, "prefix_cache_stats", None)  # vLLM's own hit counters, per step
            if cache is not None and cache.queries:
                metrics.prefix_cache(cache.queries, cache.hits)

        def log_engine_initialized(self):
            pass

    return SchedulerStatsToMetrics


class VLLMEngine(TokenizerPrompts, LLMEngine):
    def __init__(self, args: LLMArgs):
        # vLLM's logging setup (a dictConfig) closes every handler in the process, Serve's
        # replica log file among them. Without it vLLM's loggers propagate to the root
        # logger: its warnings reach the worker's stderr, its info lines are dropped
        # (VLLM_CONFIGURE_LOGGING=1 in a runtime_env brings them back, and the problem).
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        directory = hf_format_dir(args.source, args.cache_dir, args.trust_remote_code)
        name = model_name(args.source)
        self.metrics = EngineMetrics(name)
        started = time.monotonic()
        self.tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=args.trust_remote_code)
        options = with_structured_outputs(engine_options(args, directory, name, current_platform.is_cpu()),
                                          args.reasoning_parser)
        self.engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(**options),
            stat_loggers=[_stats_logger(self.metrics)],
        )
        config = self.engine.vllm_config
        logger.info("vLLM loaded %s in %.1fs", directory, time.monotonic() - started)
        # vLLM's own limits, so the overflow rule and the engine agree on what fits.
        self.context_length = config.model_config.max_model_len
        self.max_num_seqs = config.scheduler_config.max_num_seqs
        self.default_max_new_tokens = args.max_new_tokens
        self.reasoning_parser = args.reasoning_parser  # whether the model thinks (prompts.py)
        self.adapters = VLLMAdapters(self.engine, enabled=bool(options.get("enable_lora")), base=name)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        arrived = time.perf_counter()
        prompt = self.render_prompt(request)
        prompt_ids = self.prompt_ids(prompt, request)
        params = request.params
        max_new = self._budget(len(prompt_ids), request)
        # vLLM generates at least one token: a prompt scored alone (max_new 0) drops it, as vLLM's own server does.
        sampling = translate.sampling_params(params, max(max_new, 1))
        request_id = f"{request.span_id or 'smmf'}-{uuid.uuid4().hex}"
        lora = self.adapters.request_for(request.adapter)  # None: the base
        # Token ids (a TokensPrompt), not text: counted once, here, and every vLLM since 0.11 takes them.
        stream = self.engine.generate({"prompt_token_ids": prompt_ids}, sampling, request_id, lora_request=lora)

        tokens = 0
        first = True
        first_token_at: Optional[float] = None
        try:
            async for output in stream:
                completion = output.outputs[0]
                if first and max_new == 0:
                    yield GenerationChunk(prompt=prompt, finish_reason="length", prompt_tokens=len(prompt_ids),
                                          prompt_logprobs=self._prompt_logprobs(output.prompt_logprobs, prompt_ids, params),
                                          logprobs=[] if params.logprobs is not None else None)
                    return
                tokens += len(completion.token_ids)
                if tokens and first_token_at is None:
                    first_token_at = time.perf_counter()
                    self.metrics.first_token(first_token_at - arrived, request.adapter)
                finish = None
                if output.finished:
                    finish = translate.FINISH.get(completion.finish_reason)
                    if finish is None:
                        raise RuntimeError(f"vLLM ended request {request_id}: {completion.finish_reason}")
                if completion.text or finish or first:
                    yield GenerationChunk(
                        text=completion.text,
                        prompt=prompt if first else None,
                        finish_reason=finish,
                        prompt_tokens=len(prompt_ids),
                        completion_tokens=tokens,
                        cached_tokens=getattr(output, "num_cached_tokens", None),  # vLLM's prefix-cache hits
                        logprobs=translate.logprobs(completion, params.logprobs) if params.logprobs is not None else None,
                        prompt_logprobs=self._prompt_logprobs(output.prompt_logprobs, prompt_ids, params) if first else None,
                        # vLLM's stop_reason: the stop string (or stop token id) that ended it.
                        stop_string=completion.stop_reason if isinstance(completion.stop_reason, str) else None,
                    )
                    first = False
        except Exception as e:
            if first and params.json_schema is not None and translate.refused_request(e):  # vLLM refused the schema
                raise InvalidPromptError(f"{SCHEMA_REFUSED}: {' '.join(str(e).split())}") from e
            raise
        finally:
            # Closed early (the consumer is gone): closing vLLM's generator aborts the
            # request there, which frees its place in the batch and its KV blocks.
            await stream.aclose()
            self.metrics.record_request(len(prompt_ids), tokens, first_token_at, request.adapter)

    def _prompt_logprobs(self, entries, prompt_ids: list[int], params: SamplingParams) -> Optional[list[TokenLogprob]]:
        return translate.prompt_logprobs(entries, prompt_ids, params, lambda t: self.tokenizer.decode([t]))

    async def load_adapter(self, name: str, path: str) -> None:
        await self.adapters.load(name, path)

    async def unload_adapter(self, name: str) -> None:
        await self.adapters.unload(name)

    async def check_health(self) -> None:
        # Raises once the engine core process has died; the replica is then replaced.
        await self.engine.check_health()

    async def shutdown(self) -> None:
        """Stop vLLM's engine core process (it would outlive a replica that only exits)."""
        self.engine.shutdown()



"""The `llm` worker type: one Serve deployment wrapping one inference engine.

Serve options (replicas, `max_ongoing_requests` in place of DB-GPT's semaphore,
`ray_actor_options` with GPUs) come from the application's `deployments:` section
in serve_config.yaml; the defaults below only apply where the config says nothing.
"""

from __future__ import annotations

import logging
import time
from typing import AsyncIterator

from ray import serve
from ray.serve import Application

from deployments.chunking import coalesce
from serve_app import tracing
from serve_app.config.workers import DEFAULT_ACTOR_OPTIONS, NOT_IN_PLACE_BY_ENGINE, LLMArgs
from serve_app.engines.base import AdapterError, GenerationChunk, GenerationRequest, LLMEngine
from serve_app.engines.reasoning import split_reasoning
from serve_app.fairness.metrics import QueueMetrics
from serve_app.fairness.queue import FairQueue
from serve_app.replica import progress
from serve_app.replica.context import model_name, placement, replica_id

# Serve routes this logger into each replica's log file, tagged with the request id.
logger = logging.getLogger("ray.serve")


def load_engine(args: LLMArgs) -> LLMEngine:
    if args.engine == "transformers":
        from serve_app.engines.transformers.engine import TransformersEngine

        return TransformersEngine(args)
    if args.engine == "vllm":
        from serve_app.engines.vllm.engine import VLLMEngine

        return VLLMEngine(args)
    if args.engine == "simulated":
        from serve_app.engines.simulated.engine import SimulatedEngine

        return SimulatedEngine(args)
    raise ValueError(f"unknown engine {args.engine!r}")


# max_ongoing_requests above max_num_seqs (16): what waits for a place waits in the replica's fair
# queue, in band and token-fair order, rather than in each caller's handle, first come first served.
@serve.deployment(name="llm", max_ongoing_requests=64, ray_actor_options=DEFAULT_ACTOR_OPTIONS["llm"])
class LLMWorker:
    def __init__(self, args: LLMArgs):
        self.name = model_name(args.source)
        self.args = args
        tracing.setup(f"smmf-serve/{self.name}")
        progress.report(progress.LOADING)  # GGUF sources report their conversion on the way
        self.engine = load_engine(args)
        progress.done()
        # Who gets the engine's max_num_seqs places when more requests are here (serve_app/fairness/).
        self.queue = FairQueue(self.engine.max_num_seqs, args.queue, QueueMetrics(self.name))

        # LoRA adapters (config/lora.py) through Serve's model multiplexing: a request for an
        # adapter comes with its name as the multiplexed model id; Serve loads it here on the
        # first such request, keeps `max_loras` (LRU) and routes to replicas that hold it.
        async def adapter(name: str) -> AdapterSlot:
            path = self._adapter_path(name)
            await self.engine.load_adapter(name, path)
            self.slots[name] = AdapterSlot(self.engine, name, path)
            return self.slots[name]

        self.slots: dict[str, AdapterSlot] = {}
        self.adapter = serve.multiplexed(max_num_models_per_replica=args.max_loras)(adapter)

    async def generate_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        logger.info("model=%s span_id=%s generate (%s, key %s)", self.name, request.span_id,
                    request.ticket.band, request.ticket.key)
        async with self.queue.turn(request.ticket) as meter:  # a place in the engine's batch
            async for chunk in self._generate(request, meter):
                yield chunk

    async def _generate(self, request: GenerationRequest, meter) -> AsyncIterator[GenerationChunk]:
        taken = time.time()
        if name := serve.get_multiplexed_model_id():
            path = self._adapter_path(name)  # Serve may still hold one that was removed since
            slot = await self.adapter(name)
            if slot.path != path:  # removed or replaced since Serve loaded it here (reconfigure)
                await self.engine.load_adapter(name, path)
                slot.path = path
            request = request.model_copy(update={"adapter": name})
        chunks = self.engine.generate(request)
        if self.args.reasoning_parser != "none" and request.separate_reasoning:
            chunks = split_reasoning(chunks, self.args.reasoning_parser)
        # Fewer, larger messages through the handle at GPU token rates (deployments/chunking.py).
        first_at = None
        async for chunk in coalesce(chunks, self.args.stream_interval_ms / 1000):
            meter.count(chunk.prompt_tokens, chunk.completion_tokens)  # the key's service, as it is produced
            now = time.time()
            if first_at is None:  # the first chunk is its first token: never held back
                first_at = now
                queue = max(0.0, taken - request.sent_at) if request.sent_at else None
                chunk = chunk.model_copy(update={"queue_s": queue, "prefill_s": now - taken})
            if chunk.finish_reason:
                chunk = chunk.model_copy(update={"decode_s": now - first_at})
                trace_replica(request, taken, first_at, now)
            yield chunk

    def _adapter_path(self, name: str) -> str:
        path = self.args.lora_modules.get(name)
        if path is None:
            raise AdapterError(f"'{name}' is not a LoRA adapter of {self.name}")
        return path

    async def count_token(self, prompt: str) -> int:
        return self.engine.count_tokens(prompt)

    async def tokenize(self, request: GenerationRequest, add_special_tokens: bool) -> tuple[list[int], int]:
        """(token ids, the model's context length)."""
        return self.engine.tokenize(request, add_special_tokens), self.engine.context_length

    async def detokenize(self, ids: list[int]) -> str:
        return self.engine.detokenize(ids)

    async def model_metadata(self) -> dict:
        return {
            "model": self.name,
            "context_length": self.engine.context_length,
            "chat_model": True,
            "metadata": {"max_new_tokens": self.args.max_new_tokens,
                         "replica_id": replica_id(), "placement": placement()},
        }

    async def reconfigure(self, user_config: dict) -> None:
        """In-place parameters (config/workers.py in_place_params) set through user_config: no restart."""
        before = self.args.lora_modules
        self.args = self.args.model_validate({**self.args.model_dump(), **user_config})
        for name, path in before.items():  # adapters removed or replaced: out of the engine now
            if self.args.lora_modules.get(name) != path and name in self.slots:
                self.slots[name].path = None  # a request for it again loads it again
                await self.engine.unload_adapter(name)
        self.engine.default_max_new_tokens = self.args.max_new_tokens
        if self.args.max_num_seqs != self.engine.max_num_seqs:
            if "max_num_seqs" in NOT_IN_PLACE_BY_ENGINE.get(self.args.engine, ()):
                # The management API restarts such a replica; a hand-edited user_config cannot.
                logger.warning("model=%s: %s keeps max_num_seqs=%d until its replica restarts",
                               self.name, self.args.engine, self.engine.max_num_seqs)
            else:
                self.engine.max_num_seqs = self.args.max_num_seqs
        self.queue.args = self.args.queue
        self.queue.resize(self.engine.max_num_seqs)
        logger.info("model=%s reconfigured %s", self.name, user_config)

    async def check_health(self) -> None:
        await self.engine.check_health()

    async def __del__(self):
        # Serve awaits this when it stops the replica: an engine with a process of its own stops it.
        if hasattr(self, "engine"):  # absent when the engine failed to load
            await self.engine.shutdown()


class AdapterSlot:
    """One adapter as Serve's multiplexing holds it: Serve calls `__del__` when its LRU lets
    it go, and the engine frees it once no request uses it."""

    def __init__(self, engine: LLMEngine, name: str, path: str):
        self.engine, self.name, self.path = engine, name, path

    async def __del__(self):
        await self.engine.unload_adapter(self.name)


def trace_replica(request: GenerationRequest, taken: float, first_at: float, done: float) -> None:
    """The replica's part of the request's trace (serve_app/tracing.py), once it is over."""
    if not tracing.enabled():
        return
    if request.sent_at:
        tracing.timed_span("queue", request.trace_context, request.sent_at, taken)
    tracing.timed_span("prefill", request.trace_context, taken, first_at)
    tracing.timed_span("decode", request.trace_context, first_at, done)


def parallel_options(args: LLMArgs) -> dict:
    """A replica spanning several GPUs reserves them as one placement group: a GPU bundle per
    engine worker (as Ray Serve LLM lays it out), on one node for tensor parallelism
    (STRICT_PACK), possibly across nodes for pipeline stages (PACK). The replica's own
    process sits in the first bundle and takes none of the GPUs: vLLM's Ray executor starts
    a worker on each bundle."""
    if args.devices == 1:
        return {}
    return {
        "placement_group_bundles": [{"GPU": 1, "CPU": 1} for _ in range(args.devices)],
        "placement_group_strategy": "PACK" if args.pipeline_parallel_size > 1 else "STRICT_PACK",
        "ray_actor_options": {**DEFAULT_ACTOR_OPTIONS["llm"], "num_gpus": 0},
    }


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    llm_args = LLMArgs.model_validate(args)
    return LLMWorker.options(**parallel_options(llm_args)).bind(llm_args)

"""The `transformers` engine: a causal LM whose concurrent requests share forward passes.

Requests go to a `BatchScheduler` (scheduler.py), one step loop
per replica that batches every request in flight; this module turns a request
into token ids and the loop's tokens back into a stream of incremental text,
applying stop strings on the way. Concurrency is bounded by the deployment's
`max_ongoing_requests`, and the batch by `max_num_seqs`, not by any lock here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import cached_property
from typing import AsyncIterator, Optional

from transformers import AutoModelForCausalLM, AutoTokenizer

from serve_app.config.workers import LLMArgs
from serve_app.engines.base import (
    AdapterError,
    GenerationChunk,
    GenerationRequest,
    InvalidPromptError,
    LLMEngine,
    TokenAlternative,
    TokenLogprob,
)
from serve_app.engines.detokenize import IncrementalDecoder
from serve_app.engines.metrics import EngineMetrics
from serve_app.engines.prompts import TokenizerPrompts
from serve_app.engines.reasoning import ThinkingWatch, opening_token_ids
from serve_app.engines.stop_strings import StopStrings
from serve_app.engines.transformers.peft_adapters import PeftAdapters
from serve_app.engines.transformers.prompt_scoring import score_prompt
from serve_app.engines.transformers.sampling import RowSampling, TokenScore
from serve_app.engines.transformers.scheduler import BatchScheduler, Sequence
from serve_app.engines.transformers.structured import JsonGrammars
from serve_app.replica.context import model_name, pick_device, set_threads
from serve_app.replica.dtype import for_engine as resolve_dtype
from serve_app.replica.sources import hf_format_dir

logger = logging.getLogger("ray.serve")


class TransformersEngine(TokenizerPrompts, LLMEngine):
    def __init__(self, args: LLMArgs):
        directory = hf_format_dir(args.source, args.cache_dir, args.trust_remote_code)
        self.device = pick_device(args.device)
        threads = set_threads(args.num_threads)
        dtype, why = resolve_dtype(args.dtype, directory, self.device)
        logger.info("model=%s dtype %s: %s", model_name(args.source), dtype, why)
        started = time.monotonic()
        self.tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=args.trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=dtype, trust_remote_code=args.trust_remote_code
        ).to(self.device)
        self.model.eval()
        logger.info("loaded %s on %s (%d threads) in %.1fs", directory, self.device, threads, time.monotonic() - started)
        self.context_length = args.context_length or int(
            getattr(self.model.config, "max_position_embeddings", 2048)
        )
        self.default_max_new_tokens = args.max_new_tokens
        eos = self.model.generation_config.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self._fatal: Optional[BaseException] = None
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:  # any id serves: padded positions are masked out
            pad_id = min(self._eos_ids) if self._eos_ids else 0
        vocab = self.model.get_output_embeddings().weight.shape[0]
        self.grammars = JsonGrammars(self.tokenizer, vocab, self._eos_ids)
        self.metrics = EngineMetrics(model_name(args.source))
        self.reasoning_parser = args.reasoning_parser
        self.adapters = PeftAdapters(self.model)
        self.scheduler = BatchScheduler(self.adapters, pad_id, args.max_num_seqs, self.metrics, self._on_error)

    @property
    def max_num_seqs(self) -> int:
        return self.scheduler.max_num_seqs

    @max_num_seqs.setter
    def max_num_seqs(self, value: int) -> None:
        # Read by the loop at each admission: a lower limit lets running rows finish.
        self.scheduler.max_num_seqs = value

    # --- generation --------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        arrived = time.perf_counter()
        prompt = self.render_prompt(request)
        prompt_ids = self.prompt_ids(prompt, request)
        seq = self._sequence(request, prompt_ids)
        prompt_logprobs = None
        if request.params.prompt_logprobs is not None:
            prompt_logprobs = await self._score(request, prompt_ids)
        if seq.max_new == 0:  # the prompt scored, nothing to generate
            yield GenerationChunk(prompt=prompt, finish_reason="length", prompt_tokens=len(prompt_ids),
                                  prompt_logprobs=prompt_logprobs, logprobs=[] if request.params.logprobs is not None else None)
            self.metrics.record_request(len(prompt_ids), 0, None, request.adapter)
            return
        self.scheduler.submit(seq)
        decoder = IncrementalDecoder(self.tokenizer)
        shown = StopStrings(request.params.stop, request.params.include_stop_str_in_output)
        scored: list[TokenLogprob] = []  # logprobs of tokens not yet yielded, when asked for
        first = True
        first_token_at: Optional[float] = None
        finish: Optional[str] = None
        try:
            while finish is None:
                item = await seq.queue.get()
                if isinstance(item, BaseException):
                    raise item
                done = item is None  # the loop finished this row
                if done:
                    new_text = decoder.flush()
                else:
                    token, score = item
                    new_text = decoder.add(token)
                    if score is not None:
                        scored.append(self._logprob(token, score))
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        self.metrics.first_token(first_token_at - arrived, request.adapter)
                text, stopped = shown.feed(new_text, final=done)
                ids = decoder.ids
                if stopped:
                    finish = "stop"
                    self.scheduler.close(seq)
                elif done:
                    ran_out = len(ids) >= seq.max_new and ids[-1] not in seq.stop_ids
                    finish = "length" if ran_out else "stop"
                if finish is not None or text or first:
                    yield GenerationChunk(
                        text=text,
                        prompt=prompt if first else None,
                        prompt_logprobs=prompt_logprobs if first else None,
                        finish_reason=finish,
                        prompt_tokens=len(seq.prompt_ids),
                        completion_tokens=len(ids),
                        logprobs=scored if request.params.logprobs is not None else None,
                        stop_string=shown.matched,
                    )
                    first, scored = False, []
        finally:
            self.scheduler.close(seq)  # the consumer is done or gone: free the row's slot
            self.metrics.record_request(len(seq.prompt_ids), len(decoder.ids), first_token_at, request.adapter)

    async def _score(self, request: GenerationRequest, ids: list[int]) -> list[TokenLogprob]:
        """The prompt's logprobs, from a pass of its own between two steps of the batching loop."""
        kwargs = self.adapters.forward_kwargs([request.adapter])
        top, decode = request.params.prompt_logprobs, lambda t: self.tokenizer.decode([t])
        return await self.scheduler.run_between_steps(lambda: score_prompt(self.adapters.model, kwargs, ids, top, decode))

    def _logprob(self, token: int, score: TokenScore) -> TokenLogprob:
        top = [TokenAlternative(t, self.tokenizer.decode([t]), lp) for t, lp in score.top]
        return TokenLogprob(token, self.tokenizer.decode([token]), score.logprob, top)

    def _sequence(self, request: GenerationRequest, prompt_ids: list[int]) -> Sequence:
        """The request as a row of the batching loop, not yet submitted (refused here if it does not fit)."""
        params = request.params
        vocab = self.grammars.vocab_size
        for token in params.logit_bias:
            if not 0 <= token < vocab:
                raise InvalidPromptError(f"logit_bias names token {token}; this model's tokens are 0 to {vocab - 1}")
        if request.adapter is not None and request.adapter not in self.adapters.loaded:
            raise AdapterError(f"LoRA adapter '{request.adapter}' is not loaded on this replica")
        matcher = self.grammars.matcher(params.json_schema) if params.json_schema is not None else None
        thinking = None
        if (matcher is not None or params.thinking_budget is not None) and self.reasoning_parser != "none":
            thinking = ThinkingWatch(self.tokenizer, self.reasoning_parser, self._opening_ids, params.thinking_budget)
        seq = Sequence(
            prompt_ids=list(prompt_ids),
            max_new=self._budget(len(prompt_ids), request),
            stop_ids=frozenset((set() if params.ignore_eos else self._eos_ids) | set(params.stop_token_ids)),
            sampling=RowSampling.create(params, matcher, thinking, tuple(prompt_ids)),
            loop=asyncio.get_running_loop(),
            adapter=request.adapter,
        )
        return seq

    @cached_property
    def _opening_ids(self) -> list[int]:
        return opening_token_ids(self.tokenizer) if self.reasoning_parser == "qwen3" else []

    async def load_adapter(self, name: str, path: str) -> None:
        await self.scheduler.run_between_steps(lambda: self.adapters.load(name, path))

    async def unload_adapter(self, name: str) -> None:
        await self.scheduler.run_between_steps(lambda: self.adapters.leave(name))

    def _on_error(self, exc: BaseException) -> None:
        if "CUDA" in str(exc):
            self._fatal = exc  # the device is gone: fail health checks too

    async def check_health(self) -> None:
        if self._fatal is not None:
            raise RuntimeError(f"engine failed: {self._fatal}")
        if not self.scheduler.alive:
            raise RuntimeError("the batching loop has stopped")

    async def shutdown(self) -> None:
        self.scheduler.stop()


"""The `simulated` engine: an LLM without weights that streams at a GPU's pace.

It exists to load the serving path (proxy, ingress, handles, streams) the way a GPU
engine does, on any machine: a token per stream every 1/`simulated_tokens_per_s`
seconds, after `simulated_ttft_ms` of "prefill" (and, when set, `simulated_prefill_ms_per_token`
for each prompt token not in its prefix cache, engines/simulated/prefix_cache.py), at most `max_num_seqs` streams at
once (more wait for a place, as in a real batch). Every stream in flight advances
on the same clock, one token a tick, as a GPU engine's batched decode steps do.

The text is deterministic and tokenizer-free: words from a fixed list, chosen by
the prompt (and the request's seed), one word a token; a token count is a count of
whitespace-separated words. Otherwise it behaves as the real engines do: the
context length and overflow rule, `max_new_tokens`, stop strings (never shown to
the client), cancellation when the consumer leaves, and the same metrics.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import AsyncIterator, Iterator, Optional

from serve_app.config.workers import LLMArgs
from serve_app.engines.base import AdapterError, GenerationChunk, GenerationRequest, InvalidPromptError, LLMEngine
from serve_app.engines.metrics import EngineMetrics
from serve_app.engines.prompts import CompletionBudget, check_template_kwargs, plain_chat_prompt
from serve_app.engines.simulated.prefix_cache import PrefixCache
from serve_app.engines.stop_strings import StopStrings
from serve_app.replica.context import model_name

WORDS = (
    "the model serves many requests at once and each stream gets its own tokens in order while "
    "a cluster of replicas shares the load across nodes so that every user sees an answer soon "
    "without waiting for others to finish their long stories about dragons rivers cities and stars"
).split()
DEFAULT_CONTEXT_LENGTH = 8192


class StepClock:
    """One tick every `interval_s` for all streams in flight; it runs only while someone waits."""

    def __init__(self, interval_s: float, on_tick):
        self.interval_s, self._on_tick = interval_s, on_tick
        self._tick: Optional[asyncio.Future] = None
        self._task: Optional[asyncio.Task] = None
        self.waiting = 0

    async def next(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._tick = loop.create_future()
            self._task = loop.create_task(self._run())
        self.waiting += 1
        try:
            await asyncio.shield(self._tick)
        finally:
            self.waiting -= 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.waiting:
            next_at += self.interval_s  # absolute times: no drift from the loop's own delays
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            tick, self._tick = self._tick, loop.create_future()
            self._on_tick(self.waiting)
            tick.set_result(None)


class SimulatedEngine(CompletionBudget, LLMEngine):
    def __init__(self, args: LLMArgs):
        time.sleep(args.simulated_load_s)  # a real engine's weights loading, in its constructor too
        self.context_length = args.context_length or DEFAULT_CONTEXT_LENGTH
        self.default_max_new_tokens = args.max_new_tokens
        self.max_num_seqs = args.max_num_seqs
        self.ttft_s = args.simulated_ttft_ms / 1000
        self.thinking_tokens = args.simulated_thinking_tokens
        self.adapters: dict[str, str] = {}  # LoRA adapters held: name -> path
        self.prefill_s_per_token = args.simulated_prefill_ms_per_token / 1000
        self.prefix_cache = PrefixCache(args.simulated_prefix_cache_tokens) if args.simulated_prefix_cache_tokens else None
        self._prefilling = asyncio.Lock()
        self.metrics = EngineMetrics(model_name(args.source))
        self.clock = StepClock(1 / args.simulated_tokens_per_s, self.metrics.batch_size.observe)
        self._running = 0
        self._waiting = 0
        self._slot_freed = asyncio.Condition()

    def render_prompt(self, request: GenerationRequest) -> str:
        # Its "template" reads one variable: whether a thinking model thinks.
        check_template_kwargs(request.chat_template_kwargs, {"enable_thinking"} if self.thinking_tokens else set())
        return request.prompt or "" if request.messages is None else plain_chat_prompt(request.messages, request.tools)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def load_adapter(self, name: str, path: str) -> None:
        # No weights to load: the adapters this replica holds, so routing can be tested.
        self.adapters[name] = path

    async def unload_adapter(self, name: str) -> None:
        self.adapters.pop(name, None)

    def tokenize(self, request: GenerationRequest, add_special_tokens: bool = True) -> list[int]:
        raise InvalidPromptError("the simulated engine has no token vocabulary to tokenize with")

    def detokenize(self, ids: list[int]) -> str:
        raise InvalidPromptError("the simulated engine has no token vocabulary to detokenize with")

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        arrived = time.perf_counter()
        if request.params.logit_bias:  # no vocabulary to bias: refused, not ignored
            raise InvalidPromptError("the simulated engine has no token vocabulary: logit_bias cannot apply")
        if request.params.stop_token_ids:
            raise InvalidPromptError("the simulated engine has no token vocabulary: stop_token_ids cannot apply")
        if request.params.logprobs is not None or request.params.prompt_logprobs is not None:
            raise InvalidPromptError("the simulated engine has no token vocabulary: logprobs cannot apply")
        if request.prompt_token_ids is not None:
            raise InvalidPromptError("the simulated engine has no token vocabulary: a prompt of token ids cannot apply")
        if request.params.json_schema is not None:  # its text is fixed: it cannot follow a schema
            raise InvalidPromptError("response_format: the simulated engine writes fixed text and cannot follow a schema")
        prompt = self.render_prompt(request)
        prompt_tokens = max(1, self.count_tokens(prompt))  # an empty prompt starts from one BOS token
        max_new = self._budget(prompt_tokens, request)
        if max_new == 0:  # OpenAI's echo with max_tokens 0: the prompt back, nothing written
            yield GenerationChunk(prompt=prompt, finish_reason="length", prompt_tokens=prompt_tokens)
            return
        thinks = self.thinking_tokens and request.chat_template_kwargs.get("enable_thinking", True)
        if request.adapter is not None and request.adapter not in self.adapters:
            raise AdapterError(f"LoRA adapter '{request.adapter}' is not loaded on this replica")
        # An adapter answers other words than its base (a prompt with its name in front).
        thought = min(self.thinking_tokens, request.params.thinking_budget or self.thinking_tokens) if thinks else 0
        words = _words(f"{request.adapter or ''}{prompt}", request.params.seed, thought)
        shown, made = StopStrings(request.params.stop, request.params.include_stop_str_in_output), 0
        first_token_at: Optional[float] = None
        await self._take_slot()
        try:
            cached = await self._prefill(prompt)
            finish = None
            while finish is None:
                if made:
                    await self.clock.next()
                made += 1
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                    self.metrics.first_token(first_token_at - arrived, request.adapter)
                text, stopped = shown.feed(next(words), final=made >= max_new)
                finish = "stop" if stopped else "length" if made >= max_new else None
                if finish or text or made == 1:
                    yield GenerationChunk(text=text, prompt=prompt if made == 1 else None, finish_reason=finish,
                                          prompt_tokens=prompt_tokens, completion_tokens=made, cached_tokens=cached,
                                          stop_string=shown.matched)
        finally:
            await self._give_slot()
            self.metrics.record_request(prompt_tokens, made, first_token_at, request.adapter)

    async def _prefill(self, prompt: str) -> Optional[int]:
        """`simulated_ttft_ms`, then the prompt tokens its prefix cache lacks, one prompt at a time;
        the tokens found in the cache (None without one)."""
        await asyncio.sleep(self.ttft_s)
        if not (self.prefix_cache or self.prefill_s_per_token):
            return None
        tokens = prompt.split()
        cached = None
        if self.prefix_cache:
            cached = self.prefix_cache.prefill(tokens)
            self.metrics.prefix_cache(len(tokens), cached)
        if self.prefill_s_per_token:
            async with self._prefilling:
                await asyncio.sleep((len(tokens) - (cached or 0)) * self.prefill_s_per_token)
        return cached

    async def _take_slot(self) -> None:
        """Wait for a place among `max_num_seqs` streams (read on every admission, so it changes live)."""
        async with self._slot_freed:
            self._waiting += 1
            self.metrics.queue_length.set(self._waiting - 1 if self._running >= self.max_num_seqs else 0)
            try:
                await self._slot_freed.wait_for(lambda: self._running < self.max_num_seqs)
            finally:
                self._waiting -= 1
            self._running += 1

    async def _give_slot(self) -> None:
        async with self._slot_freed:
            self._running -= 1
            self.metrics.queue_length.set(max(0, self._waiting - 1))
            self._slot_freed.notify()

    async def check_health(self) -> None:
        return None  # nothing that can break: no device, no process of its own

    async def shutdown(self) -> None:
        return None


def _words(prompt: str, seed: Optional[int], thinking: int = 0) -> Iterator[str]:
    """The answer's tokens: the same prompt (and seed) gives the same words; `thinking` words
    in a think block first, each tag a token of its own, as a reasoning model writes them."""
    state = zlib.crc32(prompt.encode()) ^ (seed or 0)
    made = 0
    while True:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        word = " " + WORDS[state % len(WORDS)]
        if thinking and made == 0:
            yield "<think>"
        if thinking and made == thinking:
            yield "</think>\n\n"
        made += 1
        yield word

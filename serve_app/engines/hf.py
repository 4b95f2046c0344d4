"""The `transformers` engine: a causal LM run with `model.generate` and streamed.

Each request runs `generate` on its own thread (torch releases the GIL in its
kernels) and hands token ids to the event loop through a streamer; the async side
decodes, applies stop strings and yields incremental text. Concurrency is bounded
by the deployment's `max_ongoing_requests`, not here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import AsyncIterator, Optional

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from serve_app.config import LLMArgs
from serve_app.engine import GenerationChunk, GenerationRequest, LLMEngine, PromptTooLongError
from serve_app.sources import convert_gguf, local_dir

logger = logging.getLogger("ray.serve")


def pick_device(requested: str) -> str:
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or torch.cuda.is_available():
        return "cuda"
    return "cpu"


class _TokenStreamer(BaseStreamer):
    """Forwards each new token id from the generate thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self._loop, self._queue, self._prompt_seen = loop, queue, False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt ids
            self._prompt_seen = True
            return
        self._loop.call_soon_threadsafe(self._queue.put_nowait, value.reshape(-1).tolist())

    def end(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)


class _Cancelled(StoppingCriteria):
    """Lets the async side stop a running generate() at the next token."""

    def __init__(self) -> None:
        self.cancelled = False

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.cancelled, dtype=torch.bool, device=input_ids.device)


class TransformersEngine(LLMEngine):
    def __init__(self, args: LLMArgs):
        directory, gguf_file = local_dir(args.source, args.cache_dir)
        if gguf_file:
            directory = convert_gguf(directory, gguf_file, args.cache_dir, args.trust_remote_code)
        self.device = pick_device(args.device)
        dtype = {"auto": torch.float32 if self.device == "cpu" else torch.bfloat16}.get(args.dtype, args.dtype)
        started = time.monotonic()
        self.tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=args.trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=dtype, trust_remote_code=args.trust_remote_code
        ).to(self.device)
        self.model.eval()
        logger.info("loaded %s on %s in %.1fs", directory, self.device, time.monotonic() - started)
        self.context_length = args.context_length or int(
            getattr(self.model.config, "max_position_embeddings", 2048)
        )
        self.default_max_new_tokens = args.max_new_tokens
        eos = self.model.generation_config.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self._fatal: Optional[BaseException] = None

    # --- prompt and tokens -------------------------------------------------------

    def render_prompt(self, request: GenerationRequest) -> str:
        if request.messages is None:
            return request.prompt or ""
        if not self.tokenizer.chat_template:
            # Plain models: join turns the way base-model prompts usually read.
            return "".join(f"{m.role}: {m.content}\n" for m in request.messages) + "assistant:"
        return self.tokenizer.apply_chat_template(
            [m.model_dump() for m in request.messages], add_generation_prompt=True, tokenize=False
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _budget(self, prompt_tokens: int, request: GenerationRequest) -> int:
        room = self.context_length - prompt_tokens
        wanted = request.params.max_new_tokens or self.default_max_new_tokens
        if room <= 0 or (request.overflow == "error" and wanted > room):
            raise PromptTooLongError(
                f"the prompt has {prompt_tokens} tokens and asks for {wanted} more, "
                f"but the model's context length is {self.context_length} tokens"
            )
        return min(wanted, room)

    # --- generation --------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        prompt = self.render_prompt(request)
        # Chat templates already contain the BOS marker they need.
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=request.messages is None)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        max_new = self._budget(prompt_tokens, request)
        params = request.params
        sampling = params.temperature > 0
        eos_ids = sorted(self._eos_ids | set(params.stop_token_ids))
        queue: asyncio.Queue = asyncio.Queue()
        cancel = _Cancelled()
        loop = asyncio.get_running_loop()
        kwargs = dict(
            **{k: v.to(self.device) for k, v in inputs.items()},
            max_new_tokens=max_new,
            do_sample=sampling,
            eos_token_id=eos_ids or None,
            pad_token_id=self.tokenizer.pad_token_id or (eos_ids[0] if eos_ids else None),
            streamer=_TokenStreamer(loop, queue),
            stopping_criteria=StoppingCriteriaList([cancel]),
        )
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p or 1.0, top_k=params.top_k or 0)
        else:  # greedy: unset the sampling knobs the model's generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # handed to the consumer, never swallowed
                if "CUDA" in str(exc):
                    self._fatal = exc  # the device is gone: fail health checks too
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        thread = threading.Thread(target=run, name=f"generate-{request.span_id}", daemon=True)
        thread.start()

        ids: list[int] = []
        sent = 0  # characters of the answer already yielded
        first = True
        finish: Optional[str] = None
        try:
            while finish is None:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                done = item is None  # generate() returned
                if not done:
                    ids.extend(item)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                cut = _find_stop(text, params.stop, sent)
                if cut is not None:
                    text, finish = text[:cut], "stop"
                    cancel.cancelled = True
                elif done:
                    ran_out = len(ids) >= max_new and ids[-1] not in eos_ids
                    finish = "length" if ran_out else "stop"
                elif text.endswith("\ufffd"):
                    continue  # half of a multi-byte character: wait for the rest
                else:
                    text = text[: len(text) - _held_back(text, params.stop)]
                if finish is not None or len(text) > sent or first:
                    yield GenerationChunk(
                        text=text[sent:],
                        prompt=prompt if first else None,
                        finish_reason=finish,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=len(ids),
                    )
                    sent, first = max(sent, len(text)), False
        finally:
            cancel.cancelled = True  # the consumer is gone or done: free the thread

    def check_health(self) -> None:
        if self._fatal is not None:
            raise RuntimeError(f"engine failed: {self._fatal}")


def _find_stop(text: str, stops: list[str], start: int) -> Optional[int]:
    """Index where the earliest stop string begins, searching from the unsent tail."""
    hits = [i for s in stops if (i := text.find(s, max(0, start - len(s)))) != -1]
    return min(hits) if hits else None


def _held_back(text: str, stops: list[str]) -> int:
    """Characters at the end of `text` that might be the start of a stop string."""
    for n in range(max((len(s) for s in stops), default=0) - 1, 0, -1):
        if any(s.startswith(text[-n:]) for s in stops if len(text) >= n):
            return n
    return 0

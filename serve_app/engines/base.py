"""The engine contract: what a model deployment calls, and the typed objects it passes.

The ingress turns every HTTP dialect (DB-GPT's worker API, OpenAI's) into one
`GenerationRequest`; the `llm` deployment (deployments/llm.py) hands it to an
`LLMEngine`, which yields `GenerationChunk`s of new text. Engines live beside this
module: `transformers/` (its engine and what only it uses), `vllm.py` (vLLM), `simulated/`
(no weights); the modules here beside them serve more than one engine. The text2vec and reranker
deployments answer with `Embedded` and `Scored`. Everything here crosses a
deployment handle, so it is plain pydantic or a NamedTuple: pickled by Ray, typed
on both sides.
"""

from __future__ import annotations

import abc
from typing import Any, AsyncIterator, Literal, NamedTuple, Optional

from pydantic import BaseModel, Field, field_validator

from serve_app.fairness.ticket import Ticket


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    # Tool calls in Hugging Face's chat-template shape: [{"type": "function", "id",
    # "function": {"name", "arguments": dict}}]; and the call a "tool" message answers.
    tool_calls: Optional[list[dict[str, Any]]] = None
    tool_call_id: Optional[str] = None


# vLLM's rule: a temperature under this is greedy. Dividing logits by 1e-300 gives inf, and
# one row's inf would otherwise reach the sampler of the whole batch.
GREEDY_BELOW = 1e-5


class SamplingParams(BaseModel):
    """What every dialect's request becomes; engines may rely on temperature being 0 (greedy)
    or at least GREEDY_BELOW."""

    temperature: float = 1.0
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    max_new_tokens: Optional[int] = None
    stop: list[str] = Field(default_factory=list)
    stop_token_ids: list[int] = Field(default_factory=list)
    include_stop_str_in_output: bool = False  # vLLM's: the stop string that ended the answer ends its text
    seed: Optional[int] = None
    logit_bias: dict[int, float] = Field(default_factory=dict)  # token id -> added to its logit
    # OpenAI's penalties on tokens the answer already has: each generated token's logit loses
    # presence_penalty once it has appeared, and frequency_penalty times its count (vLLM's rule).
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    # vLLM's (and Hugging Face's): each token of the prompt or the answer so far has its logit
    # divided by this when positive, multiplied when negative (1: off).
    repetition_penalty: float = Field(default=1.0, gt=0.0)
    # vLLM's: a sampled token's probability must be at least min_p times the likeliest's (0: off).
    min_p: float = Field(default=0.0, ge=0.0, le=1.0)
    # The answer must be JSON valid against this schema ({"type": "object"}: any JSON object).
    json_schema: Optional[dict[str, Any]] = None
    # Report each new token's log probability and this many likeliest alternatives (None: off).
    logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    # Score the prompt too: each prompt token's log probability and this many alternatives
    # (vLLM's prompt_logprobs; OpenAI's echo with logprobs). With it, max_new_tokens may be 0.
    prompt_logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    # vLLM's: generate past the model's end-of-text token, to max_new_tokens or a stop
    # (benchmarks use it for answers of one fixed length).
    ignore_eos: bool = False
    # A reasoning model thinks at most this many tokens: then its thinking is closed (the engine
    # writes the end tag itself) and the answer follows. Anthropic's thinking.budget_tokens.
    thinking_budget: Optional[int] = Field(default=None, ge=1)

    @field_validator("temperature")
    @classmethod
    def _tiny_is_greedy(cls, value: float) -> float:
        return 0.0 if value < GREEDY_BELOW else value


class GenerationRequest(BaseModel):
    """Exactly one of `prompt`, `prompt_token_ids` and `messages` is set (the dialects' request
    models check)."""

    prompt: Optional[str] = None
    prompt_token_ids: Optional[list[int]] = None  # a raw prompt given as the model's token ids
    messages: Optional[list[ChatMessage]] = None
    params: SamplingParams = Field(default_factory=SamplingParams)
    # Functions the model may call, in OpenAI's shape ({"type": "function", "function": {...}}).
    tools: Optional[list[dict[str, Any]]] = None
    # "truncate": lower max_new_tokens to what fits (DB-GPT); "error": refuse (OpenAI).
    overflow: Literal["truncate", "error"] = "truncate"
    # More variables for the chat template (Qwen3's enable_thinking); the engine refuses one
    # its template does not read.
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    # A reasoning model's thinking comes apart from the answer (chunks' `reasoning`); off for
    # a raw completion, which returns what the model wrote, as vLLM's does.
    separate_reasoning: bool = True
    span_id: str = ""
    # Who is talking (X-Session-Id, or the API's user field): `routing: session` keeps one
    # session on one replica (deployments/request_routers.py).
    session: str = ""
    sent_at: Optional[float] = None  # unix time the ingress sent it: the replica's queue wait starts here
    # The LoRA adapter the answer comes from (its name, loaded by the engine), or the base.
    adapter: Optional[str] = None
    # vLLM's `priority` (each step above 0 one band lower), and what the replica's fair queue
    # orders it by: its key, band and weight (serve_app/fairness/), set by the ingress.
    priority: int = 0
    ticket: Ticket = Field(default_factory=Ticket)
    trace_context: dict[str, str] = Field(default_factory=dict)  # W3C traceparent of the ingress's span


class Usage(BaseModel):
    """Token counts, in the keys both dialects answer with."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class TokenAlternative(NamedTuple):
    token_id: int
    token: str
    logprob: float


class TokenLogprob(NamedTuple):
    """A generated token's log probability under the model (before temperature, top-p,
    logit_bias or a grammar's mask, as vLLM reports them), with the likeliest alternatives."""

    token_id: int
    token: str
    logprob: Optional[float]  # None only for a prompt's first token: nothing comes before it
    top: list[TokenAlternative]
    rank: Optional[int] = None  # in the whole vocabulary (1: the likeliest); known for prompt tokens


class GenerationChunk(BaseModel):
    """One step of a generation. `text` is the new answer text since the previous chunk;
    `reasoning` the new thinking of a reasoning model (engines/reasoning.py), which is
    never part of `text`."""

    text: str = ""
    reasoning: str = ""
    prompt: Optional[str] = None  # the rendered prompt, on the first chunk only
    finish_reason: Optional[Literal["stop", "length"]] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # of completion_tokens, those spent thinking (its end tag included)
    cached_tokens: Optional[int] = None  # of prompt_tokens, those found in the prefix cache (None: not known)
    stop_string: Optional[str] = None  # on the last chunk: the request's stop string that ended it
    # Where the time went, measured by the llm deployment (deployments/llm.py): on the first
    # chunk, the wait before the replica took the request and the time to the first token;
    # on the last, the time from the first token to the end.
    queue_s: Optional[float] = None
    prefill_s: Optional[float] = None
    decode_s: Optional[float] = None
    logprobs: Optional[list[TokenLogprob]] = None  # the tokens this chunk adds, when asked for
    # On the first chunk, when the request scores its prompt: one per prompt token.
    prompt_logprobs: Optional[list[TokenLogprob]] = None

    def usage(self) -> Usage:
        total = self.prompt_tokens + self.completion_tokens
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, total_tokens=total)

    def followed_by(self, later: "GenerationChunk") -> "GenerationChunk":
        """This chunk and the next as one: both texts and logprobs, this one's prompt, the later counts and end."""
        logprobs = None if self.logprobs is None and later.logprobs is None else (self.logprobs or []) + (later.logprobs or [])
        return later.model_copy(update={"text": self.text + later.text, "reasoning": self.reasoning + later.reasoning,
                                        "prompt": self.prompt, "prompt_logprobs": self.prompt_logprobs,
                                        "logprobs": logprobs})


class Embedded(NamedTuple):
    """A text2vec call's answer. Its usage travels with it so that a request is one
    deployment call: two (work, then usage) would take two of the handle's queue
    places, and with a small `max_queued_requests` a request could refuse itself.
    Counted per text, so that the ingress can split a merged call's answer."""

    vectors: list[list[float]]
    token_counts: list[int]  # per input, special tokens included, before any cut
    context_length: int = 0  # the most tokens the model reads; longer inputs were cut to it
    queue_s: Optional[float] = None  # the wait before the replica took the call
    compute_s: Optional[float] = None  # the replica's time on it, batching wait included

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


class Scored(NamedTuple):
    """A reranker call's answer: one score per document, in input order."""

    scores: list[float]
    total_tokens: int
    queue_s: Optional[float] = None
    compute_s: Optional[float] = None


# How an engine's 400 for a schema it cannot compile begins: a response_format's, or a forced tool call's.
SCHEMA_REFUSED = "response_format (or a forced tool's parameters): the JSON schema does not compile"


class InvalidPromptError(ValueError):
    """A prompt the model cannot run; the caller gets a 400 with this message."""


class PromptTooLongError(InvalidPromptError):
    """The prompt (plus the requested completion) does not fit the model's context."""


class AdapterError(InvalidPromptError):
    """A LoRA adapter that cannot be served on this base: its files, architecture or rank."""

    @classmethod
    def refused(cls, name: str, path: str, exc: Exception) -> "AdapterError":
        """An engine's refusal to load it, named: the last line of what the engine raised."""
        problem = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
        return cls(f"LoRA adapter '{name}' ({path}) cannot be served on this model: {problem}")


class LLMEngine(abc.ABC):
    """What the `llm` deployment needs from an inference engine.

    An engine is built from the application's `LLMArgs` inside a replica and owns
    the model for the replica's life. Attributes the deployment reads:

    - `context_length`: tokens of prompt plus completion the model takes; the
      overflow rule (`GenerationRequest.overflow`) is applied against it.
    - `default_max_new_tokens`: the completion length of a request that sets none;
      the deployment sets it again when `max_new_tokens` changes in place.
    - `max_num_seqs`: the most requests decoded together. The deployment assigns
      it when `max_num_seqs` changes in place; an engine that sizes its batch once
      (`NOT_IN_PLACE_BY_ENGINE` in serve_app/config.py) is restarted instead.
    """

    context_length: int
    default_max_new_tokens: int
    max_num_seqs: int

    @abc.abstractmethod
    def render_prompt(self, request: GenerationRequest) -> str:
        """The prompt text: the request's prompt, or its messages through the chat template."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's tokenizer, without special tokens (DB-GPT's count_token)."""

    @abc.abstractmethod
    def tokenize(self, request: GenerationRequest, add_special_tokens: bool = True) -> list[int]:
        """The token ids the model reads for the request's prompt (or its messages, rendered)."""

    @abc.abstractmethod
    def detokenize(self, ids: list[int]) -> str:
        """The text of token ids (special tokens included)."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream one completion as an async generator of chunks.

        The first chunk carries the rendered `prompt` (it may have no text); every
        chunk carries the usage so far; the last has a `finish_reason`. A request
        that cannot run raises `InvalidPromptError` before the first chunk. Closing
        the generator early (the client left) must stop the request's work.
        """

    async def load_adapter(self, name: str, path: str) -> None:
        """Load a LoRA adapter under `name` (config/lora.py); requests then name it in `adapter`.
        Raise AdapterError when it cannot be served on this base."""
        raise AdapterError(f"the {type(self).__name__} does not take LoRA adapters")

    async def unload_adapter(self, name: str) -> None:
        """Free what `load_adapter` took; requests still running with it finish first."""

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Raise if the engine can no longer answer; Serve then replaces the replica."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Release what outlives the replica's Python objects (a process, a thread)."""

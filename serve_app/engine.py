"""The engine interface an `llm` deployment drives, and the typed objects it speaks.

The router turns every HTTP dialect (DB-GPT worker API, later OpenAI) into one
`GenerationRequest`; the deployment hands it to an engine, which yields
`GenerationChunk`s of incremental text. Engines live in `serve_app/engines/`.
"""

from __future__ import annotations

import abc
from typing import AsyncIterator, Awaitable, Literal, Optional

from pydantic import BaseModel, Field

# DB-GPT roles map onto the chat template's vocabulary; "view" is display-only.
ROLE_MAP = {"human": "user", "ai": "assistant", "user": "user", "assistant": "assistant", "system": "system"}
SKIPPED_ROLES = {"view"}


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class SamplingParams(BaseModel):
    temperature: float = 1.0
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    max_new_tokens: Optional[int] = None
    stop: list[str] = Field(default_factory=list)
    stop_token_ids: list[int] = Field(default_factory=list)
    seed: Optional[int] = None


class GenerationRequest(BaseModel):
    """Exactly one of `prompt` and `messages` is set (the router checks)."""

    prompt: Optional[str] = None
    messages: Optional[list[ChatMessage]] = None
    params: SamplingParams = Field(default_factory=SamplingParams)
    # "truncate": lower max_new_tokens to what fits (DB-GPT); "error": refuse (OpenAI).
    overflow: Literal["truncate", "error"] = "truncate"
    span_id: str = ""


class GenerationChunk(BaseModel):
    """One step of a generation. `text` is the new text since the previous chunk."""

    text: str = ""
    prompt: Optional[str] = None  # the rendered prompt, on the first chunk only
    finish_reason: Optional[Literal["stop", "length"]] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class InvalidPromptError(ValueError):
    """A prompt the model cannot run; the caller gets a 400 with this message."""


class PromptTooLongError(InvalidPromptError):
    """The prompt (plus the requested completion) does not fit the model's context."""


class LLMEngine(abc.ABC):
    """What an `llm` deployment needs from an inference engine."""

    context_length: int

    @abc.abstractmethod
    def render_prompt(self, request: GenerationRequest) -> str:
        """The prompt text: the request's prompt, or its messages through the chat template."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int: ...

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream a completion. Closing the iterator cancels the generation."""

    @abc.abstractmethod
    def check_health(self) -> Optional[Awaitable[None]]:
        """Raise if the engine can no longer answer (or return an awaitable that raises)."""

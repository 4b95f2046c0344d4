"""Response models of the OpenAI dialect (`/v1/*`); the requests are in openai_protocol.py."""

import time
import uuid
from typing import Literal, Optional, Union

from pydantic import BaseModel, Field, model_serializer

from serve_app.dialects.openai.tools import ToolCallDelta
from serve_app.engines.base import Usage
from serve_app.tools.definitions import ToolCall


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "smmf-serve"
    # vLLM's: a LoRA adapter's base model, null for a model of its own.
    parent: Optional[str] = None

    @classmethod
    def of(cls, entry) -> "ModelCard":
        """The card of a registry entry (serve_app.registry.ModelEntry)."""
        return cls(id=entry.name, created=int(entry.created), parent=entry.parent or None)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None  # OpenAI's: a string ("model_not_found") or null


class ErrorResponse(BaseModel):
    error: ErrorInfo


class _OmitWhenNone(BaseModel):
    """Keys OpenAI's answers carry only when they have something: tool calls, and a reasoning
    model's thinking (`reasoning_content`, vLLM's older name, and `reasoning`, its newer)."""

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler):
        data = handler(self)
        for key in ("tool_calls", "reasoning_content", "reasoning", "completion_tokens_details",
                    "prompt_tokens_details"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class AssistantMessage(_OmitWhenNone):
    role: Literal["assistant"] = "assistant"
    content: Optional[str]
    refusal: Optional[str] = None  # OpenAI's schema requires the key, null when the model did not refuse
    tool_calls: Optional[list[ToolCall]] = None
    reasoning_content: Optional[str] = None
    reasoning: Optional[str] = None


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class ChatUsage(_OmitWhenNone, Usage):
    prompt_tokens_details: Optional[PromptTokensDetails] = None  # where the engine knows its prefix cache's hits
    completion_tokens_details: Optional[CompletionTokensDetails] = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: Optional[list[int]]


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: Optional[list[ChatTokenLogprob]]
    refusal: Optional[list[ChatTokenLogprob]] = None


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one entry per token. An echoed prompt's
    tokens come first; its first token has no logprob and no alternatives (null), as OpenAI's."""

    tokens: list[str]
    token_logprobs: list[Optional[float]]
    top_logprobs: list[Optional[dict[str, float]]]
    text_offset: list[int]


class PromptLogprob(BaseModel):
    """vLLM's shape for one token at one place of the prompt (`prompt_logprobs`)."""

    logprob: float
    rank: Optional[int] = None
    decoded_token: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: Optional[ChatLogprobs] = None
    finish_reason: Optional[str]


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage


class Delta(BaseModel):
    """A streamed change: only what it carries, as OpenAI's are (the role on the first delta
    alone, `{}` on the last), never a key set to null."""

    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None
    reasoning_content: Optional[str] = None
    reasoning: Optional[str] = None
    tool_calls: Optional[list[ToolCallDelta]] = None

    @model_serializer(mode="wrap")
    def _only_what_it_carries(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    logprobs: Optional[ChatLogprobs] = None
    finish_reason: Optional[str] = None


class ChatCompletionChunk(BaseModel):
    """One SSE frame of a streamed chat; the usage frame has no choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Optional[ChatUsage] = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: Optional[CompletionLogprobs] = None
    finish_reason: Optional[str] = None
    # vLLM's: per prompt token (the first null) the token and the likeliest ones, by token id.
    prompt_logprobs: Optional[list[Optional[dict[str, PromptLogprob]]]] = None


class CompletionResponse(BaseModel):
    """A whole completion, or (object the same, as OpenAI's) one frame of a streamed one."""

    id: str = Field(default_factory=lambda: new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[CompletionChoice]
    usage: Optional[Usage] = None


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: Union[list[float], str]  # a base64 string with encoding_format "base64"


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: Optional[RerankDocument] = None


class RerankUsage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("rerank"))
    model: str
    results: list[RerankResult]
    usage: RerankUsage

"""Request and response models of the OpenAI dialect (`/v1/*`), with the Cohere/Jina
rerank body that LangChain and LlamaIndex send to `/v1/rerank`.

Field ranges follow OpenAI's API reference; a value out of range is a 400 in the
OpenAI error shape before anything reaches a model. Unknown fields are ignored
(the SDK and LangChain send fields we do not use).
"""

import time
import uuid
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams, Usage
from serve_app.openai_structured import ResponseFormat
from serve_app.openai_unsupported import NotDone


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _stop_list(v: Union[str, list[str], None]) -> list[str]:
    stops = [v] if isinstance(v, str) else list(v or [])
    if len(stops) > 4:
        raise ValueError("'stop' takes at most 4 sequences")
    return [s for s in stops if s]


class OpenAIMessage(_Request):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[dict[str, Any]], None] = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, v):
        for part in v if isinstance(v, list) else []:
            if part.get("type") != "text":
                raise ValueError(f"a content part of type '{part.get('type')}': these models take text only")
        return v

    def to_chat(self) -> ChatMessage:
        text = self.content
        if isinstance(text, list):  # content parts: keep the text ones, in order
            text = "".join(str(p.get("text", "")) for p in text if p.get("type") == "text")
        role = "system" if self.role == "developer" else self.role
        return ChatMessage(role=role, content=text or "")


class StreamOptions(_Request):
    include_usage: bool = False


class _SamplingFields(NotDone):
    model: str = Field(min_length=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    n: int = Field(default=1, ge=1, le=1, description="only n=1 is supported")
    logit_bias: Optional[dict[str, float]] = None
    response_format: Optional[ResponseFormat] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v):
        return _stop_list(v)

    @field_validator("logit_bias")
    @classmethod
    def _check_bias(cls, v):
        for token, bias in (v or {}).items():
            if not token.isdigit():
                raise ValueError(f"keys are token ids, got '{token}'")
            if not -100 <= bias <= 100:
                raise ValueError(f"a bias is between -100 and 100, got {bias} for token {token}")
        return v

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_tokens,
            stop=self.stop or [],
            seed=self.seed,
            logit_bias={int(t): b for t, b in (self.logit_bias or {}).items()},
            json_schema=self.response_format.schema_to_follow() if self.response_format else None,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingFields):
    messages: list[OpenAIMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)

    def to_generation(self, span_id: str) -> GenerationRequest:
        params = self.sampling()
        params.max_new_tokens = self.max_completion_tokens or self.max_tokens
        return GenerationRequest(
            messages=[m.to_chat() for m in self.messages], params=params, overflow="error", span_id=span_id
        )


class CompletionRequest(_SamplingFields):
    prompt: Union[str, list[str]]
    max_tokens: Optional[int] = Field(default=16, ge=1)  # OpenAI's default for completions
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("'prompt' must not be an empty list")
        return v

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    def to_generation(self, prompt: str, span_id: str) -> GenerationRequest:
        return GenerationRequest(prompt=prompt, params=self.sampling(), overflow="error", span_id=span_id)


class EmbeddingRequest(_Request):
    model: str = Field(min_length=1)
    input: Union[str, list[str]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = Field(default=None, ge=1)
    user: Optional[str] = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("'input' must not be empty")
        return v

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class RerankRequest(_Request):
    """The Cohere/Jina rerank body that LangChain and LlamaIndex send."""

    model: str = Field(min_length=1)
    query: str
    documents: list[Union[str, dict[str, Any]]] = Field(min_length=1)
    top_n: Optional[int] = Field(default=None, ge=1)
    return_documents: bool = False

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else str(d.get("text", "")) for d in self.documents]


# --- responses ---------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "smmf-serve"

    @classmethod
    def of(cls, entry) -> "ModelCard":
        """The card of a registry entry (serve_app.registry.ModelEntry)."""
        return cls(id=entry.name, created=int(entry.created))


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[Union[str, int]] = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Optional[str]


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[ChatChoice]
    usage: Usage


class Delta(BaseModel):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: Optional[str] = None


class ChatCompletionChunk(BaseModel):
    """One SSE frame of a streamed chat; the usage frame has no choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Optional[Usage] = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: Optional[str] = None


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

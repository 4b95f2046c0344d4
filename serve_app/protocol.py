"""Request and response models of DB-GPT's worker API (`/api/worker/*`).

DB-GPT clients 0.6-0.8 send extra keys (`round_index` in messages, a `context`
object, ...): every request model ignores unknown keys instead of answering 422.
Responses are built to the exact key sets those clients construct dataclasses from.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve_app.engine import ROLE_MAP, SKIPPED_ROLES, ChatMessage, GenerationRequest, SamplingParams

GENERATE_ERROR_PREFIX = "**LLMServer Generate Error, Please CheckErrorInfo.**: "


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WorkerMessage(_Request):
    """A chat message in either vocabulary: DB-GPT's (human/ai/system/view) or OpenAI's."""

    role: str
    content: Union[str, list[dict[str, Any]], None] = ""

    @field_validator("role")
    @classmethod
    def _known_role(cls, v: str) -> str:
        if v not in ROLE_MAP and v not in SKIPPED_ROLES:
            known = ", ".join(sorted(set(ROLE_MAP) | SKIPPED_ROLES))
            raise ValueError(f"unknown role '{v}'; expected one of: {known}")
        return v

    def text(self) -> str:
        # OpenAI content parts: keep the text parts, in order.
        if isinstance(self.content, list):
            return "".join(
                str(p.get("text", "")) for p in self.content if p.get("type") == "text"
            )
        return self.content or ""


class PromptRequest(_Request):
    model: str = Field(min_length=1)
    messages: Optional[list[WorkerMessage]] = None
    prompt: Optional[str] = None
    temperature: float = Field(default=0.5, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(default=None, gt=0.0, le=1.0)
    top_k: Optional[int] = Field(default=None, ge=0)
    max_new_tokens: Optional[int] = Field(default=None, gt=0, le=1_000_000)
    stop: Optional[Union[str, list[str]]] = None
    stop_token_ids: Optional[list[int]] = None
    context_len: Optional[int] = Field(default=None, gt=0)
    echo: bool = False
    span_id: Optional[str] = None
    context: Optional[dict[str, Any]] = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v):
        if isinstance(v, str):
            return [v] if v else []
        return [s for s in v if s] if v else []

    @model_validator(mode="after")
    def _has_input(self):
        if not self.messages and self.prompt is None:
            raise ValueError("either 'messages' (a non-empty list) or 'prompt' is required")
        return self

    def to_generation(self, span_id: str) -> GenerationRequest:
        messages = None
        if self.messages:
            messages = [
                ChatMessage(role=ROLE_MAP[m.role], content=m.text())
                for m in self.messages
                if m.role not in SKIPPED_ROLES
            ]
        return GenerationRequest(
            prompt=None if messages else self.prompt,
            messages=messages,
            params=SamplingParams(
                temperature=self.temperature,
                top_p=self.top_p,
                top_k=self.top_k,
                max_new_tokens=self.max_new_tokens,
                stop=self.stop or [],
                stop_token_ids=self.stop_token_ids or [],
            ),
            overflow="truncate",
            span_id=span_id,
        )


class EmbeddingsRequest(_Request):
    model: str = Field(min_length=1)
    input: list[str]
    # Set for a reranker model: the answer is [[score per input document]].
    query: Optional[str] = None
    span_id: Optional[str] = None


class CountTokenRequest(_Request):
    model: str = Field(min_length=1)
    prompt: str
    span_id: Optional[str] = None


class ModelMetadataRequest(_Request):
    model: str = Field(min_length=1)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ModelOutput(BaseModel):
    """DB-GPT's ModelOutput: these seven keys and no others (0.6 builds a dataclass from them)."""

    text: str
    error_code: int = 0
    incremental: bool = False
    model_context: Optional[dict[str, Any]] = None
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    metrics: Optional[dict[str, Any]] = None

    @classmethod
    def error(cls, reason: str) -> "ModelOutput":
        return cls(text=GENERATE_ERROR_PREFIX + reason, error_code=1)


class ModelMetadata(BaseModel):
    model: str
    context_length: int
    chat_model: bool = True
    is_function_calling_model: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class SupportedModel(BaseModel):
    model: str
    worker_type: str
    provider: str
    path: str
    path_exist: bool
    proxy: bool = False
    enabled: bool
    params: dict[str, Any]


class WorkerSupportedModels(BaseModel):
    host: str
    port: int
    models: list[SupportedModel]


WorkerTypeParam = Literal["llm", "text2vec", "reranker"]


class WorkerStartupRequest(_Request):
    """DB-GPT's body for /models/startup and /models/shutdown (host and port are ignored)."""

    host: Optional[str] = None
    port: Optional[int] = None
    model: str = Field(min_length=1)
    worker_type: str = "llm"
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: Optional[float] = Field(default=None, gt=0, le=3600)


class WorkerApplyRequest(_Request):
    """DB-GPT's /apply body; with no model it applies to every model."""

    model: Optional[str] = None
    worker_type: str = "llm"
    apply_type: Literal["start", "stop", "restart", "update_params"]
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: Optional[float] = Field(default=None, gt=0, le=3600)


class WorkerApplyOutput(BaseModel):
    message: str
    success: bool
    timecost: float = -1


class ModelInstance(BaseModel):
    """DB-GPT 0.6's ModelInstance: exactly these keys (its dataclass refuses others)."""

    model_name: str  # the worker key, "name@worker_type"
    host: str
    port: int
    weight: float = 1.0
    check_healthy: bool = True
    healthy: bool = False
    enabled: bool = True
    prompt_template: Optional[str] = None
    last_heartbeat: Optional[str] = None

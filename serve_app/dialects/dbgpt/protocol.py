"""Request and response models of DB-GPT's dialect: its worker API (`/api/worker/*`),
controller API (`/api/controller/*`) and rerank route (`/api/v1/beta/relevance`).

DB-GPT clients 0.6-0.8 send extra keys (`round_index` in messages, a `context`
object, ...): every request model ignores unknown keys instead of answering 422.
Responses are built to the exact key sets those clients construct dataclasses from
(tests/compat runs each version's own code against them).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams, Usage
from serve_app.lifecycle.changes import ModelChange

GENERATE_ERROR_PREFIX = "**LLMServer Generate Error, Please CheckErrorInfo.**: "

# DB-GPT's roles map onto the chat template's vocabulary; "view" is display-only.
ROLE_MAP = {"human": "user", "ai": "assistant", "user": "user", "assistant": "assistant", "system": "system"}
SKIPPED_ROLES = {"view"}


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
    chat_model: Optional[bool] = None  # sent by DB-GPT 0.7+ only (its `dbgpt model chat`)

    @property
    def reads_content_parts(self) -> bool:
        """Whether the client is DB-GPT 0.7+, whose ModelOutput carries `content` parts (thinking
        and text); 0.6's takes exactly the legacy keys. Only 0.7+ put `is_reasoning_model` in the
        request's context (whatever its value), or send `chat_model`."""
        return bool(self.context and "is_reasoning_model" in self.context) or self.chat_model is not None

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
    # DB-GPT's RemoteModelWorker sends no model: then the one running llm is meant.
    model: Optional[str] = Field(default=None, min_length=1)
    prompt: str
    span_id: Optional[str] = None


class ModelMetadataRequest(_Request):
    model: str = Field(min_length=1)


class ModelOutput(BaseModel):
    """DB-GPT's ModelOutput: these seven keys and no others (0.6 builds a dataclass from them).
    A reasoning model's output to a 0.7+ client has `content` parts in place of `text`
    (`with_thinking`): DB-GPT 0.7+ refuses the two together."""

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

    def wire(self, thinking: str = "", content_parts: bool = False) -> bytes:
        """The JSON a client reads. With thinking, a 0.7+ client (`content_parts`) gets DB-GPT's
        [thinking, text] parts, the text part always there (0.8.2's webserver fails on a
        thinking-only output) and never null; a 0.6 client, whose ModelOutput has only `text`,
        gets the thinking inline, in the tags the model wrote it in."""
        if not thinking:
            return self.model_dump_json().encode()
        if not content_parts:
            return self.model_copy(update={"text": f"<think>{thinking}</think>{self.text}"}).model_dump_json().encode()
        data = self.model_dump(exclude={"text"})
        data["content"] = [{"type": "thinking", "object": {"data": thinking, "format": "text"}},
                           {"type": "text", "object": {"data": self.text, "format": "text"}}]
        return json.dumps(data).encode()


class ModelMetadata(BaseModel):
    """The keys every supported DB-GPT builds its exact ModelMetadata dataclass from.

    0.6 calls the function-calling flag `is_function_calling_model`, 0.7+ call it
    `function_calling`; each refuses the other's name, so neither is sent.
    """

    model: str
    context_length: int
    chat_model: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)


class ParameterDescription(BaseModel):
    """DB-GPT's ParameterDescription: the keys 0.6's dataclass has (0.7+ add more, all optional).

    `dbgpt model start` builds its command-line options from these (see
    `dbgpt_serving.parameter_descriptions` for what `param_class` must be).
    """

    param_class: str
    param_name: str
    param_type: str
    description: str
    default_value: Any = None
    required: bool = False
    valid_values: Optional[list[Any]] = None
    ext_metadata: Optional[dict[str, Any]] = None


class SupportedModel(BaseModel):
    """A model this worker manager can run: the keys of 0.6's dataclass (0.7+ add `provider`,
    which 0.6 refuses; it defaults to 'hf' there)."""

    model: str
    worker_type: str
    path: str
    path_exist: bool
    proxy: bool = False
    enabled: bool
    params: list[ParameterDescription]


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
    worker_type: Optional[str] = None
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: Optional[float] = Field(default=None, gt=0, le=3600)
    # DB-GPT 0.7+: on shutdown, also forget the model's config (it leaves /models/supports).
    delete_after: bool = False


class WorkerApplyRequest(ModelChange):
    """DB-GPT's `/apply` body: a model change as the manager takes it (lifecycle/changes.py)."""


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


class RelevanceRequest(_Request):
    """DB-GPT's `/api/v1/beta/relevance` body."""

    model: str = Field(min_length=1)
    query: str
    documents: list[str] = Field(min_length=1)


class RelevanceUsage(BaseModel):
    total_tokens: int


class RelevanceResponse(BaseModel):
    """One score per document, in input order."""

    object: Literal["list"] = "list"
    model: str
    data: list[float]
    usage: RelevanceUsage

"""Request models of the OpenAI dialect (`/v1/*`), with the Cohere/Jina rerank body that
LangChain and LlamaIndex send to `/v1/rerank`; the responses are in openai_responses.py.

Field ranges follow OpenAI's API reference; a value out of range is a 400 in the
OpenAI error shape before anything reaches a model. Unknown fields are ignored
(the SDK and LangChain send fields we do not use).
"""

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve_app.dialects.openai.structured import ResponseFormat
from serve_app.dialects.openai.tools import Tool, ToolChoice
from serve_app.dialects.openai.unsupported import CHAT_ONLY, SHARED, refusing
from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams
from serve_app.tools.definitions import ToolCall, call_schema


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _stop_list(v: Union[str, list[str], None]) -> list[str]:
    stops = [v] if isinstance(v, str) else list(v or [])
    if len(stops) > 4:
        raise ValueError("'stop' takes at most 4 sequences")
    return [s for s in stops if s]


class OpenAIMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[dict[str, Any]], None] = None
    tool_calls: Optional[list[ToolCall]] = None  # an assistant turn that called tools
    tool_call_id: Optional[str] = None  # a tool turn: the call it answers

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
        calls = [c.for_template() for c in self.tool_calls] if self.tool_calls else None
        return ChatMessage(role=role, content=text or "", tool_calls=calls, tool_call_id=self.tool_call_id)


class StreamOptions(_Request):
    include_usage: bool = False


class _SamplingFields(_Request):
    model: str = Field(min_length=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = Field(default=None, ge=-(2**63), le=2**63 - 1)  # int64, as OpenAI's; torch takes any
    n: int = Field(default=1, ge=1, le=16)  # choices per prompt: rows generating together
    logit_bias: Optional[dict[str, float]] = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    response_format: Optional[ResponseFormat] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = None
    return_tokens_as_token_ids: bool = False  # vLLM's: logprobs name tokens "token_id:<id>"
    # vLLM's sampling extensions that its clients (and `vllm bench serve`) send.
    top_k: Optional[int] = Field(default=None, ge=-1)  # -1 or 0: every token
    ignore_eos: bool = False
    # Tokens that end the answer, as vLLM's: one that is not a special token stays in the text.
    stop_token_ids: Optional[list[Annotated[int, Field(ge=0)]]] = Field(default=None, max_length=64)
    repetition_penalty: float = Field(default=1.0, gt=0.0)
    include_stop_str_in_output: bool = False
    min_p: float = Field(default=0.0, ge=0.0, le=1.0)
    # vLLM's scheduling priority (lower runs earlier): here each step above 0 puts the request one
    # band below its key's when the model is full (serve_app/fairness/); below 0 is the key's band.
    priority: int = Field(default=0, ge=-(2**31), le=2**31 - 1)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v):
        return _stop_list(v)

    @model_validator(mode="after")
    def _check_ignore_eos(self):
        if self.ignore_eos and self.response_format and self.response_format.schema_to_follow() is not None:
            raise ValueError("'ignore_eos' cannot be combined with a JSON 'response_format': the schema's end is "
                             "the answer's end")
        return self

    @field_validator("logit_bias")
    @classmethod
    def _check_bias(cls, v):
        for token, bias in (v or {}).items():
            if not token.isdigit():
                raise ValueError(f"keys are token ids, got '{token}'")
            if not -100 <= bias <= 100:
                raise ValueError(f"a bias is between -100 and 100, got {bias} for token {token}")
        return v

    def top_logprobs_wanted(self) -> Optional[int]:
        """Alternatives per token the answer reports (0: only the chosen token's); None: no logprobs."""
        raise NotImplementedError

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_tokens,
            stop=self.stop or [],
            stop_token_ids=self.stop_token_ids or [],
            include_stop_str_in_output=self.include_stop_str_in_output,
            seed=self.seed,
            logit_bias={int(t): b for t, b in (self.logit_bias or {}).items()},
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty,
            min_p=self.min_p,
            json_schema=self.response_format.schema_to_follow() if self.response_format else None,
            logprobs=self.top_logprobs_wanted(),
            top_k=self.top_k if self.top_k and self.top_k > 0 else None,
            ignore_eos=self.ignore_eos,
        )

    def choices_of(self, request: GenerationRequest) -> list[GenerationRequest]:
        """`n` rows for one prompt; a seeded request seeds its choices apart (seed, seed + 1, ...)."""
        if self.n == 1:
            return [request]
        seeds = [None if self.seed is None else self.seed + i for i in range(self.n)]
        return [request.model_copy(update={"params": request.params.model_copy(update={"seed": s})}) for s in seeds]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingFields, refusing(*SHARED, *CHAT_ONLY, "prompt_logprobs")):
    messages: list[OpenAIMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    tools: Optional[list[Tool]] = Field(default=None, max_length=128)
    tool_choice: Optional[ToolChoice] = None
    parallel_tool_calls: bool = True
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    # vLLM's: variables for the model's chat template (Qwen3's enable_thinking); a variable the
    # template does not read is a 400 from the engine, not silently dropped.
    chat_template_kwargs: Optional[dict[str, Any]] = None
    # vLLM's: false leaves a reasoning model's thinking out of the answer.
    include_reasoning: bool = True

    @model_validator(mode="after")
    def _choice_fits_tools(self):
        names = self.tool_names()
        if len(names) < len(self.tools or []):
            raise ValueError("tools: two functions have the same name")
        choice = self.tool_choice
        if choice not in (None, "none", "auto") and not self.tools:
            raise ValueError("tool_choice: asks for a tool call but 'tools' is empty")
        if hasattr(choice, "function") and choice.function.name not in names:
            raise ValueError(f"tool_choice: names function '{choice.function.name}', which is not in 'tools'")
        if self.forced_tools() and self.response_format and self.response_format.type != "text":
            raise ValueError("response_format: cannot apply while tool_choice forces a call (the call is the answer)")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs: needs 'logprobs': true")
        return self

    def top_logprobs_wanted(self) -> Optional[int]:
        return (self.top_logprobs or 0) if self.logprobs else None

    def tool_names(self) -> set[str]:
        return {t.function.name for t in self.tools or []}

    def tools_in_use(self) -> list[Tool]:
        """The tools the model is told of: none when there are none or tool_choice is "none"."""
        return [] if self.tool_choice == "none" else list(self.tools or [])

    def forced_tools(self) -> list[Tool]:
        """The tools one of which must be called ("required", or the one named)."""
        choice = self.tool_choice
        if choice == "required":
            return list(self.tools or [])
        if hasattr(choice, "function"):
            return [t for t in self.tools or [] if t.function.name == choice.function.name]
        return []

    def to_generations(self, span_id: str) -> list[GenerationRequest]:
        """One request per choice (`n`)."""
        params = self.sampling()
        params.max_new_tokens = self.max_completion_tokens or self.max_tokens
        if self.forced_tools():
            params.json_schema = call_schema([t.function for t in self.forced_tools()])
        tools = [t.model_dump(exclude_none=True) for t in self.tools_in_use()] or None
        return self.choices_of(GenerationRequest(
            messages=[m.to_chat() for m in self.messages], params=params, tools=tools, overflow="error", span_id=span_id,
            chat_template_kwargs=self.chat_template_kwargs or {}, session=self.user or "", priority=self.priority,
        ))


class CompletionRequest(_SamplingFields, refusing(*SHARED, "tools", "tool_choice", "suffix")):
    # Text, texts, or prompts as token ids (lm-evaluation-harness sends ids it tokenized itself).
    prompt: Union[str, list[str], list[int], list[list[int]]]
    # OpenAI's default for completions. 0 with echo or prompt_logprobs: the prompt alone, scored.
    max_tokens: Optional[int] = Field(default=16, ge=0)
    echo: bool = False
    # With echo, the prompt's tokens are scored too: their logprobs come before the answer's.
    logprobs: Optional[int] = Field(default=None, ge=0, le=5)
    # vLLM's: each prompt token's logprob and this many alternatives, in vLLM's shape.
    prompt_logprobs: Optional[int] = Field(default=None, ge=0, le=20)

    @model_validator(mode="after")
    def _something_to_return(self):
        if self.max_tokens == 0 and not self.echo and self.prompt_logprobs is None:
            raise ValueError("max_tokens: 0 writes nothing; it takes echo (the prompt back, scored with logprobs) "
                             "or prompt_logprobs")
        return self

    def top_logprobs_wanted(self) -> Optional[int]:
        return self.logprobs

    def prompt_scoring(self) -> Optional[int]:
        """Alternatives per prompt token the engine scores (None: the prompt is not scored)."""
        wanted = [k for k in (self.logprobs if self.echo else None, self.prompt_logprobs) if k is not None]
        return max(wanted) if wanted else None

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v):
        if isinstance(v, list) and (not v or any(isinstance(p, list) and not p for p in v)):
            raise ValueError("'prompt' must not be an empty list, nor hold an empty token list")
        return v

    def prompts(self) -> list[Union[str, list[int]]]:
        """One entry per prompt: a text, or one prompt's token ids."""
        if isinstance(self.prompt, str) or isinstance(self.prompt[0], int):
            return [self.prompt]
        return list(self.prompt)

    def to_generations(self, span_id: str) -> list[GenerationRequest]:
        """`n` requests per prompt, in choice order (prompt by prompt)."""
        params = self.sampling().model_copy(update={"prompt_logprobs": self.prompt_scoring()})
        return [choice for prompt in self.prompts()
                for choice in self.choices_of(GenerationRequest(
                    prompt=prompt if isinstance(prompt, str) else None,
                    prompt_token_ids=None if isinstance(prompt, str) else prompt,
                    params=params, overflow="error", span_id=span_id, separate_reasoning=False,
                    session=self.user or "", priority=self.priority))]


class EmbeddingRequest(_Request):
    model: str = Field(min_length=1)
    # Texts, or token ids as the model reads them (its special tokens included).
    input: Union[str, list[str], list[int], list[list[int]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = Field(default=None, ge=1)
    # vLLM's: cut each input to this many tokens (-1: the model's most). Unset, a longer input is a 400.
    truncate_prompt_tokens: Optional[int] = Field(default=None, ge=-1)
    user: Optional[str] = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v):
        if isinstance(v, list) and (not v or any(isinstance(x, list) and not x for x in v)):
            raise ValueError("'input' must not be empty, nor hold an empty token list")
        return v

    @field_validator("truncate_prompt_tokens")
    @classmethod
    def _not_zero(cls, v):
        if v == 0:
            raise ValueError("cut to 0 tokens leaves nothing to embed: use -1 (the model's most) or a count")
        return v

    def inputs(self) -> list[Union[str, list[int]]]:
        """One entry per vector: a text, or one input's token ids."""
        if isinstance(self.input, str) or (self.input and isinstance(self.input[0], int)):
            return [self.input]
        return list(self.input)


class RerankRequest(_Request):
    """The Cohere/Jina rerank body that LangChain and LlamaIndex send."""

    model: str = Field(min_length=1)
    query: str
    documents: list[Union[str, dict[str, Any]]] = Field(min_length=1)
    top_n: Optional[int] = Field(default=None, ge=1)
    return_documents: bool = False

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else str(d.get("text", "")) for d in self.documents]

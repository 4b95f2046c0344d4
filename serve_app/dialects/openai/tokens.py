"""vLLM's `/tokenize` and `/detokenize` bodies: a model's own tokens, as its engine counts them."""

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_app.dialects.openai.protocol import OpenAIMessage
from serve_app.engines.base import GenerationRequest


class TokenizeRequest(BaseModel):
    """A prompt, or messages rendered through the model's chat template (as a chat request is)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    prompt: Optional[str] = None
    messages: Optional[list[OpenAIMessage]] = Field(default=None, min_length=1)  # as a chat request's
    add_special_tokens: bool = True

    @model_validator(mode="after")
    def _one_input(self):
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' and 'messages'")
        return self

    def generation(self) -> GenerationRequest:
        messages = [m.to_chat() for m in self.messages] if self.messages is not None else None
        return GenerationRequest(prompt=self.prompt, messages=messages)


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    prompt: str

"""`response_format` of OpenAI's chat and completions requests: what the answer must look like.

Turned into one JSON schema on `SamplingParams.json_schema`, which the engine enforces
by constrained decoding (serve_app/engines/transformers/structured.py; vLLM's own structured output).
"""

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

ANY_OBJECT: dict[str, Any] = {"type": "object"}


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64)
    description: Optional[str] = None
    # `schema` would shadow pydantic's BaseModel.schema; the wire name stays "schema".
    json_schema: dict[str, Any] = Field(default_factory=lambda: dict(ANY_OBJECT), alias="schema")
    strict: Optional[bool] = None  # always enforced: the decoder cannot write outside the schema


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: Optional[JsonSchemaFormat] = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type 'json_schema' needs a 'json_schema' object with a 'name' and a 'schema'")
        return self

    def schema_to_follow(self) -> Optional[dict[str, Any]]:
        """The JSON schema the answer must match; None for free text."""
        if self.type == "json_schema":
            return self.json_schema.json_schema
        return dict(ANY_OBJECT) if self.type == "json_object" else None

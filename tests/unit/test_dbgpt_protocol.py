"""DB-GPT's wire models: what its clients send is read, what they build from is exact."""

import pytest
from pydantic import ValidationError

from serve_app.config.workers import LLMArgs
from serve_app.dialects.dbgpt.protocol import ModelOutput, PromptRequest
from serve_app.dialects.dbgpt.serving import parameter_descriptions


def test_prompt_request_maps_dbgpt_roles_and_skips_view():
    req = PromptRequest(
        model="m",
        messages=[
            {"role": "system", "content": "s"},
            {"role": "view", "content": "v"},
            {"role": "human", "content": "h", "round_index": 1},
            {"role": "ai", "content": "a"},
        ],
        stop="x",
    )
    gen = req.to_generation("span")
    assert [(m.role, m.content) for m in gen.messages] == [("system", "s"), ("user", "h"), ("assistant", "a")]
    assert gen.params.stop == ["x"] and gen.span_id == "span" and gen.overflow == "truncate"


def test_prompt_request_rejects_unknown_roles_and_missing_input():
    with pytest.raises(ValidationError, match="unknown role 'robot'"):
        PromptRequest(model="m", messages=[{"role": "robot", "content": "x"}])
    with pytest.raises(ValidationError, match="messages"):
        PromptRequest(model="m")


def test_model_output_has_exactly_dbgpt_keys():
    assert set(ModelOutput(text="x").model_dump()) == {
        "text", "error_code", "incremental", "model_context", "finish_reason", "usage", "metrics",
    }
    err = ModelOutput.error("boom")
    assert err.error_code == 1 and err.text.endswith(": boom")


def test_parameter_descriptions_cover_every_field_dbgpt_can_take():
    descs = {d["param_name"]: d for d in parameter_descriptions(LLMArgs)}
    # A dict, list or nested-model field cannot be a DB-GPT parameter (its dataclass refuses a mutable default).
    assert set(descs) == set(LLMArgs.model_fields) - {"vllm_kwargs", "fallbacks", "lora_modules", "queue"}
    assert descs["engine"]["valid_values"] == ["transformers", "vllm", "simulated"]
    assert all(d["description"] for d in descs.values()), "the README documents fields from these"
    assert descs["context_length"]["param_type"] == "int" and descs["context_length"]["required"] is False
    assert descs["max_new_tokens"]["default_value"] == 256
    # The class DB-GPT builds them into: a module every client imports, without that class.
    assert {d["param_class"] for d in descs.values()} == {"builtins.LLMArgs"}
    current = {d["param_name"]: d for d in parameter_descriptions(LLMArgs, {"max_new_tokens": 64})}
    assert current["max_new_tokens"]["default_value"] == 64  # what the running model uses

"""What the OpenAI dialect refuses by name.

Fields of OpenAI's request schemas that would change the answer and that this server
does not do: set to anything but a no-op value, they get a 400 naming them, never an
answer that silently left them out. (Fields that change nothing, like `user`,
`metadata` or `store`, are read and ignored as unknown fields are.) Each request
model refuses its own list: chat does tool calls, completions does not.
"""

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, create_model, field_validator

NOT_DONE = {
    "tools": "tool calls on completions; use chat", "tool_choice": "tool calls on completions; use chat",
    "functions": "function calls (deprecated: use 'tools')", "function_call": "function calls (deprecated: use 'tools')",
    "frequency_penalty": "repetition penalties", "presence_penalty": "repetition penalties",
    "audio": "audio output", "modalities": "other output modalities", "prediction": "predicted outputs",
    "reasoning_effort": "reasoning", "web_search_options": "web search", "best_of": "best-of sampling",
    "suffix": "insertion after a suffix", "verbosity": "answer-length control",
    # vLLM's extensions beyond top_k and ignore_eos (which are done)
    "repetition_penalty": "repetition penalties", "min_p": "min-p sampling", "min_tokens": "a minimum answer length",
    "prompt_logprobs": "scoring a chat's prompt; /v1/completions scores a prompt",
}
# 0 still asks for something of these (vLLM's prompt_logprobs: 0 scores each prompt token, with no alternatives).
ZERO_ASKS = {"prompt_logprobs"}
NO_OP = {"tool_choice": ["none"], "modalities": [["text"]], "best_of": [1], "verbosity": ["medium"],
         "repetition_penalty": [1]}
SHARED = ("frequency_penalty", "presence_penalty", "audio", "modalities", "prediction",
          "reasoning_effort", "web_search_options", "best_of", "functions", "function_call", "verbosity",
          "repetition_penalty", "min_p", "min_tokens")


def _refuse(cls, v, info):
    no_ops = [None, [], {}, ""] + ([] if info.field_name in ZERO_ASKS else [0]) + NO_OP.get(info.field_name, [])
    if v in no_ops:  # False counts as 0 here (False == 0)
        return v
    raise ValueError(f"'{info.field_name}' ({NOT_DONE[info.field_name]}) is not supported by this server")


def refusing(*names: str) -> type[BaseModel]:
    """A base model whose fields `names` accept only their no-op values."""
    fields: dict[str, Any] = {name: (Optional[Any], None) for name in names}
    validators = {"refuse": field_validator(*names)(classmethod(_refuse))}
    model = create_model(f"Refusing_{'_'.join(names)}", __config__=ConfigDict(extra="ignore"),
                         __validators__=validators, **fields)
    model.refused_fields = frozenset(names)
    return model

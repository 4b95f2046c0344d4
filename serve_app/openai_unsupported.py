"""What the OpenAI dialect refuses by name.

Fields of OpenAI's request schemas that would change the answer and that this server
does not do: set to anything but a no-op value, they get a 400 naming them, never an
answer that silently left them out. (Fields that change nothing, like `user`,
`metadata` or `store`, are read and ignored as unknown fields are.)
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

NOT_DONE = {
    "tools": "tool calls", "tool_choice": "tool calls", "functions": "function calls",
    "function_call": "function calls",
    "logprobs": "log probabilities", "top_logprobs": "log probabilities",
    "frequency_penalty": "repetition penalties", "presence_penalty": "repetition penalties",
    "audio": "audio output", "modalities": "other output modalities", "prediction": "predicted outputs",
    "reasoning_effort": "reasoning", "web_search_options": "web search", "best_of": "best-of sampling",
    "suffix": "insertion after a suffix",
}
NO_OP = {"tool_choice": ["none"], "modalities": [["text"]], "best_of": [1]}


class NotDone(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    frequency_penalty: Any = None
    presence_penalty: Any = None
    audio: Any = None
    modalities: Any = None
    prediction: Any = None
    reasoning_effort: Any = None
    web_search_options: Any = None
    best_of: Any = None
    suffix: Any = None

    @field_validator(*NOT_DONE)
    @classmethod
    def _refuse(cls, v, info):
        if v in (None, [], {}, 0, False, "") or v in NO_OP.get(info.field_name, []):
            return v
        raise ValueError(f"'{info.field_name}' ({NOT_DONE[info.field_name]}) is not supported by this server")



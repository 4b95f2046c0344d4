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
    "audio": "audio output", "modalities": "other output modalities", "prediction": "predicted outputs",
    "reasoning_effort": "reasoning", "web_search_options": "web search", "best_of": "best-of sampling",
    "suffix": "insertion after a suffix", "verbosity": "answer-length control",
    # vLLM's extensions beyond those done (top_k, min_p, repetition_penalty, ignore_eos, stop_token_ids,
    # include_stop_str_in_output, priority, chat_template_kwargs, return_tokens_as_token_ids, prompt_logprobs
    # on completions): a client written for vLLM sends them to change the answer.
    "min_tokens": "a minimum answer length",
    "prompt_logprobs": "scoring a chat's prompt; /v1/completions scores a prompt",
    "length_penalty": "beam search", "use_beam_search": "beam search",
    "skip_special_tokens": "special tokens in the answer", "spaces_between_special_tokens": "special tokens in the answer",
    "allowed_token_ids": "token allow-lists; use logit_bias", "bad_words": "banned words; use logit_bias",
    "echo": "the prompt echoed on chat; /v1/completions echoes", "add_generation_prompt": "a prompt without the turn's start",
    "continue_final_message": "continuing the last message", "add_special_tokens": "a prompt's own special tokens",
    "chat_template": "a request's own chat template", "documents": "documents in the chat template",
    "mm_processor_kwargs": "multimodal input", "logits_processors": "a request's own logits processors",
    "guided_json": "vLLM's guided decoding; use response_format", "guided_regex": "vLLM's guided decoding",
    "guided_choice": "vLLM's guided decoding", "guided_grammar": "vLLM's guided decoding",
    "structural_tag": "vLLM's guided decoding", "structured_outputs": "vLLM's guided decoding; use response_format",
}
# 0 still asks for something of these (vLLM's prompt_logprobs: 0 scores each prompt token, with no alternatives).
ZERO_ASKS = {"prompt_logprobs"}
# {} still asks for something of these: OpenAI's web search is turned on by an empty object.
EMPTY_ASKS = {"web_search_options"}
# The default values: a client that sends them asks for nothing.
NO_OP = {"tool_choice": ["none"], "modalities": [["text"]], "best_of": [1], "verbosity": ["medium"],
         "length_penalty": [1], "skip_special_tokens": [True],
         "spaces_between_special_tokens": [True], "add_generation_prompt": [True]}
SHARED = ("audio", "modalities", "prediction",
          "reasoning_effort", "web_search_options", "best_of", "functions", "function_call", "verbosity",
          "min_tokens", "length_penalty", "use_beam_search",
          "skip_special_tokens", "spaces_between_special_tokens", "allowed_token_ids",
          "bad_words", "logits_processors", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
          "structural_tag", "structured_outputs")
# Chat's own: completions echo (done there), and its prompt has no chat template.
CHAT_ONLY = ("echo", "add_generation_prompt", "continue_final_message", "add_special_tokens", "chat_template",
             "documents", "mm_processor_kwargs")


def _refuse(cls, v, info):
    no_ops = [None, [], ""] + ([] if info.field_name in EMPTY_ASKS else [{}]) + \
        ([] if info.field_name in ZERO_ASKS else [0]) + NO_OP.get(info.field_name, [])
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

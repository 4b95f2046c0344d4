"""Prompt text, token counts and the completion budget: every engine renders and counts
the same way, so a request gets the same prompt, the same usage and the same overflow
rule whichever engine runs it.
"""

from __future__ import annotations

from functools import cached_property

from serve_app.engines.base import ChatMessage, GenerationRequest, InvalidPromptError, PromptTooLongError
from serve_app.engines.tool_prompts import inline_tools

# What the engine itself hands every chat template: a request's chat_template_kwargs may not set these.
TEMPLATE_INPUTS = {"messages", "tools", "documents", "add_generation_prompt", "continue_final_message"}

_PROBE_TOOL = {"type": "function", "function": {"name": "probe", "description": "", "parameters": {"type": "object"}}}


def plain_chat_prompt(messages: list[ChatMessage], tools: list[dict] | None = None) -> str:
    """A conversation for a model without a chat template: turns as base-model prompts read."""
    return "".join(f"{m.role}: {m.content}\n" for m in inline_tools(messages, tools)) + "assistant:"


def check_template_kwargs(kwargs: dict, variables: set[str], thinks: bool = False) -> None:
    """Refuse (400) chat_template_kwargs that would be silently ignored: a variable the model's
    template never reads, or one the request itself sets. One exception: `enable_thinking`,
    which clients and gateways send to every model (Qwen3's switch; vLLM accepts it anywhere),
    is accepted by a template without that switch when its value asks for what the model does
    anyway (`false` to a model that never thinks, `true` to one that always does), and
    refused, naming it, when it asks for what the model cannot do."""
    taken = sorted(set(kwargs) & TEMPLATE_INPUTS)
    if taken:
        raise InvalidPromptError(f"chat_template_kwargs: {', '.join(taken)} comes from the request itself")
    switch = kwargs.get("enable_thinking")
    if "enable_thinking" not in variables and isinstance(switch, bool):
        if switch != thinks:
            raise InvalidPromptError(
                f"chat_template_kwargs: enable_thinking: {str(switch).lower()} asks this model to "
                f"{'think' if switch else 'stop thinking'}, and its template has no switch for that "
                f"(it {'always thinks' if thinks else 'never thinks'})")
        kwargs = {k: v for k, v in kwargs.items() if k != "enable_thinking"}
    unread = sorted(set(kwargs) - variables)
    if unread:
        reads = ", ".join(sorted(variables - TEMPLATE_INPUTS)) or "none"
        raise InvalidPromptError(f"chat_template_kwargs: this model's chat template does not read "
                                 f"{', '.join(unread)} (the variables it reads: {reads})")


class CompletionBudget:
    """Mixin: needs `context_length` and `default_max_new_tokens` set."""

    def _budget(self, prompt_tokens: int, request: GenerationRequest) -> int:
        """New tokens the request may have; "truncate" lowers it to what fits, "error" refuses."""
        room = self.context_length - prompt_tokens
        wanted = request.params.max_new_tokens
        wanted = self.default_max_new_tokens if wanted is None else wanted  # 0: score the prompt only
        if room <= 0 or (request.overflow == "error" and wanted > room):
            raise PromptTooLongError(
                f"the prompt has {prompt_tokens} tokens and asks for {wanted} more, "
                f"but the model's context length is {self.context_length} tokens"
            )
        return min(wanted, room)


class TokenizerPrompts(CompletionBudget):
    """Mixin for engines that hold a Hugging Face tokenizer: needs `tokenizer` and
    `reasoning_parser` too."""

    def render_prompt(self, request: GenerationRequest) -> str:
        if request.prompt_token_ids is not None:
            return self.detokenize(request.prompt_token_ids)
        if request.messages is None:
            return request.prompt or ""
        thinks = self.reasoning_parser != "none"
        if not self.tokenizer.chat_template:
            check_template_kwargs(request.chat_template_kwargs, set(), thinks)
            return plain_chat_prompt(request.messages, request.tools)
        check_template_kwargs(request.chat_template_kwargs, self.template_variables, thinks)
        if self.template_renders_tools:
            messages, tools = request.messages, request.tools
        else:
            messages, tools = inline_tools(request.messages, request.tools), None
        kwargs = {k: v for k, v in request.chat_template_kwargs.items() if k in self.template_variables}
        return self.tokenizer.apply_chat_template(
            [m.model_dump(exclude_none=True) for m in messages], tools=tools, add_generation_prompt=True, tokenize=False,
            **kwargs,
        )

    @cached_property
    def template_variables(self) -> set[str]:
        """The variables the chat template reads from outside (`enable_thinking`, ...)."""
        from jinja2 import meta
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        # transformers renders templates in this environment, with these extensions.
        env = ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"])
        return set(meta.find_undeclared_variables(env.parse(self.tokenizer.chat_template)))

    @cached_property
    def template_renders_tools(self) -> bool:
        """Whether the chat template writes a `tools` list into the prompt (Qwen2.5's does, SmolLM2's not)."""
        probe = [{"role": "user", "content": "hi"}]
        plain = self.tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=False)
        with_tool = self.tokenizer.apply_chat_template(probe, tools=[_PROBE_TOOL], add_generation_prompt=True, tokenize=False)
        return with_tool != plain

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def tokenize(self, request: GenerationRequest, add_special_tokens: bool = True) -> list[int]:
        if request.prompt_token_ids is not None:
            return list(request.prompt_token_ids)
        prompt = self.render_prompt(request)
        # A chat template already holds the special tokens it needs.
        return list(self.tokenizer(prompt, add_special_tokens=add_special_tokens and request.messages is None)["input_ids"])

    def detokenize(self, ids: list[int]) -> str:
        vocab = len(self.tokenizer)
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise InvalidPromptError(f"token {bad[0]} is not one of this model's (0 to {vocab - 1})")
        return self.tokenizer.decode(ids)

    def prompt_ids(self, prompt: str, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids:  # as the client tokenized it (lm-evaluation-harness does)
            return list(request.prompt_token_ids)
        # Chat templates already contain the BOS marker they need.
        ids = list(self.tokenizer(prompt, add_special_tokens=request.messages is None)["input_ids"])
        if ids:
            return ids
        # An empty prompt completes from the start of a document: the BOS token, as vLLM
        # does, or for a model without one the end-of-text token (OpenAI's default prompt).
        start = self.tokenizer.bos_token_id
        start = self.tokenizer.eos_token_id if start is None else start
        if start is None:
            raise InvalidPromptError("the prompt is empty and this model has no start-of-text token to begin from")
        return [start]

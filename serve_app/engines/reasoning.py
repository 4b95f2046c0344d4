"""A reasoning model's thinking, told apart from its answer while it streams.

Reasoning models write their scratchpad between `<think>` and `</think>`, then the
answer. An llm's `reasoning_parser` arg says which convention its model keeps (the
names are vLLM's reasoning parsers'):

- `deepseek_r1`: the chat template opens the think block itself, so the output starts
  inside it: everything up to `</think>` is thinking (a leading `<think>` is dropped),
  and an answer cut off before `</think>` is all thinking (DeepSeek-R1 and its distills).
- `qwen3`: thinking only when the output starts with `<think>` (Qwen3, QwQ); with
  thinking off (`chat_template_kwargs: {enable_thinking: false}`) the template writes
  an empty block into the prompt and the output is all answer.

`ReasoningSplitter` works on the text as it grows, holding back what may be the start
of a tag, so neither tag ever reaches a client, however the chunks cut it.
"""

from __future__ import annotations

import hashlib
from typing import AsyncIterator, Optional

from serve_app.config.workers import ReasoningParser
from serve_app.engines.base import GenerationChunk

START, END = "<think>", "</think>"


def thinking_token(thinking: str) -> str:
    """What a client sends back with a model's thinking (Anthropic's `signature`, the Responses
    API's `encrypted_content`): ours marks it as this server's; nothing is encrypted, and thinking
    sent back is dropped from the prompt anyway."""
    return "smmf-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def _partial_tail(text: str, tag: str) -> int:
    """Characters at the end of `text` that may be the start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ReasoningSplitter:
    def __init__(self, parser: ReasoningParser):
        self.parser = parser
        # "start": until the output shows whether it opens with <think>; "thinking"; "answer".
        self.state = "start"
        self._held = ""  # text not yet handed out: it may be (part of) a tag
        self._answer_started = False

    def feed(self, text: str, final: bool = False) -> tuple[str, str]:
        """(new thinking, new answer text) for `text`, the answer's next piece. `final`: the
        answer ends here, so whatever is held is handed out."""
        self._held += text
        thinking, answer = "", ""
        while True:
            if self.state == "start":
                stripped = self._held.lstrip()
                if stripped.startswith(START):
                    self._held, self.state = stripped[len(START):], "thinking"
                elif START.startswith(stripped) and not final:
                    break  # still may become "<think>"
                else:  # no <think>: deepseek_r1's template opened it; for qwen3 there is none
                    self.state = "thinking" if self.parser == "deepseek_r1" else "answer"
            elif self.state == "thinking":
                at = self._held.find(END)
                if at >= 0:
                    thinking += self._held[:at]
                    self._held, self.state = self._held[at + len(END):], "answer"
                    continue
                keep = 0 if final else _partial_tail(self._held, END)
                thinking += self._held[: len(self._held) - keep]
                self._held = self._held[len(self._held) - keep:]
                break
            else:
                if not self._answer_started:  # the blank line templates put after </think>
                    self._held = self._held.lstrip()
                    self._answer_started = bool(self._held)
                answer += self._held
                self._held = ""
                break
        if final and self._held:
            answer += self._held
            self._held = ""
        return thinking, answer

    @property
    def thinking_done(self) -> bool:
        return self.state == "answer"


async def split_reasoning(chunks: AsyncIterator[GenerationChunk], parser: ReasoningParser
                          ) -> AsyncIterator[GenerationChunk]:
    """An engine's chunks with each one's thinking moved from `text` to `reasoning`, and the
    tokens spent thinking counted. Every engine streams through this, in the llm deployment."""
    splitter, reasoning_tokens = ReasoningSplitter(parser), 0
    async for chunk in chunks:
        was_thinking = not splitter.thinking_done
        thinking, answer = splitter.feed(chunk.text, final=chunk.finish_reason is not None)
        if was_thinking and (thinking or not answer):
            reasoning_tokens = chunk.completion_tokens  # this chunk's tokens were thinking, or its end tag
        yield chunk.model_copy(update={"text": answer, "reasoning": thinking, "reasoning_tokens": reasoning_tokens})


class ThinkingWatch:
    """Where a row of the transformers engine's batching loop is: thinking, or answering, so
    that its grammar (structured output, a forced tool call) constrains the answer only.

    The loop shows it each token it chose (`observe`); it decodes them as the stream
    will. Before a `qwen3` model's output shows whether it opens `<think>`, a token that
    begins the tag is allowed beside the grammar's (`opening_ids`).
    """

    def __init__(self, tokenizer, parser: ReasoningParser, opening_ids: list[int], budget: Optional[int] = None):
        from serve_app.engines.detokenize import IncrementalDecoder

        self.decoder, self.splitter = IncrementalDecoder(tokenizer), ReasoningSplitter(parser)
        self.opening_ids = opening_ids if parser == "qwen3" else []
        # The thinking budget: once `thought` reaches it, the end tag's tokens are forced, one a step.
        self.budget, self.thought = budget, 0
        self._closing = tokenizer.encode(END, add_special_tokens=False) if budget is not None else []
        self._forcing: list[int] = []

    def forced(self) -> Optional[int]:
        """The token this row must take next, if any: the end tag's, once the thinking spent its budget."""
        if not self._forcing and self.budget is not None and self.splitter.state == "thinking" \
                and self.thought >= self.budget:
            self._forcing = list(self._closing)
        return self._forcing[0] if self._forcing else None

    @property
    def answering(self) -> bool:
        return self.splitter.thinking_done

    @property
    def undecided(self) -> bool:
        """The output may still open a think block, or be the answer from its first token."""
        return self.splitter.state == "start" and self.splitter.parser == "qwen3"

    def observe(self, token_id: int) -> bool:
        """Whether `token_id` is part of the answer, which the grammar must be told."""
        was_answering, before = self.answering, self.splitter.state
        _, answer = self.splitter.feed(self.decoder.add(token_id))
        if self._forcing and token_id == self._forcing[0]:
            self._forcing.pop(0)
        elif self.splitter.state == "thinking" and not (before == "start" and self.splitter.parser == "qwen3"):
            self.thought += 1  # a token of thinking (qwen3's opening tag is not one)
        return was_answering or bool(answer)


def opening_token_ids(tokenizer) -> list[int]:
    """Tokens whose text (less leading space) begins `<think>`, or is all of it and more."""
    out = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id]).lstrip()
        if text and (START.startswith(text) or text.startswith(START)):
            out.append(token_id)
    return out

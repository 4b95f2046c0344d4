"""An engine's token logprobs (engines/base.TokenLogprob) in OpenAI's two shapes: chat's
list of tokens with their alternatives, and legacy completions' parallel lists."""

from __future__ import annotations

from typing import Optional

from serve_app.dialects.openai.responses import ChatLogprobs, ChatTokenLogprob, CompletionLogprobs, TopLogprob
from serve_app.engines.base import TokenLogprob


def _name(token_id: int, token: str, as_ids: bool) -> str:
    return f"token_id:{token_id}" if as_ids else token


def _top(token_id: int, token: str, logprob: float, as_ids: bool) -> TopLogprob:
    # A token that is part of a multi-byte character decodes to U+FFFD alone; its bytes are then unknown.
    known = None if "\ufffd" in token else list(token.encode("utf-8"))
    return TopLogprob(token=_name(token_id, token, as_ids), logprob=logprob, bytes=known)


def chat_logprobs(scored: Optional[list[TokenLogprob]], as_ids: bool = False) -> Optional[ChatLogprobs]:
    if scored is None:
        return None
    return ChatLogprobs(content=[
        ChatTokenLogprob(**_top(s.token_id, s.token, s.logprob, as_ids).model_dump(),
                         top_logprobs=[_top(*alt, as_ids) for alt in s.top])
        for s in scored
    ])


def completion_logprobs(scored: Optional[list[TokenLogprob]], start: int = 0, as_ids: bool = False) -> Optional[CompletionLogprobs]:
    """`start`: the offset in the choice's text of the first token (streamed choices go on from the last)."""
    if scored is None:
        return None
    offsets, at = [], start
    for s in scored:
        offsets.append(at)
        at += len(s.token)
    return CompletionLogprobs(
        tokens=[_name(s.token_id, s.token, as_ids) for s in scored],
        token_logprobs=[s.logprob for s in scored],
        top_logprobs=[{_name(t, text, as_ids): lp for t, text, lp in s.top} for s in scored],
        text_offset=offsets,
    )

"""An engine's token logprobs (engines/base.TokenLogprob) in OpenAI's shapes: chat's list of
tokens with their alternatives, legacy completions' parallel lists (an echoed prompt's tokens
first), and vLLM's `prompt_logprobs`."""

from __future__ import annotations

from typing import Optional

from serve_app.dialects.openai.responses import (
    ChatLogprobs,
    ChatTokenLogprob,
    CompletionLogprobs,
    PromptLogprob,
    TopLogprob,
)
from serve_app.engines.base import TokenLogprob


def _name(token_id: int, token: str, as_ids: bool) -> str:
    return f"token_id:{token_id}" if as_ids else token


def _bytes(token: str) -> Optional[list[int]]:
    # A token that is part of a multi-byte character decodes to U+FFFD alone; its bytes are then unknown.
    return None if "\ufffd" in token else list(token.encode("utf-8"))


def _top(token_id: int, token: str, logprob: float, as_ids: bool) -> TopLogprob:
    return TopLogprob(token=_name(token_id, token, as_ids), logprob=logprob, bytes=_bytes(token))


def chat_logprobs(scored: Optional[list[TokenLogprob]], as_ids: bool = False) -> Optional[ChatLogprobs]:
    if scored is None:
        return None
    return ChatLogprobs(content=[
        ChatTokenLogprob(**_top(s.token_id, s.token, s.logprob, as_ids).model_dump(),
                         top_logprobs=[_top(*alt, as_ids) for alt in s.top])
        for s in scored
    ])


def completion_logprobs(scored: Optional[list[TokenLogprob]], start: int = 0, as_ids: bool = False,
                        top: Optional[int] = None) -> Optional[CompletionLogprobs]:
    """`start`: the offset in the choice's text of the first token (streamed choices go on from the last).
    `top`: alternatives kept per token (an engine may have scored more for another field)."""
    if scored is None:
        return None
    offsets, at = [], start
    for s in scored:
        offsets.append(at)
        at += len(s.token)
    return CompletionLogprobs(
        tokens=[_name(s.token_id, s.token, as_ids) for s in scored],
        token_logprobs=[s.logprob for s in scored],
        top_logprobs=[None if s.logprob is None else {_name(t, text, as_ids): lp for t, text, lp in s.top[:top]}
                      for s in scored],
        text_offset=offsets,
    )


def vllm_prompt_logprobs(scored: Optional[list[TokenLogprob]], top: int) -> Optional[list[Optional[dict]]]:
    """vLLM's `prompt_logprobs`: per prompt token, {token id: logprob, rank, decoded token} for the
    token itself and the `top` likeliest (ranks 1 to `top`); the first token's is null."""
    if scored is None:
        return None
    entries: list[Optional[dict]] = []
    for s in scored:
        if s.logprob is None:
            entries.append(None)
            continue
        entry = {str(t): PromptLogprob(logprob=lp, rank=rank, decoded_token=text)
                 for rank, (t, text, lp) in enumerate(s.top[:top], start=1)}
        entry[str(s.token_id)] = PromptLogprob(logprob=s.logprob, rank=s.rank, decoded_token=s.token)
        entries.append(entry)
    return entries


def output_text_logprobs(scored: list[TokenLogprob], top: int, for_event: bool = False) -> list[dict]:
    """The Responses API's: an `output_text` part's, each token with its UTF-8 bytes (empty for a
    token that is part of a multi-byte character, whose bytes are unknown here), or, `for_event`,
    a text delta or done event's, which have no bytes."""
    def entry(token: str, logprob: float) -> dict:
        return {"token": token, "logprob": logprob} if for_event else \
            {"token": token, "bytes": _bytes(token) or [], "logprob": logprob}

    return [{**entry(s.token, s.logprob), "top_logprobs": [entry(text, lp) for _, text, lp in s.top[:top]]}
            for s in scored]

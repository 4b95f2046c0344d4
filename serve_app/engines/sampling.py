"""Choosing each row's next token from its logits, with that row's own sampling params.

Rows of one batch may ask for different temperatures, top-p, top-k and seeds, so
the batch is not grouped by params: greedy rows take one vectorised argmax and
each sampling row is filtered and drawn on its own (a few rows of a 49k
vocabulary cost microseconds next to a forward pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch

from serve_app.engines.base import SamplingParams
from serve_app.engines.structured import apply_mask


@dataclass
class RowSampling:
    temperature: float = 0.0
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    # Each seeded row draws from its own generator, so its output does not depend
    # on which other requests happen to share its batch (best effort: the logits
    # themselves still carry batch-size-dependent rounding).
    generator: Optional[torch.Generator] = None
    # OpenAI's logit_bias: (token ids, values added to their logits), applied before choosing.
    bias: Optional[tuple[list[int], list[float]]] = None
    # Structured output: an llguidance matcher that masks what the grammar forbids and
    # is told each chosen token (serve_app/engines/structured.py).
    matcher: Optional[Any] = None
    # A reasoning model's row: the grammar waits for the end of its thinking (engines/reasoning.py).
    thinking: Optional[Any] = None
    logprobs: Optional[int] = None  # report the chosen token's log probability and this many alternatives

    @classmethod
    def create(cls, params: SamplingParams, matcher: Any = None, thinking: Any = None) -> "RowSampling":
        generator = None
        if params.seed is not None and params.temperature > 0:
            generator = torch.Generator().manual_seed(params.seed)
        bias = (list(params.logit_bias), list(params.logit_bias.values())) if params.logit_bias else None
        return cls(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                   generator=generator, bias=bias, matcher=matcher, thinking=thinking, logprobs=params.logprobs)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class TokenScore(NamedTuple):
    """A chosen token's log probability, and the `k` likeliest tokens' (id, log probability)."""

    logprob: float
    top: list[tuple[int, float]]


def next_tokens(logits: torch.Tensor, rows: list[RowSampling]) -> tuple[list[int], list[Optional[TokenScore]]]:
    """Each row's next token, and its score for rows that asked for logprobs.

    logits: [batch, vocab] for the last position of each row (changed in place by biases
    and masks). Scores are taken before that: the model's own distribution.
    """
    raw = {i: logits[i].float().log_softmax(-1) for i, row in enumerate(rows) if row.logprobs is not None}
    for i, row in enumerate(rows):
        if row.bias:
            ids, values = row.bias
            logits[i, ids] += torch.tensor(values, dtype=logits.dtype, device=logits.device)
        if row.matcher is not None:
            _constrain(logits[i], row)
    chosen = logits.argmax(dim=-1)
    for i, row in enumerate(rows):
        if not row.greedy:
            chosen[i] = _sample(logits[i].float(), row)
    tokens = chosen.tolist()
    for row, token in zip(rows, tokens):
        if row.matcher is not None and (row.thinking is None or row.thinking.observe(token)):
            row.matcher.consume_token(token)
    return tokens, [_score(raw[i], tokens[i], rows[i].logprobs) if i in raw else None for i in range(len(rows))]


def _constrain(logits: torch.Tensor, row: RowSampling) -> None:
    """The grammar's mask on one row: always, or for a reasoning model once it answers (and,
    while it may still open its think block, with the tokens that open it allowed too)."""
    watch = row.thinking
    if watch is None or watch.answering:
        apply_mask(logits, row.matcher)
    elif watch.undecided:
        opening = logits[watch.opening_ids].clone()
        apply_mask(logits, row.matcher)
        logits[watch.opening_ids] = opening


def _score(logprobs: torch.Tensor, token: int, k: int) -> TokenScore:
    top = torch.topk(logprobs, k) if k else None
    pairs = list(zip(top.indices.tolist(), top.values.tolist())) if top is not None else []
    return TokenScore(float(logprobs[token]), pairs)


def _sample(logits: torch.Tensor, row: RowSampling) -> int:
    logits = logits / row.temperature
    if row.top_k and 0 < row.top_k < logits.shape[-1]:
        kth = torch.topk(logits, row.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if row.top_p is not None and 0 < row.top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        # Keep the smallest prefix whose mass reaches top_p (always the best token).
        drop = cumulative - ordered.softmax(-1) >= row.top_p
        logits = logits.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    generator = row.generator
    if generator is not None and generator.device != probs.device:
        probs = probs.cpu()
    return int(torch.multinomial(probs, 1, generator=generator))

"""Choosing each row's next token from its logits, with that row's own sampling params.

Rows of one batch may ask for different temperatures, top-p, top-k and seeds, so
the batch is not grouped by params: greedy rows take one vectorised argmax and
each sampling row is filtered and drawn on its own (a few rows of a 49k
vocabulary cost microseconds next to a forward pass).

One row's numbers never reach another row: a row whose distribution turns out not to
be one (non-finite logits, nothing left to draw) fails alone (`Chosen.errors`) and the
batching loop ends that row only. Sampling values at the edge of their range behave as
vLLM's do: a tiny temperature is greedy (SamplingParams), top-p and top-k keep at least
the likeliest token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch

from serve_app.engines.base import SamplingParams
from serve_app.engines.transformers.structured import apply_mask


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
    # is told each chosen token (engines/transformers/structured.py).
    matcher: Optional[Any] = None
    # A reasoning model's row: the grammar waits for the end of its thinking (engines/reasoning.py).
    thinking: Optional[Any] = None
    logprobs: Optional[int] = None  # report the chosen token's log probability and this many alternatives
    presence: float = 0.0  # OpenAI's presence_penalty and frequency_penalty, on the tokens in `counts`
    frequency: float = 0.0
    counts: Optional[dict[int, int]] = None  # each token this row generated, how often (kept when penalised)
    repetition: float = 1.0  # vLLM's repetition_penalty, on the tokens in `seen`
    seen: Optional[set[int]] = None  # the prompt's tokens and those generated (kept when repetition != 1)
    min_p: float = 0.0

    @classmethod
    def create(cls, params: SamplingParams, matcher: Any = None, thinking: Any = None,
               prompt_ids: tuple[int, ...] = ()) -> "RowSampling":
        generator = None
        if params.seed is not None and params.temperature > 0:
            generator = torch.Generator().manual_seed(params.seed)
        bias = (list(params.logit_bias), list(params.logit_bias.values())) if params.logit_bias else None
        penalised = bool(params.presence_penalty or params.frequency_penalty)
        return cls(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                   generator=generator, bias=bias, matcher=matcher, thinking=thinking, logprobs=params.logprobs,
                   presence=params.presence_penalty, frequency=params.frequency_penalty,
                   counts={} if penalised else None, repetition=params.repetition_penalty,
                   seen=set(prompt_ids) if params.repetition_penalty != 1 else None, min_p=params.min_p)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class TokenScore(NamedTuple):
    """A chosen token's log probability, and the `k` likeliest tokens' (id, log probability)."""

    logprob: float
    top: list[tuple[int, float]]


class RowSamplingError(RuntimeError):
    """This row's next token could not be drawn; the batch's other rows go on."""


class Chosen(NamedTuple):
    tokens: list[int]  # a row that failed holds its argmax, only so the batch stays rectangular
    scores: list[Optional[TokenScore]]
    errors: dict[int, RowSamplingError]  # row index -> why that row alone fails


def next_tokens(logits: torch.Tensor, rows: list[RowSampling]) -> Chosen:
    """Each row's next token, and its score for rows that asked for logprobs.

    logits: [batch, vocab] for the last position of each row (changed in place by biases
    and masks). Scores are taken before that: the model's own distribution.
    """
    errors: dict[int, RowSamplingError] = {}
    raw = {i: logits[i].float().log_softmax(-1) for i, row in enumerate(rows) if row.logprobs is not None}
    for i, row in enumerate(rows):
        if row.bias:
            ids, values = row.bias
            logits[i, ids] += torch.tensor(values, dtype=logits.dtype, device=logits.device)
        if row.counts:
            ids, times = list(row.counts), torch.tensor(list(row.counts.values()), dtype=logits.dtype,
                                                        device=logits.device)
            logits[i, ids] -= row.frequency * times + row.presence
        if row.seen:
            ids = list(row.seen)
            picked = logits[i, ids]
            logits[i, ids] = torch.where(picked > 0, picked / row.repetition, picked * row.repetition)
        if row.matcher is not None:
            _constrain(logits[i], row)
        if row.thinking is not None and (forced := row.thinking.forced()) is not None:
            logits[i].fill_(float("-inf"))  # its thinking spent the budget: the end tag comes next
            logits[i, forced] = 0.0
    chosen = logits.argmax(dim=-1)
    for i in torch.isnan(logits).any(-1).nonzero().flatten().tolist():
        errors[i] = RowSamplingError("sampling failed for this request: the model's logits for it are NaN")
    for i, row in enumerate(rows):
        if not row.greedy and i not in errors:
            try:
                chosen[i] = _sample(logits[i].float(), row)
            except RowSamplingError as exc:
                errors[i] = exc
            except RuntimeError as exc:  # torch's own refusal (multinomial), with this row's numbers
                errors[i] = RowSamplingError(f"sampling failed for this request: {exc}")
    tokens = chosen.tolist()
    for i, (row, token) in enumerate(zip(rows, tokens)):
        if i in errors:
            continue
        if row.counts is not None:
            row.counts[token] = row.counts.get(token, 0) + 1
        if row.seen is not None:
            row.seen.add(token)
        answering = row.thinking.observe(token) if row.thinking is not None else True
        if row.matcher is not None and answering:
            row.matcher.consume_token(token)
    scores = [_score(raw[i], tokens[i], rows[i].logprobs) if i in raw else None for i in range(len(rows))]
    return Chosen(tokens, scores, errors)


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
    if row.min_p > 0:  # after temperature, as vLLM's; the likeliest token always passes
        probs = logits.softmax(-1)
        logits = logits.masked_fill(probs < row.min_p * probs.max(), float("-inf"))
    if row.top_k and 0 < row.top_k < logits.shape[-1]:
        kth = torch.topk(logits, row.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if row.top_p is not None and 0 < row.top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        probs = ordered.softmax(-1)
        # Keep the smallest prefix whose mass reaches top_p. The likeliest token is always
        # kept: a top_p below float32's smallest number (5e-324) rounds to 0 in the comparison.
        drop = probs.cumsum(-1) - probs >= row.top_p
        drop[0] = False
        logits = logits.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    if not bool(torch.isfinite(probs).all()):
        raise RowSamplingError(
            f"sampling failed for this request: its token probabilities are not finite "
            f"(temperature {row.temperature}, top_p {row.top_p}, top_k {row.top_k})"
        )
    generator = row.generator
    if generator is not None and generator.device != probs.device:
        probs = probs.cpu()
    return int(torch.multinomial(probs, 1, generator=generator))

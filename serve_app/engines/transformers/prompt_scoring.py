"""Prompt scoring: each prompt token's log probability given the tokens before it, from one
forward pass over the prompt. It is what lm-evaluation-harness's loglikelihood tasks ask for
(OpenAI's `echo` with `logprobs`; vLLM's `prompt_logprobs`).

It runs as a chore of the batching loop (scheduler.run_between_steps), on the loop's thread,
so that the model is never run by two threads at once and the pass sees the adapters loaded.
"""

from __future__ import annotations

from typing import Callable

import torch

from serve_app.engines.base import TokenAlternative, TokenLogprob

# Rows of log-softmax taken at once: a prompt of 4,096 tokens over a 150k vocabulary would
# otherwise want 2.4 GB of float32 for one request.
ROWS_AT_ONCE = 256


@torch.inference_mode()
def score_prompt(model, forward_kwargs: dict, ids: list[int], top: int,
                 decode: Callable[[int], str]) -> list[TokenLogprob]:
    """One entry per prompt token: the first has no log probability (nothing comes before it),
    each other the token's log probability under the raw model (no temperature, bias or grammar), its rank in
    the vocabulary (1: the likeliest) and the `top` likeliest tokens at that place."""
    logits = model(input_ids=torch.tensor([ids], device=model.device), **forward_kwargs).logits[0]
    scored = [TokenLogprob(ids[0], decode(ids[0]), None, [])]
    for start in range(0, len(ids) - 1, ROWS_AT_ONCE):
        rows = logits[start:min(start + ROWS_AT_ONCE, len(ids) - 1)].float().log_softmax(-1)
        actual = torch.tensor(ids[start + 1:start + 1 + len(rows)], device=rows.device)
        chosen = rows.gather(1, actual[:, None])[:, 0]
        ranks = (rows > chosen[:, None]).sum(-1) + 1
        best = torch.topk(rows, top) if top else None
        for i, token in enumerate(actual.tolist()):
            alternatives = [] if best is None else [
                TokenAlternative(t, decode(t), lp) for t, lp in zip(best.indices[i].tolist(), best.values[i].tolist())]
            scored.append(TokenLogprob(token, decode(token), float(chosen[i]), alternatives, int(ranks[i])))
    return scored

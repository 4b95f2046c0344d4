"""What the text2vec and reranker deployments return for one request.

Each result carries its own token usage so that a request is one deployment
call: two calls (work, then usage) would take two of the handle's queue slots,
and with a small `max_queued_requests` a request could refuse itself with 503.
"""

from __future__ import annotations

from typing import NamedTuple


class Embedded(NamedTuple):
    vectors: list[list[float]]
    prompt_tokens: int  # special tokens included: what the model reads


class Scored(NamedTuple):
    scores: list[float]  # one per document, in input order
    total_tokens: int

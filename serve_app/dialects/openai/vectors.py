"""The OpenAI dialect's vector answers: embeddings (floats or base64, shortened to `dimensions`)
and rerank (Cohere's and Jina's shape), from the text2vec and reranker deployments' results."""

from __future__ import annotations

import base64
from typing import Optional

import numpy as np

from serve_app.dialects.openai.protocol import EmbeddingRequest, RerankRequest
from serve_app.dialects.openai.responses import (
    EmbeddingData,
    EmbeddingResponse,
    EmbeddingUsage,
    RerankDocument,
    RerankResponse,
    RerankResult,
    RerankUsage,
)
from serve_app.engines.base import Embedded, Scored
from serve_app.errors import InvalidRequest
from serve_app.http.context import note_usage


def embeddings(req: EmbeddingRequest, embedded: Embedded, matryoshka: bool) -> EmbeddingResponse:
    """`matryoshka`: the model's leading dimensions embed on their own, so `dimensions` may shorten them."""
    limit = embedded.context_length
    if req.truncate_prompt_tokens is None:
        for i, count in enumerate(embedded.token_counts):
            if count > limit:
                raise InvalidRequest(f"input {i} has {count} tokens; this model reads at most {limit} "
                                     "(set truncate_prompt_tokens to -1 to cut each input to fit)")
    elif req.truncate_prompt_tokens > 0:
        limit = min(limit, req.truncate_prompt_tokens)
    vectors = _shortened(embedded.vectors, req.dimensions, matryoshka)

    def encode(v: list[float]):
        # The SDK decodes base64 as little-endian float32.
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() if req.encoding_format == "base64" else v

    tokens = sum(min(count, limit) for count in embedded.token_counts)  # what the model read
    note_usage(tokens)
    return EmbeddingResponse(
        data=[EmbeddingData(index=i, embedding=encode(v)) for i, v in enumerate(vectors)],
        model=req.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _shortened(vectors: list[list[float]], dimensions: Optional[int], matryoshka: bool) -> list[list[float]]:
    """The first `dimensions` of each vector, scaled back to unit length (as OpenAI's text-embedding-3)."""
    native = len(vectors[0]) if vectors else 0
    if dimensions is None or dimensions == native:
        return vectors
    if not matryoshka or dimensions > native:
        why = "is not trained to be shortened (text2vec arg matryoshka)" if dimensions < native else "cannot grow"
        raise InvalidRequest(f"dimensions: this model makes {native}-dimensional vectors, which {why}")
    short = np.asarray(vectors, dtype=np.float32)[:, :dimensions]
    return (short / np.linalg.norm(short, axis=1, keepdims=True).clip(min=1e-12)).tolist()


def rerank(req: RerankRequest, scored: Scored) -> RerankResponse:
    """Cohere/Jina's shape: the best `top_n` documents first."""
    documents = req.texts()
    ranked = sorted(range(len(scored.scores)), key=lambda i: scored.scores[i], reverse=True)[: req.top_n]
    results = [
        RerankResult(
            index=i,
            relevance_score=scored.scores[i],
            document=RerankDocument(text=documents[i]) if req.return_documents else None,
        )
        for i in ranked
    ]
    note_usage(scored.total_tokens)
    return RerankResponse(model=req.model, results=results, usage=RerankUsage(total_tokens=scored.total_tokens))

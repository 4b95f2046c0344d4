"""The `reranker` worker type: relevance scores of documents for a query.

Two methods: a sentence-transformers CrossEncoder, or the cosine similarity of an
embedding model's vectors (no cross-encoder ships inside a PyPI package, so the
default config reranks with the text2vec model). Concurrent requests are merged
by `@serve.batch`.
"""

import logging
import time
from typing import Optional

from ray import serve
from ray.serve import Application

from deployments.sentence_worker import SentenceWorker
from serve_app.config.workers import DEFAULT_ACTOR_OPTIONS, RerankerArgs
from serve_app.engines.base import Scored

logger = logging.getLogger("ray.serve")


@serve.deployment(name="reranker", max_ongoing_requests=32, ray_actor_options=DEFAULT_ACTOR_OPTIONS["reranker"])
class RerankerWorker(SentenceWorker):
    worker_type = "reranker"

    def __init__(self, args: RerankerArgs):
        from sentence_transformers import CrossEncoder, SentenceTransformer

        super().__init__(args, CrossEncoder if args.method == "cross_encoder" else SentenceTransformer)

    async def rerank(self, query: str, documents: list[str], span_id: str = "", sent_at: Optional[float] = None,
                     trace_context: Optional[dict] = None) -> Scored:
        logger.info("model=%s span_id=%s rerank n=%d", self.name, span_id, len(documents))
        taken = time.time()
        scores = await self.batch((query, documents))
        return Scored(scores, self._count_tokens(query, documents), *self.timing(sent_at, taken, trace_context))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def batch(self, requests: list[tuple[str, list[str]]]) -> list[list[float]]:
        pairs = sum(len(docs) for _, docs in requests)
        with self.metrics.batch(len(requests), pairs, sum(self._count_tokens(q, docs) for q, docs in requests)):
            return self._score(requests)

    def _score(self, requests: list[tuple[str, list[str]]]) -> list[list[float]]:
        if self.args.method == "cross_encoder":
            pairs = [(q, d) for q, docs in requests for d in docs]
            flat = self.model.predict(pairs, convert_to_numpy=True).reshape(-1).tolist()
        else:
            texts = [t for q, docs in requests for t in [q, *docs]]
            vectors = self.model.encode(texts, normalize_embeddings=True, convert_to_tensor=True)
            flat, i = [], 0
            for q, docs in requests:
                flat += (vectors[i + 1 : i + 1 + len(docs)] @ vectors[i]).tolist()
                i += 1 + len(docs)
        out, i = [], 0
        for _, docs in requests:
            out.append(flat[i : i + len(docs)])
            i += len(docs)
        return out

    def _count_tokens(self, query: str, documents: list[str]) -> int:
        """Tokens the model reads for a rerank call (usage)."""
        tok = self.model.tokenizer
        if self.args.method == "cross_encoder":
            return sum(len(ids) for ids in tok([query] * len(documents), documents)["input_ids"])
        return sum(len(ids) for ids in tok([query, *documents])["input_ids"])

    async def model_metadata(self) -> dict:
        # CrossEncoder calls its limit max_length, SentenceTransformer max_seq_length.
        limit = getattr(self.model, "max_length", None) or self.model.max_seq_length
        return {"model": self.name, "context_length": int(limit), "chat_model": False,
                "metadata": {"method": self.args.method, "device": str(self.model.device),
                             "replica_id": self.replica_id()}}

    def check_health(self) -> None:
        # A one-word forward pass (a few ms): a replica whose model can no longer
        # answer fails here, and Serve replaces it.
        if self.args.method == "cross_encoder":
            self.model.predict([("health", "check")])
        else:
            self.model.encode(["health"])


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    return RerankerWorker.bind(RerankerArgs.model_validate(args))

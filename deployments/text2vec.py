"""The `text2vec` worker type: a sentence-transformers embedding model.

Concurrent requests are merged into one `encode` call by `@serve.batch`, whose
limits come from the application's args.
"""

from __future__ import annotations

import logging

from ray import serve
from ray.serve import Application

from deployments.sentence_worker import SentenceWorker
from serve_app.config import Text2VecArgs
from serve_app.engines.base import Embedded
from serve_app.placement import DEFAULT_ACTOR_OPTIONS

# Serve routes this logger into each replica's log file, tagged with the request id.
logger = logging.getLogger("ray.serve")


@serve.deployment(name="text2vec", max_ongoing_requests=64, ray_actor_options=DEFAULT_ACTOR_OPTIONS["text2vec"])
class Text2VecWorker(SentenceWorker):
    worker_type = "text2vec"

    def __init__(self, args: Text2VecArgs):
        from sentence_transformers import SentenceTransformer

        super().__init__(args, SentenceTransformer)

    async def embeddings(self, texts: list[str], span_id: str = "") -> Embedded:
        logger.info("model=%s span_id=%s embeddings n=%d", self.name, span_id, len(texts))
        counts = [len(ids) for ids in self.model.tokenizer(texts)["input_ids"]] if texts else []
        return Embedded(await self.batch(texts), counts)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def batch(self, requests: list[list[str]]) -> list[list[list[float]]]:
        flat = [t for texts in requests for t in texts]
        vectors = self.model.encode(
            flat, normalize_embeddings=self.args.normalize_embeddings, convert_to_numpy=True
        ).tolist()
        out, i = [], 0
        for texts in requests:
            out.append(vectors[i : i + len(texts)])
            i += len(texts)
        return out

    async def model_metadata(self) -> dict:
        return {
            "model": self.name,
            "context_length": int(self.model.max_seq_length),
            "chat_model": False,
            "metadata": {
                "dimensions": self.model.get_embedding_dimension(),
                "max_batch_size": self.args.max_batch_size,
                "device": str(self.model.device),
                "replica_id": self.replica_id(),
            },
        }

    def check_health(self) -> None:
        # A one-word forward pass (a few ms): a replica whose model can no longer
        # answer fails here, and Serve replaces it.
        self.model.encode(["health"])


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    return Text2VecWorker.bind(Text2VecArgs.model_validate(args))

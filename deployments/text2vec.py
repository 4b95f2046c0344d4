"""The `text2vec` worker type: a sentence-transformers embedding model.

Concurrent requests are merged into one `encode` call by `@serve.batch`, whose
limits come from the application's args.
"""

from __future__ import annotations

import logging

from ray import serve
from ray.serve import Application

from serve_app.config import Text2VecArgs
from serve_app.engines.hf import pick_device
from serve_app.results import Embedded
from serve_app.sources import local_dir

# Serve routes this logger into each replica's log file, tagged with the request id.
logger = logging.getLogger("ray.serve")


@serve.deployment(name="text2vec", max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
class Text2VecWorker:
    def __init__(self, args: Text2VecArgs):
        from sentence_transformers import SentenceTransformer

        self.name = serve.get_replica_context().app_name
        self.args = args
        directory, gguf_file = local_dir(args.source, args.cache_dir)
        if gguf_file:
            raise ValueError(f"model source '{args.source}': text2vec models cannot load GGUF files")
        self.model = SentenceTransformer(
            directory, device=pick_device(args.device), trust_remote_code=args.trust_remote_code
        )
        self._apply_batch_limits()

    def _apply_batch_limits(self) -> None:
        self.embed_batch.set_max_batch_size(self.args.max_batch_size)
        self.embed_batch.set_batch_wait_timeout_s(self.args.batch_wait_timeout_s)

    def reconfigure(self, user_config: dict) -> None:
        """Batch limits set through user_config change in place, with no restart."""
        self.args = self.args.model_validate({**self.args.model_dump(), **user_config})
        self._apply_batch_limits()

    async def embeddings(self, texts: list[str], span_id: str = "") -> Embedded:
        logger.info("model=%s span_id=%s embeddings n=%d", self.name, span_id, len(texts))
        tokens = sum(len(ids) for ids in self.model.tokenizer(texts)["input_ids"]) if texts else 0
        return Embedded(await self.embed_batch(texts), tokens)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def embed_batch(self, requests: list[list[str]]) -> list[list[list[float]]]:
        flat = [t for texts in requests for t in texts]
        vectors = self.model.encode(
            flat, normalize_embeddings=self.args.normalize_embeddings, convert_to_numpy=True
        ).tolist()
        out, i = [], 0
        for texts in requests:
            out.append(vectors[i : i + len(texts)])
            i += len(texts)
        return out

    async def count_token(self, prompt: str) -> int:
        return len(self.model.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    async def model_metadata(self) -> dict:
        return {
            "model": self.name,
            "context_length": int(self.model.max_seq_length),
            "chat_model": False,
            "metadata": {
                "dimensions": self.model.get_embedding_dimension(),
                "max_batch_size": self.args.max_batch_size,
                "device": str(self.model.device),
                "replica_id": serve.get_replica_context().replica_id.unique_id,
            },
        }

    def check_health(self) -> None:
        # A one-word forward pass (a few ms): a replica whose model can no longer
        # answer fails here, and Serve replaces it.
        self.model.encode(["health"])


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    return Text2VecWorker.bind(Text2VecArgs.model_validate(args))

"""The `text2vec` worker type: a sentence-transformers embedding model.

Concurrent requests are merged into one `encode` call by `@serve.batch`, whose
limits come from the application's args.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from ray import serve
from ray.serve import Application

from deployments.sentence_worker import SentenceWorker
from serve_app.config.workers import DEFAULT_ACTOR_OPTIONS, Text2VecArgs
from serve_app.engines.base import Embedded, InvalidPromptError

ENCODE_GROUP = 32  # rows per forward pass: sentence-transformers' own default batch size

# Serve routes this logger into each replica's log file, tagged with the request id.
logger = logging.getLogger("ray.serve")


@serve.deployment(name="text2vec", max_ongoing_requests=64, ray_actor_options=DEFAULT_ACTOR_OPTIONS["text2vec"])
class Text2VecWorker(SentenceWorker):
    worker_type = "text2vec"

    def __init__(self, args: Text2VecArgs):
        from sentence_transformers import SentenceTransformer

        super().__init__(args, SentenceTransformer)

    async def embeddings(self, inputs: list[str | list[int]], span_id: str = "", keep: Optional[int] = -1,
                         sent_at: Optional[float] = None, trace_context: Optional[dict] = None) -> Embedded:
        """Vectors of texts or token-id lists, and each input's uncut token count. Each input is
        cut to `keep` tokens (-1: the model's most). With `keep` None an input longer than the
        model reads is not embedded (its vector is empty): the caller refuses the request, and
        no forward pass was spent on it."""
        logger.info("model=%s span_id=%s embeddings n=%d", self.name, span_id, len(inputs))
        taken = time.time()
        limit = self.context_length if keep is None or keep < 0 else min(keep, self.context_length)
        texts = [x for x in inputs if isinstance(x, str)]
        whole = iter(self.model.tokenizer(texts)["input_ids"] if texts else [])
        counts, ids = [], []
        for x in inputs:
            if isinstance(x, str):
                x_ids = next(whole)
                counts.append(len(x_ids))
                # Only a text too long is tokenized again, cut by the tokenizer so its closing special token stays.
                ids.append(x_ids if len(x_ids) <= limit else
                           self.model.tokenizer(x, truncation=True, max_length=limit)["input_ids"])
            else:  # token ids are cut as given
                self._check_ids(x)
                counts.append(len(x))
                ids.append(x[:limit])
        refused = {i for i, count in enumerate(counts) if keep is None and count > limit}
        kept = [row for i, row in enumerate(ids) if i not in refused]
        vectors = iter(await self.batch(kept) if kept else [])
        return Embedded([[] if i in refused else next(vectors) for i in range(len(ids))], counts, self.context_length,
                        *self.timing(sent_at, taken, trace_context))

    @property
    def context_length(self) -> int:
        return int(self.model.max_seq_length)

    def _check_ids(self, ids: list[int]) -> None:
        vocab = len(self.model.tokenizer)
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise InvalidPromptError(f"input: token {bad[0]} is not one of this model's (0 to {vocab - 1})")

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def batch(self, requests: list[list[list[int]]]) -> list[list[list[float]]]:
        flat = [ids for request in requests for ids in request]
        with self.metrics.batch(len(requests), len(flat), sum(len(ids) for ids in flat)):
            vectors = self._forward(flat)
        out, i = [], 0
        for request in requests:
            out.append(vectors[i : i + len(request)])
            i += len(request)
        return out

    def _forward(self, rows: list[list[int]]) -> list[list[float]]:
        """The model's pipeline (transformer, pooling, its own normalisation) on token ids.

        sentence-transformers' `encode` takes only text; these are the features its own
        tokenizer step would make, fed to the same modules, in length-sorted groups as
        `encode` does, so a text's vector is the one `encode` gives.
        """
        # Imported here, in the replica: Serve imports this module to build the application
        # too, where torch's second of import delayed the replica's start at every `make run`.
        import torch

        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        vectors: list = [None] * len(rows)
        pad = self.model.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), ENCODE_GROUP):
                group = [rows[i] for i in order[start : start + ENCODE_GROUP]]
                width = max(len(r) for r in group)
                input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in group])
                features = {"input_ids": input_ids,
                            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in group])}
                if "token_type_ids" in self.model.tokenizer.model_input_names:
                    features["token_type_ids"] = torch.zeros_like(input_ids)
                out = self.model.forward({k: v.to(self.model.device) for k, v in features.items()})["sentence_embedding"]
                if self.args.normalize_embeddings:
                    out = torch.nn.functional.normalize(out, dim=-1)
                for i, vector in zip(order[start : start + ENCODE_GROUP], out.float().cpu().tolist()):
                    vectors[i] = vector
        return vectors

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

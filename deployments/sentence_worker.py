"""What the text2vec and reranker workers share: a sentence-transformers model
loaded from a model source, and `@serve.batch` limits that `user_config` changes
in place. Each subclass decorates its own `batch` method with `@serve.batch`."""

from __future__ import annotations

import time
from typing import Optional

from serve_app import tracing
from serve_app.config.workers import RerankerArgs, Text2VecArgs
from serve_app.replica import progress
from serve_app.replica.context import model_name, pick_device, replica_id, set_threads
from serve_app.replica.metrics import BatchMetrics
from serve_app.replica.sources import local_dir


class SentenceWorker:
    worker_type: str

    def __init__(self, args: Text2VecArgs | RerankerArgs, model_class: type):
        self.name = model_name(args.source)
        self.args = args
        tracing.setup(f"smmf-serve/{self.name}")
        set_threads(args.num_threads)
        progress.report(progress.LOADING)
        directory, gguf_file = local_dir(args.source, args.cache_dir)
        if gguf_file:
            raise ValueError(f"model source '{args.source}': {self.worker_type} models cannot load GGUF files")
        self.model = model_class(directory, device=pick_device(args.device), trust_remote_code=args.trust_remote_code)
        self._apply_batch_limits()
        self.metrics = BatchMetrics(self.name, self.worker_type)
        progress.done()

    def _apply_batch_limits(self) -> None:
        self.batch.set_max_batch_size(self.args.max_batch_size)
        self.batch.set_batch_wait_timeout_s(self.args.batch_wait_timeout_s)

    def reconfigure(self, user_config: dict) -> None:
        """Batch limits set through user_config change in place, with no restart."""
        self.args = self.args.model_validate({**self.args.model_dump(), **user_config})
        self._apply_batch_limits()

    async def count_token(self, prompt: str) -> int:
        return len(self.model.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def replica_id(self) -> str:
        return replica_id()

    @staticmethod
    def timing(sent_at: Optional[float], taken: float, trace_context: Optional[dict] = None
               ) -> tuple[Optional[float], float]:
        """(the wait before this replica took the call, its time on it since); both also as spans
        of the request's trace when tracing is on (serve_app/tracing.py)."""
        done = time.time()
        if tracing.enabled() and trace_context:
            if sent_at:
                tracing.timed_span("queue", trace_context, sent_at, taken)
            tracing.timed_span("compute", trace_context, taken, done)
        return (max(0.0, taken - sent_at) if sent_at else None), done - taken

"""A text2vec or reranker replica's batches as metrics (an llm's are engines/metrics.py):
requests and inputs merged into each batch, its tokens, and its time."""

from __future__ import annotations

import contextlib
import time

from ray.serve import metrics

_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
_TOKENS = [16, 64, 256, 1024, 4096, 16384, 65536]


class BatchMetrics:
    def __init__(self, model: str, worker_type: str):
        tags = ("model", "worker_type")

        def tagged(metric):
            metric.set_default_tags({"model": model, "worker_type": worker_type})
            return metric

        self.requests = tagged(metrics.Histogram("smmf_batch_requests", "Requests merged into one batch.",
                                                 boundaries=_COUNTS, tag_keys=tags))
        self.inputs = tagged(metrics.Histogram("smmf_batch_inputs", "Texts (or query-document pairs) in one batch.",
                                               boundaries=_COUNTS, tag_keys=tags))
        self.tokens = tagged(metrics.Histogram("smmf_batch_tokens", "Tokens the model read in one batch.",
                                               boundaries=_TOKENS, tag_keys=tags))
        self.seconds = tagged(metrics.Histogram("smmf_batch_seconds", "Seconds one batch's forward passes took.",
                                                boundaries=_SECONDS, tag_keys=tags))

    @contextlib.contextmanager
    def batch(self, requests: int, inputs: int, tokens: int):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds.observe(time.perf_counter() - started)
            self.requests.observe(requests)
            self.inputs.observe(inputs)
            self.tokens.observe(tokens)

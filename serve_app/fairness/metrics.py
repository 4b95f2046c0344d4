"""The fair queue's series, through Ray's metrics (as engines/metrics.py): each carries
`model`; Serve adds the replica's tags."""

from __future__ import annotations

from ray.serve import metrics

from serve_app.config.fairness import BANDS

_WAIT_BOUNDARIES_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]


class QueueMetrics:
    """fairness/queue.py's Observer."""

    def __init__(self, model: str):
        def tagged(metric):
            metric.set_default_tags({"model": model})
            return metric

        self._waited = tagged(metrics.Histogram(
            "smmf_queue_wait_s", "Seconds a request waited in an llm replica's fair queue for a place, by band.",
            boundaries=_WAIT_BOUNDARIES_S, tag_keys=("model", "band")))
        self._depth = tagged(metrics.Gauge(
            "smmf_queue_depth", "Requests waiting in an llm replica's fair queue, by band.", tag_keys=("model", "band")))
        self._service = tagged(metrics.Counter(
            "smmf_key_model_tokens", "Tokens served by API key and model, as they are produced: prompt or completion.",
            tag_keys=("model", "key_id", "kind")))
        for band in BANDS:  # a series from the start, so a dashboard shows an empty queue as 0
            self.depth(band, 0)

    def waited(self, band: str, seconds: float) -> None:
        self._waited.observe(seconds, {"band": band})

    def depth(self, band: str, waiting: int) -> None:
        self._depth.set(waiting, {"band": band})

    def served(self, key: str, prompt_tokens: int, completion_tokens: int) -> None:
        if prompt_tokens:
            self._service.inc(prompt_tokens, {"key_id": key, "kind": "prompt"})
        if completion_tokens:
            self._service.inc(completion_tokens, {"key_id": key, "kind": "completion"})

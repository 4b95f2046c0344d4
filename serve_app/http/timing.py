"""Where a request's time went, as the server sees it: the wait before a replica took it
(`queue`), the engine's time to the first token (`prefill`; for embeddings and rerank, the
replica's time on the call), the rest of the answer (`decode`), and everything else on
the request's path (`serving`: proxy, ingress, handles; what is left of the latency).

The parts come from the model's deployment (deployments/llm.py, text2vec.py,
reranker.py) and are noted on the request's record; here they become a `Server-Timing`
header (browsers' dev tools and `curl -v` show it; a stream's has what is known when
its answer starts: queue and prefill) and, when the response ends, the
`smmf_request_time_split_s` histogram tagged with model, route and part (beside
`smmf_requests`, every request by model, route and status).
"""

from __future__ import annotations

from typing import Optional

from ray.serve import metrics

PARTS = ("queue", "prefill", "decode")
_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]


def split(record: dict, elapsed_s: float) -> Optional[dict[str, float]]:
    """{part: seconds} of a request that reached a model (None otherwise); `serving` is what the
    model's parts leave of `elapsed_s`."""
    parts = {part: record[f"{part}_s"] for part in PARTS if record.get(f"{part}_s") is not None}
    if "prefill" not in parts:
        return None
    parts["serving"] = max(0.0, elapsed_s - sum(parts.values()))
    return parts


def server_timing(parts: dict[str, float]) -> bytes:
    return ", ".join(f"{part};dur={seconds * 1000:.1f}" for part, seconds in parts.items()).encode()


class RequestMetrics:
    """Every request by model, route and status (Serve's own HTTP metrics know no model), and
    the time split of those that reached a model."""

    def __init__(self):
        self.requests = metrics.Counter("smmf_requests", "Requests by model, route and HTTP status.",
                                        tag_keys=("model", "route", "status"))
        self.seconds = metrics.Histogram(
            "smmf_request_time_split_s",
            "Seconds of a request in each part of its path: queue, prefill, decode, serving.",
            boundaries=_SECONDS, tag_keys=("model", "route", "part"))

    def observe(self, model: str, route: str, status: int, parts: Optional[dict[str, float]]) -> None:
        self.requests.inc(1, {"model": model, "route": route, "status": str(status)})
        for part, seconds in (parts or {}).items():
            self.seconds.observe(seconds, {"model": model, "route": route, "part": part})

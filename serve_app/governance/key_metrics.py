"""Per-key series on the Ray dashboard and Prometheus (serve_app/governance/admission.py
records them as it admits and counts requests)."""

from __future__ import annotations

from ray.serve import metrics


class KeyMetrics:
    """Per-key series on the Ray dashboard and Prometheus, tagged with the key's id (never the key)."""

    def __init__(self):
        self.requests = metrics.Counter("smmf_key_requests", "Requests by API key and outcome.",
                                        tag_keys=("key_id", "outcome"))
        self.tokens = metrics.Counter("smmf_key_tokens", "Tokens by API key: prompt or completion.",
                                      tag_keys=("key_id", "kind"))

    def served(self, key_id: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests.inc(1, {"key_id": key_id, "outcome": "served"})
        if prompt_tokens:
            self.tokens.inc(prompt_tokens, {"key_id": key_id, "kind": "prompt"})
        if completion_tokens:
            self.tokens.inc(completion_tokens, {"key_id": key_id, "kind": "completion"})

    def refused(self, key_id: str, reason: str) -> None:
        self.requests.inc(1, {"key_id": key_id, "outcome": f"refused_{reason}"})

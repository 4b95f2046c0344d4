"""Each key's share of each model: the tokens it was served there, in all and over the last
minute, beside every key's on the same model (`GET /api/keys/{id}/usage`).

Pure bookkeeping, kept by the governor (governor.py) from the counts the ingress replicas
send when responses end. The fair queue (serve_app/fairness/) orders requests by the service
each replica gave; this is the cluster's view of what came of it.
"""

from __future__ import annotations

import collections
import time
from typing import Optional

from serve_app.governance.quotas import WINDOW_S


class ModelShares:
    def __init__(self):
        self.recent: dict[str, collections.deque[tuple[float, str, int]]] = {}  # model -> (when, key, tokens)
        self.totals: collections.Counter[tuple[str, str]] = collections.Counter()  # (key, model) -> tokens

    def add(self, key_id: str, model: str, tokens: int, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        self._last_minute(model, now).append((now, key_id, tokens))
        self.totals[(key_id, model)] += tokens

    def _last_minute(self, model: str, now: float) -> collections.deque[tuple[float, str, int]]:
        """The model's counts of the last minute, older ones let go (on every count, so that the
        governor holds a minute of them, not every count since the last report)."""
        recent = self.recent.setdefault(model, collections.deque())
        while recent and now - recent[0][0] >= WINDOW_S:
            recent.popleft()
        return recent

    def report(self, key_id: str, now: Optional[float] = None) -> dict[str, dict]:
        """{model: {tokens, last_minute: {tokens, all_keys_tokens, share}}} for each model the key used."""
        now = time.monotonic() if now is None else now
        report = {}
        for (key, model), total in sorted(self.totals.items()):
            if key != key_id:
                continue
            recent = self._last_minute(model, now)
            mine = sum(n for _, k, n in recent if k == key_id)
            every = sum(n for _, _, n in recent)
            report[model] = {"tokens": total, "last_minute": {"tokens": mine, "all_keys_tokens": every,
                                                              "share": round(mine / every, 4) if every else None}}
        return report

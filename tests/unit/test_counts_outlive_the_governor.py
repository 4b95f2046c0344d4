"""An ingress replica keeps the counts it could not send while the governor restarts (#32: the
governor goes with the head's loss): they reach the governor once it answers again, none lost
and none counted twice. The cluster tier's head loss shows the same on a real cluster."""

from __future__ import annotations

import asyncio

from serve_app.governance import admission
from serve_app.governance.admission import Admission
from serve_app.governance.keys import KeyRecord

KEY = KeyRecord(id="k1", key_sha256="0" * 64, name="user", scope="inference")


class RestartingGovernor:
    """Stands in for the governor's handle: its first `down` count calls fail, as calls to a
    governor whose node was lost do, then it counts."""

    def __init__(self, down: int):
        self.down, self.counted = down, []
        self.count = self

    def remote(self, key_id, prompt_tokens, completion_tokens, requests, by_model=None):
        async def call():
            if self.down:
                self.down -= 1
                raise RuntimeError("the governor's actor died")
            self.counted.append((key_id, prompt_tokens, completion_tokens, requests, by_model))
        return call()


def test_counts_sent_while_the_governor_is_down_arrive_once_it_is_back(monkeypatch):
    monkeypatch.setattr(admission, "COUNT_EVERY_S", 0.01)
    governor = RestartingGovernor(down=3)

    async def run():
        gate = Admission(governor, [])
        for _ in range(4):
            gate.served(KEY, 3, 5, "m")
            await asyncio.sleep(0.005)
        for _ in range(100):
            if governor.down == 0 and not gate._unsent and not gate._pending:
                break
            await asyncio.sleep(0.01)

    asyncio.run(run())
    assert governor.down == 0, "the governor was never called again"
    totals = [sum(c[i] for c in governor.counted) for i in (1, 2, 3)]
    assert totals == [12, 20, 4], governor.counted  # four requests' tokens, each counted once
    assert sum(c[4]["m"] for c in governor.counted) == 32, "and their tokens per model, once"

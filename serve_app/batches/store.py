"""Batches in the router's store (serve_app/kv.py): each batch's record, one result per line
as it finishes, and cancel marks.

The runner is the only writer of a batch's record once it is made; a cancel, which any
ingress replica may take, leaves a mark of its own (two writers of one record would lose
each other's updates). A line's result is stored before it counts as done, keyed by its
line number (custom_ids are unique in a batch, checked when it is made): a runner that
starts again skips every line with a result, so no line is lost or answered twice in the
output. The results go once the batch's output and error files are written.
"""

from __future__ import annotations

import json
import time
from typing import Optional

from serve_app.batches.files import visible
from serve_app.batches.protocol import UNFINISHED, Batch
from serve_app.errors import NotFound
from serve_app.kv import Store

PREFIX, RESULTS, CANCELS = "batch/", "batch-result/", "batch-cancel/"


class BatchStore:
    def __init__(self, kv: Store):
        self.kv = kv

    def put(self, batch: Batch, owner: Optional[str]) -> Batch:
        self.kv.put(PREFIX + batch.id, json.dumps({"batch": batch.model_dump(), "key": owner}))
        return batch

    def _record(self, batch_id: str) -> Optional[dict]:
        raw = self.kv.get(PREFIX + batch_id)
        return json.loads(raw) if raw else None

    def owner(self, batch_id: str) -> Optional[str]:
        return (self._record(batch_id) or {}).get("key")

    def get(self, batch_id: str, key=None, check: bool = False) -> Batch:
        """The batch as callers see it: `cancelling` from the moment a cancel was asked."""
        record = self._record(batch_id)
        if record is None or (check and not visible(record["key"], key)):
            raise NotFound(f"No such Batch object: {batch_id}")
        batch = Batch.model_validate(record["batch"])
        asked = self.cancel_asked(batch_id)
        if asked and batch.status in ("validating", "in_progress"):
            batch = batch.model_copy(update={"status": "cancelling", "cancelling_at": int(asked)})
        return batch

    def list(self, key) -> list[Batch]:
        """The batches `key` may see, newest first."""
        mine = [bid for bid, raw in self.kv.items(PREFIX).items() if visible(json.loads(raw)["key"], key)]
        return sorted((self.get(bid) for bid in mine), key=lambda b: (b.created_at, b.id), reverse=True)

    def ask_cancel(self, batch_id: str) -> None:
        if not self.cancel_asked(batch_id):
            self.kv.put(CANCELS + batch_id, str(time.time()))

    def cancel_asked(self, batch_id: str) -> Optional[float]:
        raw = self.kv.get(CANCELS + batch_id)
        return float(raw) if raw else None

    def keep_result(self, batch_id: str, line_no: int, ok: bool, line: dict) -> None:
        self.kv.put(f"{RESULTS}{batch_id}/{line_no:09d}", json.dumps({"ok": ok, "line": line}))

    def results(self, batch_id: str) -> dict[int, dict]:
        """{line number: {"ok", "line"}} of the lines that finished."""
        return {int(n): json.loads(raw) for n, raw in self.kv.items(f"{RESULTS}{batch_id}/").items()}

    def drop_results(self, batch_id: str) -> None:
        for n in self.kv.items(f"{RESULTS}{batch_id}/"):
            self.kv.delete(f"{RESULTS}{batch_id}/{n}")

    def unfinished(self) -> list[str]:
        return [bid for bid, raw in self.kv.items(PREFIX).items()
                if json.loads(raw)["batch"]["status"] in UNFINISHED]

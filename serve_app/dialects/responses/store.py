"""Stored responses, for `previous_response_id`, `GET`/`DELETE /v1/responses/{id}` and
`GET /v1/responses/{id}/input_items`.

In the router's store (serve_app/kv.py), so every ingress replica reads what another stored
and a restart loses nothing. Bounds, documented in docs/api.md: a response and the
conversation before it are kept while their JSON is at most 1 MiB (larger ones are
answered but not stored: `store` comes back false), and for 30 days from their
creation; an expired response is gone on its next read, and every 256th store sweeps
all expired ones. A response belongs to the API key that made it: another key reads it
as not found.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any, Optional

from serve_app.errors import NotFound
from serve_app.kv import Store

PREFIX = "response/"
CANCEL_PREFIX = "response-cancel/"
MAX_BYTES = 1 << 20
MAX_AGE_S = 30 * 24 * 3600
SWEEP_EVERY = 256


def _as_listed(item: dict[str, Any], item_id: str) -> dict[str, Any]:
    """An input item as OpenAI lists it: with an id, and a message's text as content parts."""
    item = {"id": item.get("id") or item_id, **item}
    if "role" in item:
        item.setdefault("type", "message")
        item.setdefault("status", "completed")
        if isinstance(item.get("content"), str):
            part = "output_text" if item["role"] == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
    return item


class ResponseStore:
    def __init__(self, kv: Store):
        self.kv = kv
        self._writes = itertools.count(1)

    def put(self, response: dict[str, Any], conversation: list[dict[str, Any]], key_id: Optional[str],
            input_from: Optional[int] = None, background: bool = False) -> bool:
        """Keep `response` and the items before it (its whole conversation, of which its own
        input starts at `input_from`: what `input_items` lists); False when over the size bound.
        The input items' ids come from the response's id, so a background response, stored again
        as it moves on, keeps them."""
        input_from = len(conversation) if input_from is None else input_from
        ids = [f"msg_{uuid.uuid5(uuid.NAMESPACE_URL, response['id'] + f'/{i}').hex}"
               for i in range(len(conversation) - input_from)]
        record = json.dumps({"response": response, "conversation": conversation, "input_from": input_from,
                             "input_ids": ids, "key": key_id, "at": time.time(), "background": background})
        if len(record) > MAX_BYTES:
            return False
        self.kv.put(PREFIX + response["id"], record)
        if next(self._writes) % SWEEP_EVERY == 0:
            self.sweep()
        return True

    def get(self, response_id: str, key_id: Optional[str]) -> dict[str, Any]:
        raw = self.kv.get(PREFIX + response_id)
        record = json.loads(raw) if raw else None
        if record is not None and time.time() - record["at"] > MAX_AGE_S:
            self.kv.delete(PREFIX + response_id)
            record = None
        if record is None or record["key"] != key_id:
            raise NotFound(f"response '{response_id}' not found")
        return record

    def input_items(self, response_id: str, key_id: Optional[str]) -> list[dict[str, Any]]:
        """A stored response's own input items, oldest first, as OpenAI lists them."""
        record = self.get(response_id, key_id)
        own = record["conversation"][record.get("input_from", len(record["conversation"])):]
        return [_as_listed(item, item_id) for item, item_id in zip(own, record.get("input_ids", []))]

    def ask_to_cancel(self, response_id: str) -> None:
        """Mark a background response for cancelling: the replica running it stops it (background.py)."""
        self.kv.put(CANCEL_PREFIX + response_id, str(time.time()))

    def cancel_asked(self, response_id: str) -> bool:
        return self.kv.get(CANCEL_PREFIX + response_id) is not None

    def delete(self, response_id: str, key_id: Optional[str]) -> None:
        self.get(response_id, key_id)
        self.kv.delete(PREFIX + response_id)
        self.kv.delete(CANCEL_PREFIX + response_id)

    def sweep(self) -> None:
        now = time.time()
        for response_id, raw in self.kv.items(PREFIX).items():
            if now - json.loads(raw)["at"] > MAX_AGE_S:
                self.kv.delete(PREFIX + response_id)
                self.kv.delete(CANCEL_PREFIX + response_id)

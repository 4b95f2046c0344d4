"""Text from token ids as they arrive, without decoding the whole answer at every step.

A token's text can depend on the tokens before it (a multi-byte character split over
tokens, a tokenizer's leading-space rules), so each new token is decoded with a few
tokens before it and only what is new is kept: the window decoded is short whatever
the answer's length, as vLLM's incremental detokenizer does, where decoding every id
at every step costs time quadratic in the answer's length.
"""

from __future__ import annotations

INCOMPLETE = "\ufffd"  # what decode() shows for half of a multi-byte character


class IncrementalDecoder:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # where the window decoded for context starts
        self._read = 0  # ids up to here have been turned into text

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> str:
        """The text `token_id` adds; "" while it ends in half a character (it comes with the rest)."""
        self.ids.append(token_id)
        return self._new_text(final=False)

    def flush(self) -> str:
        """Whatever is still held, at the end of the answer (an unfinished character too)."""
        return self._new_text(final=True)

    def _new_text(self, final: bool) -> str:
        before = self._decode(self.ids[self._prefix:self._read])
        now = self._decode(self.ids[self._prefix:])
        if len(now) <= len(before) or (now.endswith(INCOMPLETE) and not final):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return now[len(before):]

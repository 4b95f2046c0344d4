"""Stop strings over a growing answer: where one begins, and how much of the end to hold
back because it might be the start of one. Every engine that streams text itself
(transformers, simulated) cuts the same way, so no client ever sees part of a stop string."""

from __future__ import annotations

from typing import Optional


def find_stop(text: str, stops: list[str], start: int) -> Optional[int]:
    """Index where the earliest stop string begins, searching from the unsent tail."""
    hits = [i for s in stops if (i := text.find(s, max(0, start - len(s)))) != -1]
    return min(hits) if hits else None


def held_back(text: str, stops: list[str]) -> int:
    """Characters at the end of `text` that might be the start of a stop string."""
    for n in range(max((len(s) for s in stops), default=0) - 1, 0, -1):
        if any(s.startswith(text[-n:]) for s in stops if len(text) >= n):
            return n
    return 0


class StopStrings:
    """What of a growing answer a client may see: everything before the first stop string
    (shown only with `include`, vLLM's include_stop_str_in_output), less a tail that might be
    the start of one. Both engines that stream text themselves feed their new text through one
    of these per stream."""

    def __init__(self, stops: list[str], include: bool = False):
        self.stops, self.include = stops, include
        self.text = ""
        self.sent = 0  # characters already handed out
        self.matched: Optional[str] = None  # the stop string that ended the answer

    def feed(self, new_text: str, final: bool = False) -> tuple[str, bool]:
        """(the text to send now, that was not sent before; whether a stop string ended the
        answer). `final`: the answer ends here, so nothing is held back."""
        self.text += new_text
        cut = find_stop(self.text, self.stops, self.sent)
        if cut is not None:
            self.matched = next(s for s in self.stops if self.text.startswith(s, cut))
            shown = self.text[:cut + (len(self.matched) if self.include else 0)]
        elif final:
            shown = self.text
        else:
            shown = self.text[: len(self.text) - held_back(self.text, self.stops)]
        out = shown[self.sent:]
        self.sent = max(self.sent, len(shown))
        return out, cut is not None

"""The simulated engine's prefix cache: which leading blocks of a prompt one replica
has already prefilled, as vLLM's automatic prefix caching keeps them.

A prompt is cut into blocks of `BLOCK` tokens; each block is known by the hash of
itself and every block before it, so a hit on block k means the whole prefix up to k
is cached. Least recently used blocks leave first once the cache holds `capacity`
tokens. Only whole blocks are cached, as in vLLM.
"""

from __future__ import annotations

from collections import OrderedDict

BLOCK = 16


class PrefixCache:
    def __init__(self, capacity_tokens: int):
        self.capacity_blocks = capacity_tokens // BLOCK
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def prefill(self, tokens: list[str]) -> int:
        """Caches the prompt's blocks; returns how many of its leading tokens were already cached."""
        hashes, h = [], 0
        for start in range(0, len(tokens) - len(tokens) % BLOCK, BLOCK):
            h = hash((h, *tokens[start:start + BLOCK]))
            hashes.append(h)
        cached = 0
        for h in hashes:
            if h not in self._blocks:
                break
            cached += 1
        for h in hashes:  # the prompt's blocks become the most recently used
            self._blocks[h] = None
            self._blocks.move_to_end(h)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        return cached * BLOCK

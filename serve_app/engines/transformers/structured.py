"""Structured output for our own batching loop: a JSON schema as a per-row token mask.

llguidance compiles the schema into a matcher that, at every step, says which tokens
may come next; `sampling.next_tokens` masks the row's logits with it and feeds the
chosen token back. Constrained and free rows share one batch: the mask is per row.
(transformers' `generate(logits_processor=...)` would do this only for a whole batch
of one `generate` call, which our step loop is not.)
"""

import json
from typing import Any

import llguidance
import llguidance.hf
import llguidance.numpy as masks
import torch

from serve_app.engines.base import SCHEMA_REFUSED, InvalidPromptError

# Compact JSON with readable separators: flexible whitespace lets small models emit
# newlines until the token budget runs out instead of closing the object.
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class JsonGrammars:
    """Compiles response schemas against one model's tokenizer."""

    def __init__(self, tokenizer, vocab_size: int, eos_ids: set[int]):
        self.vocab_size = vocab_size
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=sorted(eos_ids))

    def matcher(self, schema: dict[str, Any]) -> llguidance.LLMatcher:
        """A fresh matcher for one row; 400 (naming response_format) if the schema does not compile."""
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults=JSON_STYLE)
            error = llguidance.LLMatcher.validate_grammar(grammar, self.tokenizer)
        except (ValueError, TypeError) as e:
            error = str(e)
        if error:  # one line: the ingress shows an engine error's last line only
            raise InvalidPromptError(f"{SCHEMA_REFUSED}: {' '.join(error.split())}")
        return llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)


def apply_mask(logits: torch.Tensor, matcher: llguidance.LLMatcher) -> None:
    """Set the logits of every token the grammar forbids next to -inf (one row, in place)."""
    bitmask = masks.allocate_token_bitmask(1, logits.shape[-1])
    masks.fill_next_token_bitmask(matcher, bitmask, 0)
    mask_logits(logits.view(-1), torch.from_numpy(bitmask[0]))


# llguidance.torch applies the mask with a kernel it hands to torch.compile when imported: that
# import cost every llm replica 1.6 s of CPU at its start, and the first masked row a C++ build
# (10 s, 6 s of it gcc, where the compile cache was empty). The same three tensor operations,
# uncompiled, take microseconds on a 49k vocabulary.
_BITS = torch.arange(32, dtype=torch.int32)


def mask_logits(row: torch.Tensor, words: torch.Tensor) -> None:
    """-inf where the token's bit in `words` (int32, 32 tokens a word, lowest bit first, as many
    words as the row needs) is 0."""
    words = words.to(row.device)
    allowed = ((words.unsqueeze(1) >> _BITS.to(row.device)) & 1).flatten()[: row.shape[0]]
    row.masked_fill_(allowed == 0, float("-inf"))

"""Incremental detokenization (engines/detokenize.py): the pieces it hands out, joined, are
the whole answer decoded at once, for the default model's tokenizer and text that splits
characters over tokens; and no piece ever shows half a character."""

import pytest
from helpers import LLM_SOURCE

from serve_app.config.workers import LLMArgs
from serve_app.engines.detokenize import INCOMPLETE, IncrementalDecoder
from serve_app.engines.stop_strings import StopStrings
from serve_app.replica.sources import hf_format_dir

TEXTS = [
    "The capital of France is Paris.",
    "Emoji 🐉🔥 and accents: café, naïve, Ångström.",
    "中文测试：北京是中国的首都。日本語も少し。",
    "  leading spaces,\ttabs\nand newlines\n\n",
    "code: def f(x):\n    return x ** 2  # ok",
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    args = LLMArgs(source=LLM_SOURCE)
    return AutoTokenizer.from_pretrained(hf_format_dir(args.source, args.cache_dir, False))


@pytest.mark.parametrize("text", TEXTS)
def test_pieces_join_to_the_whole_decode_and_never_split_a_character(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.add(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert not any(INCOMPLETE in p for p in pieces)


def test_special_tokens_add_no_text(tokenizer):
    decoder = IncrementalDecoder(tokenizer)
    ids = tokenizer("Hi there", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert "".join(decoder.add(i) for i in ids) + decoder.flush() == "Hi there"


def test_stop_strings_hold_back_a_possible_start_and_cut_at_the_stop():
    stops = StopStrings(["STOP"])
    assert stops.feed("Hello ST") == ("Hello ", False)  # "ST" may begin STOP
    assert stops.feed("ART") == ("START", False)
    assert stops.feed(" and STO") == (" and ", False)
    assert stops.feed("P here") == ("", True)
    assert StopStrings(["x"]).feed("abc", final=True) == ("abc", False)
    assert StopStrings(["bc"]).feed("ab", final=True) == ("ab", False)  # the end holds nothing back
    kept = StopStrings(["STOP"], include=True)  # vLLM's include_stop_str_in_output
    assert kept.feed("Hello ST") == ("Hello ", False) and kept.feed("OP here") == ("STOP", True)

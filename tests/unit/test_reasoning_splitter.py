"""Thinking told apart from the answer (engines/reasoning.py), however the stream cuts the tags."""

import pytest

from serve_app.engines.reasoning import ReasoningSplitter

DEEPSEEK_OUT = "Paris is in France.\nSo the answer is Paris.\n</think>\n\nThe capital of France is Paris."
QWEN_OUT = "<think>\nThe user asks about France.\n</think>\n\nParis."


def split(parser: str, text: str, size: int) -> tuple[str, str, list[tuple[str, str]]]:
    splitter = ReasoningSplitter(parser)
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    out = [splitter.feed(p, final=(i == len(pieces) - 1)) for i, p in enumerate(pieces)]
    return "".join(t for t, _ in out), "".join(a for _, a in out), out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
def test_deepseek_r1_output_starts_thinking_and_tags_never_leak(size):
    thinking, answer, out = split("deepseek_r1", DEEPSEEK_OUT, size)
    assert thinking == "Paris is in France.\nSo the answer is Paris.\n"
    assert answer == "The capital of France is Paris."
    assert not any("<" in t + a and ("think" in t + a) for t, a in out), out


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_deepseek_r1_drops_a_leading_think_tag_and_a_cut_answer_is_all_thinking(size):
    thinking, answer, _ = split("deepseek_r1", "<think>\nhmm, let me see", size)
    assert thinking == "\nhmm, let me see" and answer == ""


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_qwen3_thinks_only_inside_an_opening_tag(size):
    thinking, answer, _ = split("qwen3", QWEN_OUT, size)
    assert thinking == "\nThe user asks about France.\n" and answer == "Paris."
    thinking, answer, _ = split("qwen3", "Paris, with thinking off.", size)
    assert thinking == "" and answer == "Paris, with thinking off."


def test_text_that_only_looks_like_a_tag_at_first_is_answer():
    thinking, answer, _ = split("qwen3", "<thing> is not a tag", 1)
    assert thinking == "" and answer == "<thing> is not a tag"
    thinking, answer, _ = split("deepseek_r1", "a < b, and </thin ice> is no end tag", 1)
    assert answer == "" and thinking == "a < b, and </thin ice> is no end tag"

"""Reasoning split and stop matching give the same result however the text is cut into tokens
(real tokenizers split `</think>` and stop strings in many ways), plus the sysfs readers of /metrics."""

from __future__ import annotations

import random

import pytest

from exo_rkllm.server.reasoning import ReasoningSplitter
from exo_rkllm.server.stops import StopMatcher


def random_cuts(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 12))))
    return [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]


def split(pieces: list[str], *, opened: bool, fmt: str = "separate") -> tuple[str, str]:
    s = ReasoningSplitter("<think>", "</think>", opened_by_template=opened, fmt=fmt)
    out = [p for piece in pieces for p in s.feed(piece)] + s.flush()
    return ("".join(t for c, t in out if c == "reasoning"), "".join(t for c, t in out if c == "content"))


@pytest.mark.parametrize("seed", range(40))
def test_reasoning_split_is_independent_of_token_boundaries(seed):
    rng = random.Random(seed)
    r1 = "Let me think about <b>this</b>.\nOk."
    answer = "The answer is 42 </thin."
    # R1 distill: the template opened <think>, the model emits only the closing tag
    assert split(random_cuts(f"{r1}\n</think>\n\n{answer}", rng), opened=True) == (r1, answer)
    # Qwen3 style: the model opens and closes the block itself
    assert split(random_cuts(f"<think>\n{r1}\n</think>\n\n{answer}", rng), opened=False) == (r1, answer)
    # a model that does not think at all: nothing is taken for reasoning, not even a '<' prefix
    assert split(random_cuts("<thin air> is " + answer, rng), opened=False) == ("", "<thin air> is " + answer)
    # tags kept in content: a balanced block then the answer, byte for byte what the model said
    raw = f"<think>\n{r1}\n</think>\n\n{answer}"
    assert "".join(split(random_cuts(f"{r1}\n</think>\n\n{answer}", rng), opened=True, fmt="tags")) == raw


def test_unclosed_thought_is_all_reasoning():
    assert split(["still thinking", " when the tokens ran out </thi"], opened=True) == (
        "still thinking when the tokens ran out </thi", "")


@pytest.mark.parametrize("seed", range(40))
def test_stop_matching_is_independent_of_token_boundaries(seed):
    rng = random.Random(seed)
    text = "alpha beta\n\nGAMMA stop-here delta"
    m = StopMatcher(["stop-here", "\n\nGAMMA x"])
    out = "".join(m.feed(p) for p in random_cuts(text, rng)) + m.flush()
    assert out == "alpha beta\n\nGAMMA " and m.matched == "stop-here"
    m = StopMatcher(["never"])
    assert "".join(m.feed(p) for p in random_cuts(text, rng)) + m.flush() == text and m.matched is None


def test_earliest_stop_wins():
    m = StopMatcher(["c", "ab"])
    assert m.feed("xxabc") == "xx" and m.matched == "ab"

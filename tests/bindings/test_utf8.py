"""UTF-8 across pieces: the simulator splits characters at byte level (WAITING state); the
binding must hand out only whole characters and never raise on invalid bytes."""

from __future__ import annotations

import pytest

import rkllm

TEXTS = [
    "你好，世界",                      # CJK: 3 bytes each
    "emoji 🎉👍🏽 and 👨‍👩‍👧",            # 4-byte characters, modifiers, ZWJ sequences
    "mixed: café ñ Ελληνικά 日本語 🚀!",
]


@pytest.mark.parametrize("text", TEXTS)
def test_split_characters_come_out_whole(make_runtime, text: str) -> None:
    rt = make_runtime(behaviour="echo")
    pieces: list[tuple[int, str]] = []
    res = rt.run_prompt(text, on_token=lambda t, x: pieces.append((t, x)))
    assert "".join(x for _, x in pieces) == text
    assert res.n_tokens == len(text.encode("utf-8"))  # one byte per token in the sim vocabulary
    assert all("\ufffd" not in x for _, x in pieces)
    # A piece is '' while a character is incomplete, then the whole character.
    assert any(x == "" for _, x in pieces)
    for _, x in pieces:
        x.encode("utf-8")  # never a lone surrogate or partial character


def test_generation_marks_incomplete_pieces_as_waiting(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    events = list(rt.generate(prompt="你"))
    assert [e.state for e in events] == [rkllm.LLMCallState.RKLLM_RUN_WAITING,
                                         rkllm.LLMCallState.RKLLM_RUN_WAITING,
                                         rkllm.LLMCallState.RKLLM_RUN_NORMAL,
                                         rkllm.LLMCallState.RKLLM_RUN_FINISH]
    assert [e.text for e in events] == ["", "", "你", ""]
    assert events[-1].perf is not None and events[-1].token_id == -1


def test_invalid_bytes_are_replaced_not_raised(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    pieces: list[str] = []
    res = rt.run_tokens([0xFF, ord("A"), 0xC3, ord("B")], on_token=lambda t, x: pieces.append(x))
    assert "".join(pieces) == "\ufffdA\ufffdB" and res.status == "finished"


def test_character_cut_by_max_new_tokens_ends_as_replacement(make_runtime) -> None:
    rt = make_runtime(cfg=dict(max_new_tokens=2), behaviour="echo")
    pieces: list[str] = []
    res = rt.run_prompt("你好", on_token=lambda t, x: pieces.append(x))
    assert pieces == ["", ""] and res.text_tail == "\ufffd"


def test_decoder_state_does_not_leak_between_runs(make_runtime) -> None:
    rt = make_runtime(cfg=dict(max_new_tokens=1), behaviour="echo")
    rt.run_prompt("你")  # leaves one lead byte undecoded
    rt2_pieces: list[str] = []
    res = rt.run_tokens([ord("Z")], on_token=lambda t, x: rt2_pieces.append(x))
    assert rt2_pieces == ["Z"] and res.text_tail == ""

"""The simulated vocabulary as Hugging Face tokenizers: byte ids, special ids, ChatML templates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from exo_rkllm.sim import sim_tokenizer_dir

MAKER = Path(__file__).resolve().parents[2] / "bindings" / "simulator" / "tokenizers" / "make_tokenizers.py"
CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>\nplan\n</think>\n\nHello!"},
        {"role": "user", "content": "and now?"}]


@pytest.fixture(scope="module", params=["chat", "reasoning"])
def tok(request):
    return AutoTokenizer.from_pretrained(str(sim_tokenizer_dir(request.param)))


def test_text_encodes_to_its_utf8_bytes(tok):
    text = "héllo 世界 🎉"
    ids = tok.encode(text, add_special_tokens=False)
    assert ids == list(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_vocabulary_ids_match_the_contract(tok):
    assert len(tok) == 263
    expected = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>"]
    assert tok.convert_ids_to_tokens(list(range(256, 263))) == expected
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 258
    # 256-258 vanish with skip_special_tokens, 259-262 always keep their text
    assert tok.decode([257, 259, 104, 260, 261, 262, 258], skip_special_tokens=True) == "<think>h</think><tool_call></tool_call>"


def test_chat_template_renders_chatml_with_special_ids(tok):
    text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    ids = tok.encode(text, add_special_tokens=False)
    assert ids[0] == 257 and ids.count(257) == 5 and ids.count(258) == 4
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi")
    assert "<|im_start|>user\nand now?<|im_end|>\n<|im_start|>assistant\n" in text


def test_reasoning_template_opens_think_and_drops_old_reasoning():
    tok = AutoTokenizer.from_pretrained(str(sim_tokenizer_dir("reasoning-instant")))
    text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    assert "plan" not in text and "<|im_start|>assistant\nHello!<|im_end|>" in text
    chat = AutoTokenizer.from_pretrained(str(sim_tokenizer_dir("chat")))
    assert chat.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True).endswith("assistant\n")


def test_tools_render_in_the_simulators_format(tok):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "21C"}]
    text = tok.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=True)
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>' in text
    assert "<|im_start|>user\n<tool_response>\n21C\n</tool_response><|im_end|>" in text


def test_committed_files_are_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(MAKER), "--out", str(tmp_path)], check=True, capture_output=True)
    for name in ("chat", "reasoning"):
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            assert (tmp_path / name / f).read_text() == (sim_tokenizer_dir(name) / f).read_text(), f"{name}/{f}"

"""The shipped simulated models: figures, natural deterministic replies, faults and overrides from the environment."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from exo_rkllm.sim import SIM_MODELS, sim_model_path

from ._util import clean_env, model_values

NO_DELAY = {"RKLLM_SIM_LOAD_MS": "0", "RKLLM_SIM_DECODE_MS": "0", "RKLLM_SIM_PREFILL_MS": "0"}


def reply(smoke_bin: Path, model: Path, prompt: str = "hello", **env: str) -> tuple[int, dict, str, str]:
    proc = subprocess.run([str(smoke_bin), "--reply", str(model), prompt], capture_output=True,
                          env=clean_env(**{**NO_DELAY, **env}), timeout=30)
    head, _, text = proc.stdout.decode().partition("\n")
    stats = dict(kv.split("=") for kv in head.split()) if head.startswith("tokens=") else {}
    return proc.returncode, {k: int(v) for k, v in stats.items()}, text, proc.stderr.decode()


@pytest.mark.parametrize("name", SIM_MODELS)
def test_shipped_model_loads_and_replies_deterministically(smoke_bin, name):
    path = sim_model_path(name)
    assert path.read_text().splitlines()[0] == "RKLLM-SIM 1"
    rc, stats, text, err = reply(smoke_bin, path)
    assert rc == 0, err
    assert len(text) > 40 and "[PAD" not in text and text == reply(smoke_bin, path)[2]
    assert text.rstrip().endswith(model_values(path, "reply")[0].rstrip()[-20:])
    if "reasoning" in name:  # R1-style: thinks 40-80 tokens, closes with </think>, then answers
        assert 40 <= stats["think_end"] <= 90 and "</think>" in text
    else:
        assert stats["think_end"] == -1


@pytest.mark.parametrize("name", ["chat", "reasoning"])
def test_timed_models_use_rockchips_qwen2_5_1_5b_figures(name):
    path = sim_model_path(name)
    assert float(model_values(path, "decode_ms")[0]) == pytest.approx(1000 / 16.32, rel=1e-3)
    assert float(model_values(path, "prefill_ms")[0]) == pytest.approx(412.3 / 128, rel=1e-3)
    assert float(model_values(path, "memory_mb")[0]) == 1659
    emulates = model_values(path, "emulates")[0]
    assert "Rockchip" in emulates and "1.5B" in emulates


@pytest.mark.parametrize("name", ["chat-instant", "reasoning-instant"])
def test_instant_models_have_zero_delays(name):
    path = sim_model_path(name)
    for key in ("decode_ms", "prefill_ms", "load_ms"):
        assert float(model_values(path, key)[0]) == 0


def test_fault_from_environment_fails_init_with_a_reason(smoke_bin):
    rc, _, _, err = reply(smoke_bin, sim_model_path("chat-instant"), RKLLM_SIM_FAULT="init_fail")
    assert rc != 0 and "init_fail" in err


@pytest.mark.parametrize("env, needle", [
    ({"RKLLM_SIM_DECODE_MS": "fast"}, "RKLLM_SIM_DECODE_MS"),
    ({"RKLLM_SIM_FAULT": "explode_at:3"}, "explode_at"),
])
def test_bad_environment_override_is_refused_by_name(smoke_bin, env, needle):
    rc, _, _, err = reply(smoke_bin, sim_model_path("chat-instant"), **env)
    assert rc != 0 and needle in err


@pytest.mark.parametrize("body, needle", [
    ("colour: blue\n", "line 2: unknown key 'colour'"),
    ("reply: hi\nfault: segv_at:x\n", "line 3: bad fault 'segv_at:x'"),
    ("behaviour: script\n", "needs at least one 'reply:' line"),
    ("decode_ms: -3\nreply: hi\n", "line 2: decode_ms must be a number >= 0"),
])
def test_broken_model_file_names_line_and_cause(smoke_bin, tmp_path, body, needle):
    model = tmp_path / "broken.rkllm"
    model.write_text("RKLLM-SIM 1\n" + body)
    rc, _, _, err = reply(smoke_bin, model)
    assert rc != 0 and needle in err, err


@pytest.mark.parametrize("name", ["chat-instant", "reasoning-instant"])
def test_prompt_input_is_templated_exactly_like_the_hf_tokenizer(smoke_bin, tmp_path, name):
    """Prompt input and token input from the shipped tokenizer must put the same tokens in the KV cache."""
    from transformers import AutoTokenizer

    from exo_rkllm.sim import sim_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(str(sim_tokenizer_dir(name)))
    prompt = "Bonjour, 世界!"
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    expected = tok.encode(text, add_special_tokens=False)
    cache = tmp_path / "prompt.cache"
    rc, stats, reply_text, err = reply(smoke_bin, sim_model_path(name), prompt, SIM_SMOKE_PCACHE=str(cache))
    assert rc == 0, err
    assert stats["prefill"] == len(expected)
    data = cache.read_bytes()  # RKSIMPC1, uint32 count, int32 ids: the KV cache after prefill
    assert data[:8] == b"RKSIMPC1"
    n = struct.unpack_from("<I", data, 8)[0]
    assert list(struct.unpack_from(f"<{n}i", data, 12)) == expected
    assert stats["kv"] == len(expected) + stats["tokens"] + 1  # prompt + reply + eos at the natural stop


def test_echo_behaviour_returns_the_last_user_message(smoke_bin, tmp_path):
    model = tmp_path / "echo.rkllm"
    model.write_text("RKLLM-SIM 1\nname: echo\nbehaviour: echo\n")
    rc, _, text, err = reply(smoke_bin, model, "say 世界 back")
    assert rc == 0 and text == "say 世界 back", err

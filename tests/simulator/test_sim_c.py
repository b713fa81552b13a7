"""The simulator verified at the C level (tests/simulator/sim_smoke.c), independent of the Python binding."""

from __future__ import annotations

import subprocess

import pytest

from exo_rkllm.sim import sim_model_path

from ._util import clean_env, model_values

CHECKS = [
    "default_params", "init_rejects_bad_input", "fault_segv_at", "prompt_run_text_utf8_perf",
    "keep_history_prefills_only_new_tokens", "clear_kv_cache", "pause_and_resume", "logits_and_hidden_modes",
    "prompt_cache_save_load_release", "lora", "rejects_out_of_vocab_input", "max_new_tokens_and_context_overflow",
    "abort_and_concurrent_run", "fault_hang_abortable", "faults_error_oov_init", "reasoning_think_block",
    "function_tools_and_chat_template", "n_batch_2",
]
INIT_LINE = ("I rkllm: rkllm-runtime version: 1.2.3 (simulated), rknpu driver version: none (simulator), "
             "platform: simulated, no NPU")
MAGIC_LINE = 'E RKNN: invalid rknn llm model magic (rkllm-sim: expected first line "RKLLM-SIM 1")'


@pytest.fixture(scope="module")
def smoke(smoke_bin, tmp_path_factory) -> subprocess.CompletedProcess:
    model = sim_model_path("chat-instant")
    expected = model_values(model, "reply")[0]
    work = tmp_path_factory.mktemp("smoke-run")
    return subprocess.run([str(smoke_bin), str(model.parent), str(work), expected], capture_output=True,
                          env=clean_env(), timeout=60)


@pytest.mark.parametrize("check", CHECKS)
def test_c_level_behaviour(smoke, check):
    out = smoke.stdout.decode()
    assert f"ok {check}\n" in out, f"{out}\n--- stderr ---\n{smoke.stderr.decode()[-3000:]}"


def test_every_check_ran_and_passed(smoke):
    out = smoke.stdout.decode()
    assert smoke.returncode == 0 and out.rstrip().endswith("all passed"), out
    assert [line[3:] for line in out.splitlines() if line.startswith("ok ")] == CHECKS


def test_log_lines_say_simulated_and_match_the_contract(smoke):
    err = smoke.stderr.decode()
    assert INIT_LINE in err.splitlines()
    assert MAGIC_LINE in err.splitlines()
    for line in err.splitlines():
        if line.startswith(("I rkllm", "W rkllm", "E rkllm")):
            assert "simulated" in line, line

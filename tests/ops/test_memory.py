"""Memory fit refusals and NPU domain ids, against a meminfo file the test writes."""

from __future__ import annotations

import pytest

from exo_rkllm.catalog import get_card
from exo_rkllm.ops.memory import (InsufficientMemoryError, assign_domain_ids, available_mb, check_fit,
                                  require_fit)


def meminfo(tmp_path, available_kb, total_kb=4_000_000):
    p = tmp_path / "meminfo"
    p.write_text(f"MemTotal:       {total_kb} kB\nMemFree:         100000 kB\n"
                 f"MemAvailable:   {available_kb} kB\nBuffers:          2000 kB\n")
    return p


def test_reads_mem_available(tmp_path):
    assert available_mb(meminfo(tmp_path, 2_048_000)) == 2000


def test_small_board_refuses_a_7b_model_naming_need_and_free(tmp_path):
    card = get_card("qwen2.5-7b-instruct", tmp_path)
    path = meminfo(tmp_path, 3_500_000)
    with pytest.raises(InsufficientMemoryError) as info:
        require_fit(card, meminfo=path, margin_mb=512)
    msg = str(info.value)
    assert f"{card.memory_mb} MB" in msg and "3417 MB" in msg and "qwen2.5-7b-instruct" in msg


def test_fits_when_enough_is_free(tmp_path):
    card = get_card("qwen2.5-1.5b-instruct", tmp_path)
    fit = require_fit(card, meminfo=meminfo(tmp_path, 4_000_000), margin_mb=512)
    assert fit.ok and fit.needed_mb == 1659 + 512 and fit.available_mb == 3906


def test_models_loaded_together_are_summed(tmp_path):
    a = get_card("qwen2.5-1.5b-instruct", tmp_path)
    b = get_card("deepseek-r1-distill-qwen-1.5b", tmp_path)
    path = meminfo(tmp_path, 3_000_000)   # 2929 MB: each alone fits, both do not
    assert check_fit(a, meminfo=path, margin_mb=256).ok
    assert not check_fit([a, b], meminfo=path, margin_mb=256).ok


def test_unreadable_meminfo_is_reported_not_a_crash(tmp_path):
    fit = check_fit(get_card("sim-instant", tmp_path), meminfo=tmp_path / "missing")
    assert fit.ok and fit.available_mb is None and "unknown" in fit.message


def test_domain_ids_are_distinct(tmp_path):
    cards = [get_card(i, tmp_path) for i in ("sim-instant", "sim-reasoning-instant", "qwen3-0.6b")]
    ids = assign_domain_ids(cards)
    assert ids == {"sim-instant": 0, "sim-reasoning-instant": 1, "qwen3-0.6b": 2}
    with pytest.raises(ValueError, match="twice"):
        assign_domain_ids(cards + cards[:1])


def test_check_fits_is_what_the_serving_core_calls(tmp_path):
    from exo_rkllm.ops.memory import check_fits

    with pytest.raises(InsufficientMemoryError, match="qwen3-0.6b"):
        check_fits(get_card("qwen3-0.6b", tmp_path), meminfo=meminfo(tmp_path, 500_000))
    assert check_fits(get_card("qwen3-0.6b", tmp_path), meminfo=meminfo(tmp_path, 5_000_000)).ok

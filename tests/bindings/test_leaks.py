"""Thousands of runs must not grow memory or leave threads behind (a serving node runs for weeks)."""

from __future__ import annotations

import gc
import os
import threading

import rkllm


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_2000_short_runs_no_rss_growth_no_threads(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    pieces: list[str] = []

    def on_token(token_id: int, text: str) -> None:
        pieces.append(text)

    def one(i: int) -> None:
        pieces.clear()
        if i % 2:
            res = rt.run_tokens([104, 105], on_token=on_token)
        else:
            res = rt.run_prompt("hi", on_token=on_token, keep_history=False)
        assert res.status == "finished" and "".join(pieces) == "hi"

    for i in range(200):  # warm-up: allocator pools, caches
        one(i)
    gc.collect()
    threads_before = threading.active_count()
    objects_before = len(gc.get_objects())
    rss_before = rss_bytes()
    for i in range(2000):
        one(i)
    gc.collect()
    growth = rss_bytes() - rss_before
    # Nothing per run may stay alive on the Python side either (C buffers, run states).
    assert len(gc.get_objects()) - objects_before < 200
    assert growth < 3 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB over 2000 runs"
    assert threading.active_count() == threads_before


def test_generations_leave_no_threads(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    before = threading.active_count()
    for _ in range(100):
        gen = rt.generate(tokens=[111, 107])
        assert "".join(e.text for e in gen) == "ok"
        gen.wait()
    assert threading.active_count() == before


def test_runtimes_created_and_closed_repeatedly(lib, make_model) -> None:
    model = make_model(behaviour="echo")
    for _ in range(50):
        with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=model), library=lib) as rt:
            assert rt.run_prompt("x").n_tokens == 1
    gc.collect()
    rss_before = rss_bytes()
    for _ in range(200):
        with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=model), library=lib,
                                capture_init_log=False) as rt:
            rt.run_prompt("x")
    gc.collect()
    assert rss_bytes() - rss_before < 3 * 1024 * 1024

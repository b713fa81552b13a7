"""Bad input and runtime faults: each a clear Python exception; the process and the handle survive."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import rkllm


def test_run_error_mid_stream_raises_and_handle_stays_usable(make_runtime) -> None:
    rt = make_runtime(behaviour="echo", fault="error_at:4")
    pieces: list[str] = []
    with pytest.raises(rkllm.RKLLMRunError) as ei:
        rt.run_prompt("a long enough message", on_token=lambda t, x: pieces.append(x))
    assert "".join(pieces) == "a lo"  # the tokens before the error were delivered
    assert ei.value.n_tokens == 4 and "RKLLM_RUN_ERROR" in str(ei.value)
    got: list[str] = []
    res = rt.run_prompt("ok", on_token=lambda t, x: got.append(x))  # shorter than the fault point
    assert res.status == "finished" and "".join(got) == "ok"


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt])
def test_raising_callback_aborts_and_reraises(make_runtime, exc_type) -> None:
    rt = make_runtime(behaviour="long")
    calls = []

    def on_token(token_id: int, text: str) -> None:
        calls.append(token_id)
        if len(calls) == 3:
            raise exc_type("boom from user code")

    with pytest.raises(exc_type, match="boom from user code"):
        rt.run_prompt("go", on_token=on_token)
    assert len(calls) == 3  # the run stopped at the failing token
    assert not rt.is_running()
    assert rt.kv_cache_size() == [0]  # keep_history=False: nothing of the failed run stays
    res = rt.run_prompt("go", on_token=None)
    assert res.status == "finished" and res.n_tokens == rt.param.max_new_tokens


def test_generation_reraises_a_run_error_after_its_events(make_runtime) -> None:
    rt = make_runtime(behaviour="echo", fault="error_at:2")
    gen = rt.generate(prompt="abcdef")
    texts = []
    with pytest.raises(rkllm.RKLLMRunError):
        for ev in gen:
            texts.append(ev.text)
    assert "".join(texts) == "ab" and gen.result is None
    assert isinstance(gen.exception, rkllm.RKLLMRunError)


def test_init_fault_is_a_model_load_error_with_the_runtimes_words(lib, make_model) -> None:
    with pytest.raises(rkllm.ModelLoadError) as ei:
        rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=make_model(fault="init_fail")), library=lib)
    assert "rkllm_init returned -1" in str(ei.value) and "init_fail" in str(ei.value)


def test_not_a_model_file(lib, tmp_path: Path) -> None:
    p = tmp_path / "model.rkllm"
    p.write_bytes(b"\x00\x01 something else entirely")
    with pytest.raises(rkllm.ModelLoadError, match="invalid rknn llm model magic"):
        rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=p), library=lib)


def test_missing_or_unreadable_model_refused_before_c(lib, tmp_path: Path) -> None:
    with pytest.raises(rkllm.ModelLoadError, match="model file not found"):
        rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=tmp_path / "missing.rkllm"), library=lib)
    with pytest.raises(rkllm.ModelLoadError, match="is a directory"):
        rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=tmp_path), library=lib)
    if os.geteuid() != 0:  # root reads anything
        p = tmp_path / "secret.rkllm"
        p.write_text("RKLLM-SIM 1\n")
        p.chmod(0)
        with pytest.raises(rkllm.ModelLoadError, match="not readable"):
            rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=p), library=lib)


@pytest.mark.parametrize("field, value", [
    ("max_context_len", -1), ("max_context_len", 0), ("max_context_len", 10**9),
    ("max_new_tokens", -5), ("max_new_tokens", 0), ("top_k", -1), ("top_k", 2.5),
    ("top_p", 1.5), ("top_p", float("nan")), ("temperature", -0.1), ("temperature", 1e9),
    ("repeat_penalty", 0), ("frequency_penalty", 5), ("presence_penalty", -3),
    ("n_keep", -2), ("n_keep", 5000), ("base_domain_id", -1), ("enabled_cpus_mask", 0x100),
    ("enabled_cpus_num", 9), ("n_batch", 0), ("n_batch", 256), ("skip_special_token", 2),
    ("mirostat", 3), ("model_path", ""),
])
def test_bad_config_refused(field: str, value, tmp_path: Path) -> None:
    kw = {"model_path": tmp_path / "m"}
    kw[field] = value
    with pytest.raises(rkllm.InvalidConfigError) as ei:
        rkllm.RuntimeConfig(**kw)
    assert ei.value.field == field and field in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_inconsistent_cpu_settings_refused(tmp_path: Path) -> None:
    with pytest.raises(rkllm.InvalidConfigError, match="enabled_cpus_num"):
        rkllm.RuntimeConfig(model_path=tmp_path / "m", enabled_cpus_mask=0xF0, enabled_cpus_num=2)


def test_config_mutated_after_creation_is_checked_again(lib, make_model) -> None:
    cfg = rkllm.RuntimeConfig(model_path=make_model())
    cfg.max_context_len = -4
    with pytest.raises(rkllm.InvalidConfigError, match="max_context_len"):
        rkllm.RKLLMRuntime(cfg, library=lib)


def test_bad_run_arguments(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    for bad in ([], [-1], [1.5, 2.0], [[1, 2]], [2**40]):
        with pytest.raises(rkllm.InvalidConfigError):
            rt.run_tokens(bad)
    with pytest.raises(rkllm.InvalidConfigError, match="role"):
        rt.run_prompt("x", role="wizard")
    with pytest.raises(rkllm.InvalidConfigError):
        rt.run_prompt("nul\x00inside")
    with pytest.raises(rkllm.InvalidConfigError):
        rt.generate(tokens=[1], prompt="x")
    with pytest.raises(rkllm.InvalidConfigError, match="mode"):
        rt.run_tokens([1], mode=7)
    # Token ids the model does not know are the runtime's call: an error state, handle intact.
    with pytest.raises(rkllm.RKLLMRunError):
        rt.run_tokens([100000])
    assert rt.run_prompt("fine").status == "finished"


def test_context_overflow_is_checked_before_the_run(make_runtime) -> None:
    rt = make_runtime(cfg=dict(max_context_len=64), behaviour="echo")
    with pytest.raises(rkllm.ContextOverflowError) as ei:
        rt.run_tokens(list(range(97, 97 + 26)) * 3)
    assert ei.value.max_context_len == 64 and ei.value.n_tokens == 78
    assert "max_context_len=64" in str(ei.value)
    # With keep_history, what the KV cache already holds counts too.
    rt.run_tokens(list(b"0123456789" * 3), keep_history=True)
    with pytest.raises(rkllm.ContextOverflowError, match="already in the KV cache"):
        rt.run_tokens(list(b"0123456789" * 3), keep_history=True)
    rt.clear_kv_cache()
    assert rt.run_tokens(list(b"0123456789" * 3), keep_history=True).status == "finished"


def test_abort_mid_decode_returns_within_about_a_token(make_runtime) -> None:
    # decode_ms 200, endless output: without a working abort this run lasts minutes.
    rt = make_runtime(cfg=dict(max_new_tokens=2048), behaviour="long", decode_ms=200)
    got = threading.Event()
    n = []

    def on_token(token_id: int, text: str) -> None:
        n.append(token_id)
        got.set()

    out = {}

    def run() -> None:
        out["res"] = rt.run_prompt("go", on_token=on_token)
        out["t_end"] = time.monotonic()

    t = threading.Thread(target=run)
    t.start()
    assert got.wait(30)
    t_abort = time.monotonic()
    assert rt.abort() is True
    t.join(30)
    assert not t.is_alive()
    assert out["t_end"] - t_abort < 1.5  # generous: one token is 0.2 s
    assert out["res"].status == "aborted" and out["res"].n_tokens == len(n) < 10
    # The handle is reusable: a new run streams again (paused by its callback after 2 tokens).
    assert rt.abort() is False  # nothing running: harmless
    pieces: list[str] = []
    res = rt.run_prompt("go", on_token=lambda t, x: (pieces.append(x), len(pieces) >= 2)[1])
    assert res.status == "paused" and len(pieces) == 2


def test_abort_during_a_hanging_prefill(make_runtime) -> None:
    rt = make_runtime(behaviour="echo", fault="hang")

    def abort_once_running() -> None:
        while not rt.abort():  # False until the run has started
            time.sleep(0.01)

    aborter = threading.Thread(target=abort_once_running)
    aborter.start()
    res = rt.run_prompt("never prefilled")
    aborter.join()
    assert res.status == "aborted" and res.n_tokens == 0


def test_generation_abort_and_async_consumption(make_runtime) -> None:
    import asyncio

    rt = make_runtime(behaviour="long", decode_ms=5)

    async def consume() -> tuple[int, rkllm.RunResult | None]:
        gen = rt.generate(prompt="go")
        n = 0
        async for ev in gen:
            if ev.state == rkllm.LLMCallState.RKLLM_RUN_FINISH:
                break
            n += 1
            if n == 4:
                gen.abort()
        gen.wait(30)
        return n, gen.result

    n, result = asyncio.run(consume())
    assert result is not None and result.status == "aborted"
    assert 4 <= n <= 6 and result.n_tokens == n


def test_generation_aborted_before_it_starts(make_runtime) -> None:
    rt = make_runtime(behaviour="long", decode_ms=2)
    first = rt.generate(prompt="hold")
    # Let the first generation hold the handle, queue a second one and abort it while waiting.
    it = iter(first)
    next(it)
    second = rt.generate(prompt="never")
    second.abort()
    first.abort()
    list(it)
    events = list(second)
    assert second.result.status == "aborted" and second.result.n_tokens == 0
    assert [e.state for e in events] == [rkllm.LLMCallState.RKLLM_RUN_FINISH]


def test_out_of_vocabulary_token_arrives_with_pad_text(make_runtime) -> None:
    rt = make_runtime(behaviour="echo", fault="oov_at:1")
    got: list[tuple[int, str]] = []
    res = rt.run_prompt("abc", on_token=lambda t, x: got.append((t, x)))
    assert got[1] == (151935, "[PAD151935]")
    assert res.n_tokens == len(got)


def test_async_stream_delivers_everything_then_the_error(make_runtime) -> None:
    import asyncio

    ok_rt = make_runtime(behaviour="echo")
    bad_rt = make_runtime(behaviour="echo", fault="error_at:3")

    async def consume(rt, prompt):
        texts, err = [], None
        try:
            async for ev in rt.generate(prompt=prompt):
                texts.append(ev.text)
        except rkllm.RKLLMError as e:
            err = e
        return "".join(texts), err

    async def main():
        return await asyncio.gather(consume(ok_rt, "streamed 你好 fine"), consume(bad_rt, "abcdef"))

    (ok_text, ok_err), (bad_text, bad_err) = asyncio.run(main())
    assert ok_text == "streamed 你好 fine" and ok_err is None
    assert bad_text == "abc" and isinstance(bad_err, rkllm.RKLLMRunError)


def test_close_while_a_run_is_going_aborts_it_first(lib, make_model) -> None:
    rt = rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=make_model(behaviour="long", decode_ms=2)),
                            library=lib)
    gen = rt.generate(prompt="go")
    it = iter(gen)
    next(it)
    rt.close()  # from another thread than the run's
    list(it)
    assert gen.result.status == "aborted" and rt.closed
    with pytest.raises(rkllm.RuntimeClosedError):
        rt.run_prompt("again")


def test_abort_landing_just_before_the_c_run_starts_is_not_lost(make_runtime) -> None:
    """The runtime clears its abort flag when rkllm_run starts; an abort() landing in that window
    must still stop a prefill that never calls back (fault `hang`)."""
    rt = make_runtime(behaviour="echo", fault="hang")
    real = rt.library

    class AbortFirst:  # forwards to the real library; aborts right before the C run starts
        def __getattr__(self, name):
            return getattr(real, name)

        def rkllm_run(self, *args):
            assert rt.abort() is True
            return real.rkllm_run(*args)

    rt.library = AbortFirst()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("res", rt.run_prompt("x")), daemon=True)
    t.start()
    t.join(20)
    rt.library = real
    if t.is_alive():  # clean up before failing
        while t.is_alive():
            real.rkllm_abort(rt.handle)
            t.join(0.1)
        pytest.fail("an abort issued just before rkllm_run started was lost")
    assert out["res"].status == "aborted"

"""RKLLMRuntime against the simulator: every runtime function, through ctypes, behaving as a user sees it."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np
import pytest

import rkllm


def collect(pieces: list[str]):
    def on_token(token_id: int, text: str) -> None:
        pieces.append(text)

    return on_token


def test_config_starts_from_runtime_defaults(lib, make_runtime) -> None:
    defaults = lib.rkllm_createDefaultParam()
    rt = make_runtime(cfg=dict(temperature=0.25, top_k=None, n_keep=None), behaviour="echo")
    assert rt.param.top_k == defaults.top_k
    assert rt.param.top_p == pytest.approx(defaults.top_p)
    assert rt.param.repeat_penalty == pytest.approx(defaults.repeat_penalty)
    assert rt.param.extend_param.enabled_cpus_mask == defaults.extend_param.enabled_cpus_mask
    assert rt.param.temperature == pytest.approx(0.25)
    assert rt.param.max_context_len == 4096 and rt.param.max_new_tokens == 2048
    assert rt.param.model_path.decode() == str(rt.config.model_path)


def test_run_prompt_streams_text_and_perf(make_runtime) -> None:
    rt = make_runtime(behaviour="echo", memory_mb=321)
    pieces: list[str] = []
    ids: list[int] = []
    res = rt.run_prompt("Hello there", on_token=lambda t, x: (ids.append(t), pieces.append(x)) and None)
    assert "".join(pieces) == "Hello there"
    assert ids == list(b"Hello there")
    assert res.status == "finished" and res.n_tokens == len("Hello there")
    assert res.perf is not None
    assert res.perf.generate_tokens == res.n_tokens
    assert res.perf.prefill_tokens > len("Hello there")  # the chat template around it
    assert res.perf.memory_usage_mb == pytest.approx(321)


def test_run_tokens_and_scripted_replies(make_runtime) -> None:
    rt = make_runtime(behaviour="script", replies=["first reply", "second\\nreply"])
    pieces: list[str] = []
    prompt = [257, *b"user\nhi", 258, 10, 257, *b"assistant\n"]
    res = rt.run_tokens(prompt, on_token=collect(pieces))
    assert "".join(pieces) == "first reply" and res.status == "finished"
    assert rt.kv_cache_size() == [0]  # keep_history=False: nothing kept


def test_keep_history_keeps_kv_and_prefills_only_new_tokens(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    r1 = rt.run_prompt("one", keep_history=True)
    kv1 = rt.kv_cache_size()[0]
    assert kv1 >= r1.perf.prefill_tokens + r1.n_tokens
    r2 = rt.run_prompt("two", keep_history=True)
    kv2 = rt.kv_cache_size()[0]
    assert r2.perf.prefill_tokens < r1.perf.prefill_tokens  # no system block again
    assert kv2 == kv1 + r2.perf.prefill_tokens + r2.n_tokens + 1  # +1: the end token
    rt.clear_kv_cache()
    assert rt.kv_cache_size() == [0]
    r3 = rt.run_prompt("one", keep_history=True)
    assert r3.perf.prefill_tokens == r1.perf.prefill_tokens


def test_clear_kv_cache_keep_system_prompt_and_ranges(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    rt.run_prompt("abc", keep_history=True)
    total = rt.kv_cache_size()[0]
    rt.clear_kv_cache(keep_system_prompt=True)
    kept = rt.kv_cache_size()[0]
    assert 0 < kept < total
    rt.clear_kv_cache(False, start_pos=[1], end_pos=[3])
    assert rt.kv_cache_size()[0] == kept - 2
    with pytest.raises(rkllm.RKLLMCallError) as ei:
        rt.clear_kv_cache(False, start_pos=[0], end_pos=[kept + 100])
    assert ei.value.function == "rkllm_clear_kv_cache" and ei.value.code == -1
    with pytest.raises(rkllm.InvalidConfigError):
        rt.clear_kv_cache(False, start_pos=[0])


def test_pause_from_callback(make_runtime) -> None:
    rt = make_runtime(behaviour="long")
    pieces: list[str] = []

    def on_token(token_id: int, text: str) -> bool:
        pieces.append(text)
        return len(pieces) == 5

    res = rt.run_prompt("go", on_token=on_token, keep_history=True)
    assert res.status == "paused" and res.n_tokens == 5 and len(pieces) == 5
    assert not rt.is_running()


def test_max_new_tokens_honoured(make_runtime) -> None:
    rt = make_runtime(cfg=dict(max_new_tokens=7), behaviour="long")
    res = rt.run_prompt("go")
    assert res.status == "finished" and res.n_tokens == 7 and res.perf.generate_tokens == 7


def test_set_chat_template_changes_the_prompt(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    rt.set_chat_template("SYS|", "<P>", "</P>")
    pieces: list[str] = []
    res = rt.run_prompt("hi", on_token=collect(pieces))
    assert res.perf.prefill_tokens == len("SYS|<P>hi</P>")
    assert "".join(pieces) == "SYS|<P>hi</P>"  # no assistant marker: the sim echoes the raw text


def test_set_function_tools_makes_the_model_call_a_tool(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    tools = '[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]'
    rt.set_function_tools("You can use tools.", tools, "tool_response")
    pieces: list[str] = []
    rt.run_prompt("weather in Paris?", on_token=collect(pieces), keep_history=True)
    text = "".join(pieces)
    assert text.startswith("<tool_call>") and '"name": "get_weather"' in text
    pieces.clear()
    rt.run_prompt('{"temp": 21}', role="tool", on_token=collect(pieces), keep_history=True)
    assert "".join(pieces) == 'The tool returned: {"temp": 21}'


def test_lora_load_and_per_run_selection(make_runtime, tmp_path: Path) -> None:
    rt = make_runtime(behaviour="echo")
    adapter = tmp_path / "style.rkllm-lora"
    adapter.write_bytes(b"simulated lora")
    rt.load_lora(adapter, "style", scale=0.5)
    pieces: list[str] = []
    rt.run_prompt("hi", on_token=collect(pieces), lora_name="style")
    assert "".join(pieces) == "[LoRA style] hi"
    pieces.clear()
    rt.run_prompt("hi", on_token=collect(pieces))
    assert "".join(pieces) == "hi"
    with pytest.raises(rkllm.InvalidConfigError, match="not loaded"):
        rt.run_prompt("hi", lora_name="other")
    with pytest.raises(rkllm.ModelLoadError, match="LoRA adapter file not found"):
        rt.load_lora(tmp_path / "missing.lora", "x")


def test_prompt_cache_save_load_release(lib, make_model, tmp_path: Path) -> None:
    model = make_model(behaviour="echo")
    cache = tmp_path / "prompt.cache"
    with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=model), library=lib) as rt:
        full = rt.run_prompt("a long shared prompt prefix", save_prompt_cache=cache)
        assert cache.read_bytes()[:8] == b"RKSIMPC1"
    with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=model), library=lib) as rt:
        rt.load_prompt_cache(cache)
        hit = rt.run_prompt("a long shared prompt prefix")
        assert hit.perf.prefill_tokens < full.perf.prefill_tokens
        rt.release_prompt_cache()
        again = rt.run_prompt("a long shared prompt prefix")
        assert again.perf.prefill_tokens == full.perf.prefill_tokens
        with pytest.raises(rkllm.ModelLoadError, match="prompt cache file not found"):
            rt.load_prompt_cache(tmp_path / "nope.cache")
        junk = tmp_path / "junk.cache"
        junk.write_bytes(b"not a cache")
        with pytest.raises(rkllm.RKLLMCallError) as ei:
            rt.load_prompt_cache(junk)
        assert ei.value.function == "rkllm_load_prompt_cache" and ei.value.code == -1
        with pytest.raises(rkllm.InvalidConfigError, match="does not exist"):
            rt.run_prompt("x", save_prompt_cache=tmp_path / "no-dir" / "c")


def test_logits_mode_returns_a_numpy_copy(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    res = rt.run_tokens(list(b"xyz"), mode=rkllm.RKLLMInferMode.RKLLM_INFER_GET_LOGITS)
    assert res.status == "finished" and res.n_tokens == 0
    assert isinstance(res.logits, np.ndarray) and res.logits.dtype == np.float32
    assert res.logits.shape == (1, 263)
    assert int(np.argmax(res.logits[0])) == ord("x")  # the echo's next token
    before = res.logits.copy()
    rt.run_tokens(list(b"abc"), mode=rkllm.RKLLMInferMode.RKLLM_INFER_GET_LOGITS)
    np.testing.assert_array_equal(res.logits, before)  # ours, not the runtime's freed buffer


def test_hidden_layer_mode_reads_the_right_memory(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    toks = list(b"hey")
    res = rt.run_tokens(toks, mode=rkllm.RKLLMInferMode.RKLLM_INFER_GET_LAST_HIDDEN_LAYER)
    hs = res.hidden_states
    assert hs is not None and hs.shape == (3, 1536) and hs.dtype == np.float32
    d = np.arange(1536, dtype=np.float32)
    for pos, tok in enumerate(toks):  # the simulator's documented deterministic values
        expect = np.sin(np.float32(0.013) * np.float32(tok + 1) * (d + 1) + np.float32(0.07) * pos)
        np.testing.assert_allclose(hs[pos], expect, atol=1e-4)


def test_embedding_input(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    pieces: list[str] = []
    res = rt.run_embeddings(np.zeros((4, 16), dtype=np.float32), on_token=collect(pieces))
    assert res.perf.prefill_tokens == 4 and "".join(pieces) == "    "
    with pytest.raises(rkllm.InvalidConfigError):
        rt.run_embeddings(np.zeros(3))


def test_n_batch_two(make_runtime) -> None:
    rt = make_runtime(cfg=dict(n_batch=2), behaviour="echo")
    assert rt.kv_cache_size() == [0, 0]
    pieces: list[str] = []
    res = rt.run_tokens(list(b"batch"), on_token=collect(pieces), keep_history=True)
    assert "".join(pieces) == "batch" and res.status == "finished"
    sizes = rt.kv_cache_size()
    assert len(sizes) == 2 and sizes[0] == sizes[1] > 0


def test_is_running_inside_and_outside_a_run(lib, make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    seen = []

    def on_token(token_id: int, text: str) -> None:
        seen.append((rt.is_running(), lib.rkllm_is_running(rt.handle)))

    rt.run_prompt("ab", on_token=on_token)
    assert seen == [(True, 0), (True, 0)]  # 1.2.3: 0 while a task runs
    assert not rt.is_running() and lib.rkllm_is_running(rt.handle) != 0
    assert rt.abort() is False  # nothing to abort


def test_cross_attn_params(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    z = np.zeros(8, dtype=np.float32)
    rt.set_cross_attn_params(z, z, z, np.zeros(2, dtype=np.int32), 2)
    with pytest.raises(rkllm.RKLLMCallError) as ei:
        rt.set_cross_attn_params(z, z, z, np.zeros(2, dtype=np.int32), -1)
    assert ei.value.function == "rkllm_set_cross_attn_params"


def test_raw_run_async_through_ctypes(lib, make_model) -> None:
    """The raw layer on its own: init, run_async, destroy with a bare callback."""
    got: list[bytes] = []
    states: list[int] = []

    @rkllm.LLMResultCallback
    def cb(result, userdata, state):  # noqa: ANN001
        states.append(state)
        if state == rkllm.LLMCallState.RKLLM_RUN_NORMAL:
            got.append(result.contents.text)
        assert userdata == 1234
        return 0

    param = lib.rkllm_createDefaultParam()
    path = str(make_model(behaviour="echo")).encode()
    param.model_path = path
    handle = rkllm.LLMHandle()
    assert lib.rkllm_init(ctypes.byref(handle), ctypes.byref(param), cb) == 0
    ids = (ctypes.c_int32 * 2)(*b"ok")
    inp = rkllm.RKLLMInput(role=b"user", input_type=rkllm.RKLLMInputType.RKLLM_INPUT_TOKEN)
    inp.token_input = rkllm.RKLLMTokenInput(ids, 2)
    infer = rkllm.RKLLMInferParam(mode=rkllm.RKLLMInferMode.RKLLM_INFER_GENERATE)
    assert lib.rkllm_run_async(handle, ctypes.byref(inp), ctypes.byref(infer), 1234) == 0
    assert b"".join(got) == b"ok" and states[-1] == rkllm.LLMCallState.RKLLM_RUN_FINISH
    assert lib.rkllm_destroy(handle) == 0


def test_close_is_final_and_idempotent(lib, make_model) -> None:
    with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=make_model()), library=lib) as rt:
        assert rt.run_prompt("x").status == "finished"
    assert rt.closed
    rt.close()
    with pytest.raises(rkllm.RuntimeClosedError):
        rt.run_prompt("x")
    with pytest.raises(rkllm.RuntimeClosedError):
        rt.kv_cache_size()


def test_library_given_as_path(sim_lib_path: Path, make_model) -> None:
    with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=make_model()), library=str(sim_lib_path)) as rt:
        assert rt.run_prompt("p").n_tokens == 1


def test_two_threads_share_one_runtime_safely(make_runtime) -> None:
    rt = make_runtime(behaviour="echo")
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def worker(word: str) -> None:
        try:
            for _ in range(30):
                pieces: list[str] = []
                rt.run_prompt(word, on_token=collect(pieces))
                assert "".join(pieces) == word
            results[word] = word
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in ("alpha", "beta-beta", "γάμμα")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3


def test_shipped_simulated_models_through_the_binding(lib) -> None:
    from exo_rkllm.sim import sim_model_path

    with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=sim_model_path("chat-instant")),
                            library=lib) as rt:
        pieces: list[str] = []
        res = rt.run_prompt("hello", on_token=collect(pieces), keep_history=True)
        assert res.status == "finished" and "simulated assistant" in "".join(pieces)
        pieces.clear()
        rt.run_prompt("and now?", on_token=collect(pieces), keep_history=True)
        assert "".join(pieces).startswith("Good question")  # second user turn, second reply
    with rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=sim_model_path("reasoning-instant")),
                            library=lib) as rt:
        ids: list[int] = []
        pieces = []
        rt.run_prompt("why?", on_token=lambda t, x: (ids.append(t), pieces.append(x)) and None)
        assert 260 in ids and "</think>" in "".join(pieces)  # the think block closes in the output

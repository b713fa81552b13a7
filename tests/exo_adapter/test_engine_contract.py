"""RKLLMInferenceEngine driven with exo's exact call sequence (exo/orchestration/node.py, v0.0.15-alpha).

Written from the contract, not imported from exo, so these always run. Node does, per request:
infer_prompt -> sample(result, temp=...) -> token.item() -> stop on tokenizer.eos_token_id or the cap,
else infer_tensor(request_id, shard, token.reshape(1, -1), state), and again.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal

import numpy as np
import pytest

from exo_rkllm import metrics
from exo_rkllm.core import QueueFullError
from exo_rkllm.exo_adapter.base import EXO_AVAILABLE, InferenceEngine, Shard
from exo_rkllm.exo_adapter.engine import PartialShardError, RKLLMInferenceEngine


def run(coro):
    return asyncio.run(coro)


def full_shard(model_id: str, layers: int = 28) -> Shard:
    return Shard(model_id, 0, layers - 1, layers)


def template(engine: RKLLMInferenceEngine, messages: list[dict]) -> str:
    """What exo's ChatGPT API hands to process_prompt: the chat-templated prompt as text."""
    return engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


async def drive(engine, shard, request_id: str, prompt: str, max_tokens: int = 10000) -> list[int]:
    """exo's Node loop for one request on a single node (the ring wraps to itself)."""
    result, state = await engine.infer_prompt(request_id, shard, prompt)
    tokens: list[int] = []
    while True:
        token = await engine.sample(result, temp=0.0)
        assert token.shape == (1,) and np.issubdtype(token.dtype, np.integer)
        tokens.append(token.item())
        if token.item() == engine.tokenizer.eos_token_id or len(tokens) >= max_tokens:
            return tokens
        result, state = await engine.infer_tensor(request_id, shard, token.reshape(1, -1), state)


async def loaded(model_id: str, **kwargs) -> tuple[RKLLMInferenceEngine, Shard]:
    engine = RKLLMInferenceEngine(None, **kwargs)
    shard = full_shard(model_id)
    await engine.ensure_shard(shard)
    return engine, shard


def test_engine_honours_the_contract_shape():
    assert issubclass(RKLLMInferenceEngine, InferenceEngine)
    assert not inspect.isabstract(RKLLMInferenceEngine)
    engine = RKLLMInferenceEngine(None)
    other = RKLLMInferenceEngine(None)
    assert engine.session is not other.session  # exo's class-level dict is not shared here
    assert engine.shard_downloader is None and engine.shard is None
    params = inspect.signature(engine.sample).parameters
    assert "temp" in params and "top_p" in params


def test_streaming_model_full_request(simulated):
    async def main():
        engine, shard = await loaded("sim-instant")
        prompt = template(engine, [{"role": "user", "content": "Hello"}])
        # A background preload racing the first request, as exo's API does.
        await asyncio.gather(engine.ensure_shard(shard), engine.ensure_shard(shard))
        tokens = await drive(engine, shard, "req-1", prompt)
        text = await engine.decode(shard, np.array(tokens))
        # exo's terminal UI decodes the growing token list: each step extends the text seen so far.
        steps = [await engine.decode(shard, np.array(tokens[: i + 1])) for i in range(len(tokens))]
        await engine.close()
        return engine, tokens, text, steps

    engine, tokens, text, steps = run(main())
    assert tokens[-1] == engine.tokenizer.eos_token_id
    assert tokens.count(engine.tokenizer.eos_token_id) == 1
    assert text.strip() and steps[-1] == text
    assert all(text.startswith(s.rstrip("\ufffd")) for s in steps)
    assert "<|im_end|>" not in text


def test_streaming_hands_out_the_first_token_before_the_run_ends(monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "40")

    async def main():
        engine, shard = await loaded("sim-instant")
        prompt = template(engine, [{"role": "user", "content": "Hello"}])
        result, _ = await engine.infer_prompt("s", shard, prompt)
        svc = engine._service
        still_running = svc.running  # the runtime is still generating the rest
        await engine.close()
        return result, still_running

    result, still_running = run(main())
    assert result.shape == (1, 1) and still_running


def test_cached_model_replays_after_the_run_completes(cached_models_dir):
    async def main():
        engine, shard = await loaded("sim-cached")
        prompt = template(engine, [{"role": "user", "content": "Hello"}])
        result, _ = await engine.infer_prompt("c", shard, prompt)
        finished_first = engine._requests["c"].stream.finish is not None
        tokens = [int(result.item())]
        while tokens[-1] != engine.tokenizer.eos_token_id:
            result, _ = await engine.infer_tensor("c", shard, result)
            tokens.append(int(result.item()))
        await engine.close()
        return finished_first, tokens, engine

    finished_first, tokens, engine = run(main())
    assert finished_first  # cached: the whole reply was in the buffer before the first token was handed out
    assert len(tokens) > 3


def test_reasoning_model_streams_its_thought_and_answer():
    async def main():
        engine, shard = await loaded("sim-reasoning-instant")
        prompt = template(engine, [{"role": "user", "content": "Why is the sky blue?"}])
        tokens = await drive(engine, shard, "r", prompt)
        text = await engine.decode(shard, np.array(tokens))
        await engine.close()
        return engine, tokens, text

    engine, tokens, text = run(main())
    assert tokens[-1] == engine.tokenizer.eos_token_id
    assert "</think>" in text and text.split("</think>", 1)[1].strip()


def test_exo_token_cap_then_a_new_request_gets_the_npu(monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "20")

    async def main():
        engine, shard = await loaded("sim-instant")
        engine_mod = __import__("exo_rkllm.exo_adapter.engine", fromlist=["x"])
        monkeypatch.setattr(engine_mod, "PREEMPT_IDLE_S", 0.1)
        prompt = template(engine, [{"role": "user", "content": "Tell me a long story"}])
        capped = await drive(engine, shard, "capped", prompt, max_tokens=3)  # exo stops calling here
        await asyncio.sleep(0.2)
        tokens = await drive(engine, shard, "next", prompt)
        gone = "capped" not in engine._requests
        await engine.close()
        return engine, capped, tokens, gone

    engine, capped, tokens, gone = run(main())
    assert len(capped) == 3 and tokens[-1] == engine.tokenizer.eos_token_id and gone


def test_two_requests_interleaved_both_complete_in_full(monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "5")

    async def main():
        engine, shard = await loaded("sim-instant")
        p1 = template(engine, [{"role": "user", "content": "First question"}])
        p2 = template(engine, [{"role": "user", "content": "Second question"}])
        a, b = await asyncio.gather(drive(engine, shard, "a", p1), drive(engine, shard, "b", p2))
        alone = await drive(engine, shard, "c", p1)
        await engine.close()
        return engine, a, b, alone

    engine, a, b, alone = run(main())
    eos = engine.tokenizer.eos_token_id
    assert a[-1] == eos and b[-1] == eos
    assert a == alone  # the same prompt gives the same reply: nothing dropped or mixed in


def test_queue_overflow_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "30")

    async def main():
        engine, shard = await loaded("sim-instant", queue_depth=1)
        prompt = template(engine, [{"role": "user", "content": "Hello"}])
        first = asyncio.create_task(drive(engine, shard, "1", prompt))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(drive(engine, shard, "2", prompt))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError) as err:
            await engine.infer_prompt("3", shard, prompt)
        results = await asyncio.gather(first, second)
        await engine.close()
        return engine, err.value, results

    engine, err, results = run(main())
    assert "queue" in err.message
    assert all(r[-1] == engine.tokenizer.eos_token_id for r in results)


def test_close_aborts_a_run_in_flight(monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "50")

    async def main():
        engine, shard = await loaded("sim-instant")
        svc = engine._service
        prompt = template(engine, [{"role": "user", "content": "Hello"}])
        await engine.infer_prompt("x", shard, prompt)
        assert svc.running
        await engine.close()
        return svc

    svc = run(main())
    assert not svc.running and svc.worker_pid is None


def test_worker_crash_mid_stream_ends_the_reply_with_the_error_and_recovers(monkeypatch):
    async def main():
        monkeypatch.setenv("RKLLM_SIM_FAULT", "segv_at:4")
        engine, shard = await loaded("sim-instant")
        prompt = template(engine, [{"role": "user", "content": "Hello"}])
        tokens = await drive(engine, shard, "crash", prompt)
        text = await engine.decode(shard, np.array(tokens))
        monkeypatch.delenv("RKLLM_SIM_FAULT")
        after = await drive(engine, shard, "after", prompt)
        await engine.close()
        return engine, tokens, text, after

    engine, tokens, text, after = run(main())
    assert tokens[-1] == engine.tokenizer.eos_token_id
    assert "exo-rkllm error" in text and "SIGSEGV" in text
    assert after[-1] == engine.tokenizer.eos_token_id and len(after) > 3


def test_next_turn_reuses_the_kv_cache():
    async def main():
        engine, shard = await loaded("sim-instant")
        prefilled = metrics.PREFILLED_TOKENS.labels(model="sim-instant")
        messages = [{"role": "user", "content": "What is an NPU?"}]
        p1 = template(engine, messages)
        t1 = await drive(engine, shard, "turn1", p1)
        reply = await engine.decode(shard, np.array(t1))
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And RK3588?"}]
        p2 = template(engine, messages)
        before = prefilled._value.get()
        await drive(engine, shard, "turn2", p2)
        used = prefilled._value.get() - before
        n2 = len(await engine.encode(shard, p2))
        await engine.close()
        return used, n2

    used, n2 = run(main())
    assert 0 < used < n2 / 2  # only the new turn was prefilled


def test_partial_shard_is_refused_with_the_reason():
    async def main():
        engine = RKLLMInferenceEngine(None)
        with pytest.raises(PartialShardError) as err:
            await engine.infer_prompt("p", Shard("sim-instant", 0, 13, 28), "hello")
        return err.value

    err = run(main())
    assert "cannot be split by layer" in str(err) and "nginx" in str(err)


def test_out_of_vocabulary_ids_are_never_handed_to_exo(monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_FAULT", "oov_at:2")

    async def main():
        engine, shard = await loaded("sim-instant")
        prompt = template(engine, [{"role": "user", "content": "Hello"}])
        tokens = await drive(engine, shard, "oov", prompt)
        await engine.close()
        return engine, tokens

    engine, tokens = run(main())
    assert all(0 <= t < len(engine.tokenizer) for t in tokens)


def test_unknown_model_names_the_known_ones():
    from exo_rkllm.catalog import UnknownModelError

    async def main():
        engine = RKLLMInferenceEngine(None)
        with pytest.raises(UnknownModelError) as err:
            await engine.ensure_shard(full_shard("no-such-model"))
        return err.value

    err = run(main())
    assert "sim-instant" in str(err) and "models list" in str(err)


def test_entry_points_register_the_engine_and_the_model_cards():
    from importlib.metadata import entry_points

    engines = {ep.name: ep for ep in entry_points(group="exo.inference_engines")}
    assert engines["rkllm"].load() is RKLLMInferenceEngine
    cards = entry_points(group="exo.models")["rkllm"].load()
    assert isinstance(cards, dict)
    assert cards["sim-instant"]["repo"]["RKLLMInferenceEngine"]
    assert cards["qwen2.5-1.5b-instruct"]["layers"] == 28


@pytest.mark.skipif(EXO_AVAILABLE, reason="checks the stand-in base used when exo is not installed")
def test_without_exo_the_stand_in_shard_behaves_like_exos():
    s = Shard("m", 0, 27, 28)
    assert s.is_first_layer() and s.is_last_layer() and s.get_layer_count() == 28
    assert Shard.from_dict(s.to_dict()) == s
    assert not Shard("m", 0, 13, 28).is_last_layer()

"""The serving core across real worker processes and the C simulator: what a caller of the core sees."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal

import pytest

from exo_rkllm import metrics
from exo_rkllm.core import (ContextOverflowError, GenerationRequest, QueueFullError, RequestTimeoutError,
                            RuntimeSpec, RuntimeUnavailableError, SamplingMismatchError, ServingCore,
                            WorkerCrashedError)


def run(coro):
    """Each test owns its event loop (no pytest-asyncio dependency)."""
    return asyncio.run(coro)


def chat_ids(svc, messages: list[dict]) -> list[int]:
    """The prompt as the HTTP layer builds it: the model's chat template, then token ids."""
    text = svc.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return svc.tokenizer.encode(text, add_special_tokens=False)


async def collect(stream) -> tuple[list, str]:
    pieces = [p async for p in stream]
    return pieces, "".join(p.text for p in pieces)


async def started(spec, card, **kwargs) -> ServingCore:
    core = ServingCore(spec, [card], **kwargs)
    await core.start()
    return core


HELLO = [{"role": "user", "content": "Hello there"}]


def test_stream_delivers_the_reply_token_by_token(sim_spec, chat_card):
    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            pieces, text = await collect(svc.submit(GenerationRequest("r1", ids)))
            return svc, ids, pieces, text, svc.submit(GenerationRequest("r2", ids))
        finally:
            await core.close()

    svc, ids, pieces, text, _ = run(main())
    assert len(pieces) > 3 and text.strip()
    # The text is exactly what the tokenizer makes of the ids the runtime produced: nothing lost.
    assert svc.tokenizer.decode([p.token_id for p in pieces], skip_special_tokens=True) == text


def test_finish_carries_usage_and_reason(sim_spec, chat_card):
    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            stream = svc.submit(GenerationRequest("r", ids))
            pieces, _ = await collect(stream)
            capped = svc.submit(GenerationRequest("c", ids, max_new_tokens=4))
            capped_pieces, _ = await collect(capped)
            return ids, pieces, stream.finish, capped_pieces, capped.finish
        finally:
            await core.close()

    ids, pieces, fin, capped_pieces, capped_fin = run(main())
    assert fin.reason == "stop"
    assert fin.prompt_tokens == len(ids) and fin.completion_tokens == len(pieces)
    assert capped_fin.reason == "length" and len(capped_pieces) == 4 and capped_fin.completion_tokens == 4


def test_requests_run_in_arrival_order_and_the_queue_is_bounded(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "20")

    async def main():
        core = await started(sim_spec, chat_card, queue_depth=2)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            order: list[str] = []
            streams = [svc.submit(GenerationRequest(f"q{i}", ids, max_new_tokens=3)) for i in range(2)]
            await asyncio.sleep(0.05)  # q0 is now running, q1 waits
            streams.append(svc.submit(GenerationRequest("q2", ids, max_new_tokens=3)))
            with pytest.raises(QueueFullError) as full:
                svc.submit(GenerationRequest("q3", ids, max_new_tokens=3))

            async def drain(s):
                await collect(s)
                order.append(s.request_id)

            await asyncio.gather(*(drain(s) for s in reversed(streams)))
            return order, full.value, [s.finish.reason for s in streams]
        finally:
            await core.close()

    order, full, reasons = run(main())
    assert order == ["q0", "q1", "q2"]
    assert reasons == ["length"] * 3
    assert full.retry_after_s > 0 and "queue" in full.message and "--queue-depth" in full.fix


def test_cancel_while_queued_and_while_running(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "50")

    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            running = svc.submit(GenerationRequest("run", ids, max_new_tokens=500))
            queued = svc.submit(GenerationRequest("queued", ids, max_new_tokens=2))
            await running.next_batch()  # the run has started producing
            queued.cancel()
            running.cancel()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while svc.running:
                await asyncio.sleep(0.01)
            freed_after = loop.time() - t0
            after = svc.submit(GenerationRequest("after", ids, max_new_tokens=2))
            pieces, _ = await collect(after)
            return running.finish, queued.finish, freed_after, pieces, svc.queue_length
        finally:
            await core.close()

    run_fin, queued_fin, freed_after, pieces, qlen = run(main())
    assert run_fin.reason == "abort" and queued_fin.reason == "abort"
    assert queued_fin.completion_tokens == 0
    assert freed_after < 1.0  # the NPU is free again within a second of the client leaving
    assert len(pieces) == 2 and qlen == 0


def test_request_timeout_ends_a_run_with_a_clear_error(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "50")

    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            stream = svc.submit(GenerationRequest("t", chat_ids(svc, HELLO), max_new_tokens=500, timeout_s=0.3))
            pieces, _ = await collect(stream)
            return stream.finish, pieces
        finally:
            await core.close()

    fin, pieces = run(main())
    assert fin.reason == "timeout" and isinstance(fin.error, RequestTimeoutError)
    assert "0 s" not in fin.error.message and "max_tokens" in fin.error.fix
    assert 0 < len(pieces) < 500


def test_worker_crash_fails_the_request_and_the_next_one_restarts_it(sim_spec, chat_card, monkeypatch):
    async def main():
        monkeypatch.setenv("RKLLM_SIM_FAULT", "segv_at:3")
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            first_pid = svc.worker_pid
            crashed = svc.submit(GenerationRequest("boom", ids))
            with pytest.raises(WorkerCrashedError) as err:
                await collect(crashed)
            monkeypatch.delenv("RKLLM_SIM_FAULT")
            pieces, text = await collect(svc.submit(GenerationRequest("ok", ids)))
            return err.value, crashed.finish, pieces, first_pid, svc.worker_pid, svc.restarts
        finally:
            await core.close()

    err, fin, pieces, pid1, pid2, restarts = run(main())
    assert "SIGSEGV" in err.message and "restarts the worker" in err.fix
    assert fin.reason == "error" and fin.completion_tokens == 3  # segv_at:N delivers N tokens first
    assert pieces and pid1 != pid2 and restarts == 1


def test_worker_killed_from_outside_is_reported_and_recovered(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "30")

    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            stream = svc.submit(GenerationRequest("k", ids, max_new_tokens=200))
            await stream.next_batch()
            os.kill(svc.worker_pid, signal.SIGKILL)  # what the OOM killer does
            with pytest.raises(WorkerCrashedError) as err:
                await collect(stream)
            pieces, _ = await collect(svc.submit(GenerationRequest("next", ids, max_new_tokens=3)))
            return err.value, pieces
        finally:
            await core.close()

    err, pieces = run(main())
    assert "SIGKILL" in err.message and "out of memory" in err.message
    assert len(pieces) == 3


def test_model_that_fails_to_load_names_the_cause(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_FAULT", "init_fail")

    async def main():
        core = ServingCore(sim_spec, [chat_card])
        with pytest.raises(RuntimeUnavailableError) as err:
            await core.start()
        return err.value

    err = run(main())
    assert chat_card.id in err.message and "could not be loaded" in err.message
    assert err.fix


def test_worker_dying_during_load_is_a_clear_error(sim_spec, chat_card, monkeypatch):
    # A model file that is not a model: the runtime refuses it (invalid magic) and we say what to do.
    bad = dataclasses.replace(chat_card, id="sim-broken")

    async def main():
        import exo_rkllm.core.core as core_mod

        real = core_mod.model_file
        monkeypatch.setattr(core_mod, "model_file", lambda card, spec: __file__)  # a Python file, not a model
        try:
            core = ServingCore(sim_spec, [bad])
            with pytest.raises(RuntimeUnavailableError) as err:
                await core.start()
            return err.value
        finally:
            monkeypatch.setattr(core_mod, "model_file", real)

    err = run(main())
    assert "sim-broken" in err.message
    assert "rkllm-toolkit" in err.fix or "models verify" in err.fix


def test_next_turn_prefills_only_its_new_tokens(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_PREFILL_MS", "4")

    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            messages: list[dict] = []
            turns = []
            for turn in range(10):
                messages.append({"role": "user", "content": f"Question number {turn}: tell me about boards."})
                ids = chat_ids(svc, messages)
                stream = svc.submit(GenerationRequest(f"turn{turn}", ids, max_new_tokens=12))
                pieces, text = await collect(stream)
                messages.append({"role": "assistant", "content": text})
                turns.append((len(ids), stream.finish))
            return turns
        finally:
            await core.close()

    turns = run(main())
    first_len, first = turns[0]
    assert first.prefilled_tokens == first_len
    for (prev_len, prev), (prompt_len, fin) in zip(turns, turns[1:]):
        # Exactly what the new turn added since the last one (its reply is already in the cache).
        assert fin.prefilled_tokens == prompt_len - (prev_len + prev.completion_tokens)
    tenth_len, tenth = turns[-1]
    assert tenth_len > 5 * tenth.prefilled_tokens
    # The runtime's own prefill time follows: the 10th turn costs no more than the 1st plus its new tokens.
    assert tenth.prefill_ms <= first.prefill_ms + tenth.prefilled_tokens * 4 + 50
    assert tenth.ttft_s <= first.ttft_s + tenth.prefilled_tokens * 0.004 + 0.5


def test_unrelated_prompt_clears_the_cache_and_prefills_everything(sim_spec, chat_card):
    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            a = chat_ids(svc, HELLO)
            b = chat_ids(svc, [{"role": "user", "content": "Something else entirely"}])
            s1 = svc.submit(GenerationRequest("a", a))
            await collect(s1)
            s2 = svc.submit(GenerationRequest("b", b))
            await collect(s2)
            return len(b), s2.finish
        finally:
            await core.close()

    n, fin = run(main())
    assert fin.prefilled_tokens == n


def test_reasoning_budget_closes_the_thought_and_the_answer_follows(sim_spec, reasoning_card):
    async def main():
        core = await started(sim_spec, reasoning_card)
        try:
            svc = core.service(reasoning_card.id)
            ids = chat_ids(svc, [{"role": "user", "content": "Why is the sky blue?"}])
            free_pieces, free_text = await collect(svc.submit(GenerationRequest("free", ids)))
            budget_pieces, budget_text = await collect(svc.submit(GenerationRequest("b", ids, reasoning_budget=5)))
            return svc, free_text, budget_pieces, budget_text
        finally:
            await core.close()

    svc, free_text, budget_pieces, budget_text = run(main())
    end = svc.card.think_end
    assert end in free_text and end in budget_text
    free_thought, free_answer = free_text.split(end, 1)
    thought, answer = budget_text.split(end, 1)
    assert len(thought) < len(free_thought)  # cut short
    ids_before_end = [p.token_id for p in budget_pieces].index(svc.think_end_id)
    assert ids_before_end <= 6  # 5 thought tokens, then the fed "\n" before the closing tag
    assert answer.strip() == free_answer.strip()  # the answer still comes, and only the answer
    assert end not in answer


def test_out_of_vocabulary_ids_never_become_text(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_FAULT", "oov_at:2")

    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            before = metrics.OOV_TOKENS.labels(model=chat_card.id)._value.get()
            stream = svc.submit(GenerationRequest("o", chat_ids(svc, HELLO)))
            pieces, text = await collect(stream)
            after = metrics.OOV_TOKENS.labels(model=chat_card.id)._value.get()
            return svc, pieces, text, stream.finish, after - before
        finally:
            await core.close()

    svc, pieces, text, fin, counted = run(main())
    oov = [p for p in pieces if p.token_id >= svc.vocab_size]
    assert len(oov) == 1 and oov[0].text == ""
    assert "[PAD" not in text and fin.oov_tokens == 1 and counted == 1


def test_prompt_longer_than_the_context_is_refused_before_running(sim_spec, chat_card):
    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            with pytest.raises(ContextOverflowError) as err:
                svc.submit(GenerationRequest("big", [65] * chat_card.context_length))
            return err.value, svc.queue_length
        finally:
            await core.close()

    err, qlen = run(main())
    assert str(chat_card.context_length) in err.message and "Shorten" in err.fix and qlen == 0


def test_sampling_policy_strict_refuses_and_reload_serves(sim_spec, chat_card):
    async def main():
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            with pytest.raises(SamplingMismatchError) as err:
                svc.submit(GenerationRequest("s", ids, sampling={"temperature": 1.3}))
            same = svc.submit(GenerationRequest("same", ids, sampling=dict(svc.loaded_sampling)))
            await collect(same)
        finally:
            await core.close()
        core = await started(sim_spec, chat_card, sampling_policy="reload")
        try:
            svc = core.service(chat_card.id)
            pid = svc.worker_pid
            stream = svc.submit(GenerationRequest("r", ids, sampling={"temperature": 1.3}))
            pieces, _ = await collect(stream)
            return err.value, same.finish, pieces, pid, svc.worker_pid, svc.loaded_sampling
        finally:
            await core.close()

    err, same_fin, pieces, pid1, pid2, loaded = run(main())
    assert "temperature=1.3" in err.message and "--sampling-policy reload" in err.fix
    assert same_fin.reason == "stop"
    assert pieces and pid1 != pid2 and loaded["temperature"] == 1.3


def test_board_runtime_missing_says_where_it_looked_and_how_to_simulate(monkeypatch, tmp_path):
    monkeypatch.setenv("RKLLM_LIB_PATH", str(tmp_path / "librkllmrt.so"))
    with pytest.raises(RuntimeUnavailableError) as err:
        RuntimeSpec.board()
    assert "--simulate" in err.value.fix and "librkllmrt.so" in err.value.message


def test_board_runtime_refuses_the_simulator(sim_spec):
    with pytest.raises(RuntimeUnavailableError) as err:
        RuntimeSpec.board(sim_spec.library)
    assert "simulated" in err.value.message and "--simulate" in err.value.fix


def test_runtime_and_model_kinds_never_mix(sim_spec, chat_card):
    from exo_rkllm.catalog import get_card

    real = get_card("qwen2.5-1.5b-instruct")
    with pytest.raises(RuntimeUnavailableError) as err:
        run(ServingCore(sim_spec, [real]).start())
    assert "simulated runtime serves only the simulated models" in err.value.message
    board = RuntimeSpec("/usr/lib/librkllmrt.so", False)
    with pytest.raises(RuntimeUnavailableError) as err2:
        run(ServingCore(board, [chat_card], check_memory=False).start())
    assert "--simulate" in err2.value.fix


def test_closing_the_core_ends_a_stream_in_flight(sim_spec, chat_card, monkeypatch):
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "50")

    async def main():
        core = await started(sim_spec, chat_card)
        svc = core.service(chat_card.id)
        stream = svc.submit(GenerationRequest("inflight", chat_ids(svc, HELLO), max_new_tokens=500))
        queued = svc.submit(GenerationRequest("queued", chat_ids(svc, HELLO)))
        await stream.next_batch()
        await core.close()
        # The consumer is not left waiting forever: both streams end.
        await asyncio.wait_for(stream.wait_finished(), 5)
        await asyncio.wait_for(queued.wait_finished(), 5)
        return stream.finish, queued.finish, svc.worker_pid

    fin, queued_fin, pid = run(main())
    assert fin.reason == "abort" and "shutting down" in fin.error.message
    assert queued_fin.reason == "error" and pid is None


def test_runtime_error_mid_run_names_the_runtimes_words_and_the_worker_stays(sim_spec, chat_card, monkeypatch):
    async def main():
        monkeypatch.setenv("RKLLM_SIM_FAULT", "error_at:3")
        core = await started(sim_spec, chat_card)
        try:
            svc = core.service(chat_card.id)
            ids = chat_ids(svc, HELLO)
            pid = svc.worker_pid
            failed = svc.submit(GenerationRequest("e", ids))
            with pytest.raises(Exception) as err:
                await collect(failed)
            pieces, _ = await collect(svc.submit(GenerationRequest("next", ids, max_new_tokens=2)))
            return err.value, failed.finish, pid, svc.worker_pid, pieces
        finally:
            await core.close()

    err, fin, pid_before, pid_after, pieces = run(main())
    assert "RKLLM_RUN_ERROR" in err.message and "RKLLMRunError" in err.message and "retry" in err.fix
    assert fin.reason == "error" and fin.completion_tokens == 3
    assert pid_before == pid_after  # a runtime error is not a crash: the worker and its model stay loaded
    assert len(pieces) == 2

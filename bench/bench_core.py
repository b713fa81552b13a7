"""Serving-core overhead, worker process included, with the simulator at zero delay.

Prints:
  - the binding alone, in-process: µs per token (what the runtime callback path costs);
  - the core: µs per token from submit to the consumer (worker process, socket, buffer, asyncio);
  - the core's own share: the difference (target <= 150 µs/token);
  - first-token overhead: time to first token minus the runtime's own reported prefill (target <= 10 ms).
Run: python bench/bench_core.py [--tokens 20000] [--requests 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import rkllm
from exo_rkllm.catalog import get_card
from exo_rkllm.core import GenerationRequest, RuntimeSpec
from exo_rkllm.core.core import worker_config
from exo_rkllm.core.service import ModelService

LONG_MODEL = """RKLLM-SIM 1
name: bench-long
emulates: nothing (zero delays: measures exo-rkllm's own overhead)
tokenizer: chat
eos_id: 258
think_start_id: 259
think_end_id: 260
decode_ms: 0
prefill_ms: 0
load_ms: 0
memory_mb: 64
max_context_len: 65536
behaviour: long
"""


def binding_us_per_token(lib_path: str, model: Path, n: int) -> float:
    rt = rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=str(model), max_context_len=65536,
                                                max_new_tokens=n), library=lib_path)
    count = 0

    def on_token(token_id: int, text: str) -> int:
        nonlocal count
        count += 1
        return 0

    t0 = time.perf_counter()
    rt.run_tokens([72, 105], on_token=on_token, keep_history=False)
    dt = time.perf_counter() - t0
    rt.close()
    return dt / max(count, 1) * 1e6


async def core_figures(spec: RuntimeSpec, model: Path, n: int, requests: int) -> tuple[float, float, float]:
    card = get_card("sim-instant")
    card = dataclasses.replace(card, context_length=65536, max_new_tokens=n)
    config = worker_config(get_card("sim-instant"), spec)
    config["runtime"].update(model_path=str(model), max_context_len=65536, max_new_tokens=65536)
    svc = ModelService(card, config, queue_depth=4)
    await svc.start()
    try:
        prompt = svc.tokenizer.encode("Hello", add_special_tokens=False)
        t0 = time.perf_counter()
        stream = svc.submit(GenerationRequest("long", prompt, max_new_tokens=n))
        got = 0
        while True:
            batch = await stream.next_batch()
            if not batch:
                break
            got += len(batch)
        per_token = (time.perf_counter() - t0) / got * 1e6
        overheads = []
        for i in range(requests):
            s = svc.submit(GenerationRequest(f"ttft{i}", prompt + [i % 200 + 32], max_new_tokens=1))
            await s.wait_finished()
            overheads.append(s.finish.ttft_s * 1000 - s.finish.prefill_ms)
        return per_token, statistics.median(overheads), max(overheads)
    finally:
        await svc.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    spec = RuntimeSpec.simulated()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "bench-long.rkllm"
        model.write_text(LONG_MODEL)
        binding = min(binding_us_per_token(spec.library, model, args.tokens) for _ in range(3))
        core, ttft_med, ttft_max = asyncio.run(core_figures(spec, model, args.tokens, args.requests))
    print(f"binding alone (in-process):      {binding:8.1f} µs/token")
    print(f"core end to end (worker process): {core:8.1f} µs/token over {args.tokens} tokens")
    print(f"core's own share:                 {core - binding:8.1f} µs/token   (target <= 150)")
    print(f"first-token overhead over prefill: median {ttft_med:.2f} ms, max {ttft_max:.2f} ms "
          f"over {args.requests} requests   (target <= 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

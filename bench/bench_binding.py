"""Per-token cost of the rkllm binding (ctypes callback + UTF-8 decode + user callback).

Not a test: prints µs/token through RKLLMRuntime.run_tokens with the zero-delay simulator
(behaviour `long`, decode_ms 0), median of several long runs. Target: <= 20 µs/token.
The simulator's own per-token work is included, so the figure is an upper bound of the
binding's cost. Also prints the raw-ctypes floor (a no-op Python callback) for comparison.

    python bench/bench_binding.py [--tokens 20000] [--runs 5] [--lib PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import tempfile
import time
from pathlib import Path

import rkllm

MODEL = """RKLLM-SIM 1
name: bench-long
emulates: nothing (binding micro-benchmark, zero delays)
behaviour: long
decode_ms: 0
prefill_ms: 0
load_ms: 0
max_context_len: {ctx}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20000, help="tokens per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--lib", default=None, help="library path (default: build the simulator)")
    args = ap.parse_args()

    if args.lib is None:
        from exo_rkllm.sim import build_simulator

        args.lib = str(build_simulator())
    lib = rkllm.load_library(args.lib)
    with tempfile.TemporaryDirectory() as d:
        model = Path(d) / "bench.rkllm-sim"
        model.write_text(MODEL.format(ctx=args.tokens + 64))
        cfg = rkllm.RuntimeConfig(model_path=model, max_context_len=args.tokens + 64,
                                  max_new_tokens=args.tokens)
        with rkllm.RKLLMRuntime(cfg, library=lib, capture_init_log=False) as rt:
            n_chars = 0

            def on_token(token_id: int, text: str) -> None:
                nonlocal n_chars
                n_chars += len(text)

            full, floor = [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                res = rt.run_tokens([104, 105], on_token=on_token)
                dt = time.perf_counter() - t0
                assert res.status == "finished" and res.n_tokens == args.tokens, res
                full.append(dt / res.n_tokens * 1e6)
            streamed = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                n = sum(1 for _ in rt.generate(tokens=[104, 105])) - 1  # minus the FINISH event
                streamed.append((time.perf_counter() - t0) / n * 1e6)
            floor = _raw_floor(lib, rt, args.runs)

    print(f"simulator: {args.lib}")
    print(f"tokens per run: {args.tokens}, runs: {args.runs}")
    print(f"binding (RKLLMRuntime.run_tokens + decode + on_token): "
          f"{statistics.median(full):.2f} µs/token (median; min {min(full):.2f}, max {max(full):.2f})")
    print(f"generate() stream (thread + Event per token, consumed):  "
          f"{statistics.median(streamed):.2f} µs/token")
    print(f"raw ctypes floor (no-op callback, same simulator):      "
          f"{statistics.median(floor):.2f} µs/token")
    print(f"target <= 20 µs/token: {'met' if statistics.median(full) <= 20 else 'NOT met'}")


def _raw_floor(lib: ctypes.CDLL, rt: rkllm.RKLLMRuntime, runs: int) -> list[float]:
    """The same run through a bare no-op callback: the cost ctypes + simulator impose anyway."""
    count = [0]

    def noop(result, userdata, state):  # noqa: ANN001
        count[0] += 1
        return 0

    # Swap the handle's callback target for the no-op for this measurement only.
    slot = rt._slot
    out = []
    for _ in range(runs):
        count[0] = 0
        ids = (ctypes.c_int32 * 2)(104, 105)
        inp = rkllm.RKLLMInput()
        inp.role = b"user"
        inp.input_type = rkllm.RKLLMInputType.RKLLM_INPUT_TOKEN
        inp.token_input.input_ids = ids
        inp.token_input.n_tokens = 2
        infer = rkllm.RKLLMInferParam()
        cb = rkllm.LLMResultCallback(noop)
        handle = ctypes.c_void_p()
        param = lib.rkllm_createDefaultParam()
        param.model_path = rt._model_path_b
        param.max_context_len = rt.param.max_context_len
        param.max_new_tokens = rt.param.max_new_tokens
        assert slot[0] is None
        assert lib.rkllm_init(ctypes.byref(handle), ctypes.byref(param), cb) == 0
        t0 = time.perf_counter()
        lib.rkllm_run(handle, ctypes.byref(inp), ctypes.byref(infer), None)
        dt = time.perf_counter() - t0
        lib.rkllm_destroy(handle)
        out.append(dt / max(1, count[0] - 1) * 1e6)
    return out


if __name__ == "__main__":
    main()

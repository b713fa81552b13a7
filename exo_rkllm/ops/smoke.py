"""A short generation through ``rkllm.RKLLMRuntime``, run in a child process by doctor.

Why a child: a runtime that segfaults (wrong driver, wrong model conversion) must not take the
doctor's report down with it. Prints one JSON object on stdout.
Usage: python -m exo_rkllm.ops.smoke --lib PATH --model PATH [--tokens 20] [--context 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def smoke(lib: str, model: str, tokens: int = 20, context: int = 512) -> dict:
    import rkllm

    t0 = time.perf_counter()
    library = rkllm.load_library(lib)
    cfg = rkllm.RuntimeConfig(model_path=model, max_context_len=context, max_new_tokens=tokens)
    pieces: list[str] = []
    first: list[float] = []

    def on_token(token_id: int, text: str) -> None:
        if not first:
            first.append(time.perf_counter())
        pieces.append(text)

    with rkllm.RKLLMRuntime(cfg, library=library) as rt:
        loaded = time.perf_counter()
        start = time.perf_counter()
        res = rt.run_prompt("Say hello in one short sentence.", on_token=on_token)
        end = time.perf_counter()
    n = res.n_tokens
    if res.perf and res.perf.generate_time_ms > 0 and res.perf.generate_tokens > 0:
        tps = res.perf.generate_tokens / (res.perf.generate_time_ms / 1000.0)
    elif first and n > 1:
        tps = (n - 1) / max(end - first[0], 1e-9)
    else:
        tps = None
    return {"ok": True, "tokens": n, "tokens_per_s": tps, "status": res.status,
            "load_s": loaded - t0, "ttft_s": (first[0] - start) if first else None,
            "text": "".join(pieces)[:200]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--context", type=int, default=512)
    a = ap.parse_args(argv)
    try:
        out = smoke(a.lib, a.model, a.tokens, a.context)
    except Exception as exc:  # reported by doctor as a FAIL line, never a traceback
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

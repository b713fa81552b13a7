#!/usr/bin/env python3
"""What the HTTP API costs on top of the runtime, measured against the simulator in the same run.

(a) per-token overhead of HTTP streaming, zero-delay simulator (target <= 300 us/token): the slope of
    request time over generated tokens through the API minus the same slope through the binding
    directly (per-request costs cancel out); the whole-request amortised figure is printed too.
(b) decode rate through the API with the simulator at Rockchip's Qwen2.5-1.5B figures (16.32 tok/s,
    412 ms for a 128-token prompt), as a fraction of the simulator's own rate measured by the binding
    (target >= 0.99).
(c) time to first token through the API minus the simulator's own (prefill) TTFT (target <= 15 ms).

The node runs as a real `exo-rkllm serve --simulate` subprocess; the client is aiohttp in this process.
Usage: python bench/bench_api.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time

import aiohttp


def start_node() -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "RKLLM_SIM_LOAD_MS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "exo_rkllm.cli", "serve", "--simulate", "--port", "0",
                             "--model", "sim-instant", "--model", "sim-qwen2.5-1.5b", "--queue-depth", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise SystemExit("the node did not start")


async def api_stream(session: aiohttp.ClientSession, url: str, body: dict) -> dict:
    """One streamed request: wall time, time to first content, content-chunk times, usage."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    times: list[float] = []
    usage = None
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        buf = b""
        async for chunk in resp.content.iter_any():
            now = time.perf_counter()
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                data = event[6:]
                if data == b"[DONE]":
                    continue
                obj = json.loads(data)
                if obj.get("usage"):
                    usage = obj["usage"]
                if obj["choices"] and obj["choices"][0]["delta"].get("content"):
                    times.append(now)
    t1 = time.perf_counter()
    return {"wall": t1 - t0, "ttft": times[0] - t0, "times": times, "tokens": usage["completion_tokens"],
            "prompt_tokens": usage["prompt_tokens"]}


def direct_run(rt, ids: list[int], max_new: int) -> dict:
    """The same prompt through the binding: wall time, TTFT, per-token callback times."""
    times: list[float] = []
    texts: list[float] = []

    def on_token(token_id: int, text: str) -> bool:
        now = time.perf_counter()
        times.append(now)
        if text:
            texts.append(now)
        return len(times) >= max_new  # pause at the cap, like the worker does

    t0 = time.perf_counter()
    rt.clear_kv_cache()
    rt.run_tokens(ids, on_token=on_token, keep_history=False)
    t1 = time.perf_counter()
    return {"wall": t1 - t0, "ttft": times[0] - t0, "times": texts, "tokens": len(times)}


def open_runtime(sim_model: str):
    import rkllm
    from exo_rkllm.sim import build_simulator, sim_model_path

    cfg = rkllm.RuntimeConfig(model_path=str(sim_model_path(sim_model)), max_context_len=4096, max_new_tokens=4096,
                              skip_special_token=True)
    return rkllm.RKLLMRuntime(cfg, library=str(build_simulator()))


def prompt_ids(tokenizer, text: str) -> list[int]:
    msgs = [{"role": "user", "content": text}]
    return tokenizer.encode(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                            add_special_tokens=False)


def rate(times: list[float], tokens: int) -> float:
    """Decode tokens/s between the first and the last text-bearing token."""
    return (tokens - 1) / (times[-1] - times[0])


async def main(runs: int) -> None:
    from exo_rkllm.catalog import get_card, load_tokenizer

    os.environ["RKLLM_SIM_LOAD_MS"] = "0"
    tok = load_tokenizer(get_card("sim-instant"))
    proc, url = start_node()
    try:
        async with aiohttp.ClientSession() as session:
            # -- (a) per-token overhead, zero delay ------------------------------------------------------
            rt = open_runtime("chat-instant")
            short, long_ = 20, 180
            api = {short: [], long_: []}
            direct = {short: [], long_: []}
            for i in range(runs * 10):
                for n in (short, long_):
                    text = f"hello {i}"
                    r = await api_stream(session, url, {"model": "sim-instant", "max_tokens": n,
                                                        "messages": [{"role": "user", "content": text}]})
                    assert r["tokens"] == n, r["tokens"]
                    api[n].append(r["wall"])
                    d = direct_run(rt, prompt_ids(tok, text), n)
                    direct[n].append(d["wall"])
            rt.close()
            med = {k: statistics.median(v) for k, v in api.items()}
            dmed = {k: statistics.median(v) for k, v in direct.items()}
            best = {k: min(v) for k, v in api.items()}
            dbest = {k: min(v) for k, v in direct.items()}
            # Headline (conservative): everything the API adds to a whole request -- HTTP, JSON parsing in the
            # client, templating, the worker hop -- divided by its tokens.
            amortised_us = (med[long_] - dmed[long_]) / long_ * 1e6
            # Marginal cost of one more token (per-request costs cancel); best-of runs, as noise only adds.
            slope_us = ((best[long_] - best[short]) - (dbest[long_] - dbest[short])) / (long_ - short) * 1e6
            print(f"(a) per-token overhead of HTTP streaming (zero-delay simulator): {amortised_us:.1f} us/token "
                  f"(target <= 300) = whole-request overhead amortised over {long_} tokens (request "
                  f"{med[long_] * 1e3:.2f} ms via API vs {dmed[long_] * 1e3:.2f} ms direct, medians of {runs * 10}); "
                  f"marginal cost of one more token: {slope_us:.1f} us")

            # -- (b) decode rate and (c) TTFT at Qwen2.5-1.5B pace ---------------------------------------
            rt = open_runtime("chat")
            max_new = 64
            ratios, ttft_over, api_rates, sim_rates, sim_ttfts = [], [], [], [], []
            for i in range(runs):
                # ~128 prompt tokens (Rockchip's benchmark prompt length), new each run: no KV reuse
                text = f"{i} "
                text += "x" * max(0, 128 - len(prompt_ids(tok, text)))
                ids = prompt_ids(tok, text)
                r = await api_stream(session, url, {"model": "sim-qwen2.5-1.5b", "max_tokens": max_new,
                                                    "messages": [{"role": "user", "content": text}]})
                d = direct_run(rt, ids, max_new)
                assert r["prompt_tokens"] == len(ids), (r["prompt_tokens"], len(ids))
                a_rate, s_rate = rate(r["times"], len(r["times"])), rate(d["times"], len(d["times"]))
                api_rates.append(a_rate)
                sim_rates.append(s_rate)
                ratios.append(a_rate / s_rate)
                ttft_over.append((r["ttft"] - d["ttft"]) * 1e3)
                sim_ttfts.append(d["ttft"] * 1e3)
            rt.close()
            print(f"(b) decode rate through the API: {statistics.median(api_rates):.2f} tok/s vs the simulator's "
                  f"{statistics.median(sim_rates):.2f} tok/s direct = {statistics.median(ratios):.4f} "
                  f"(target >= 0.99; {runs} runs of {max_new} tokens, prompt {len(ids)} tokens)")
            print(f"(c) time to first token over the simulator's own: {statistics.median(ttft_over):.1f} ms "
                  f"(target <= 15; simulator TTFT {statistics.median(sim_ttfts):.1f} ms for a {len(ids)}-token "
                  f"prompt; all runs: {', '.join(f'{x:.1f}' for x in ttft_over)})")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="repetitions of (b)/(c); (a) does 10x as many")
    asyncio.run(main(ap.parse_args().runs))

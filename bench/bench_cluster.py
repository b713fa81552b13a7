"""Throughput of a rack behind nginx: 3 simulated nodes vs 1, at Rockchip's Qwen2.5-1.5B decode rate.

Each node runs `exo-rkllm serve --simulate --model sim-qwen2.5-1.5b` (16.32 tok/s, Rockchip's RK3588 figure);
the same real nginx config (`exo-rkllm nginx-config --standalone`) fronts one node, then all three. A board
decodes one request at a time, so the rack should scale close to linearly: target >= 2.8x.

    python bench/bench_cluster.py [--requests 24] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from exo_rkllm.ops.nginx import find_nginx, nginx_command

MODEL = "sim-qwen2.5-1.5b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url} within {timeout:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left (worker processes included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def start_node(port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "exo_rkllm.cli", "serve", "--simulate", "--model", MODEL,
           "--host", "127.0.0.1", "--port", str(port), "--cluster-header", "--queue-depth", "64"]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_balancer(nodes: list[int], prefix: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "exo_rkllm.cli", "nginx-config", "--standalone", str(prefix),
           "--listen", f"127.0.0.1:{port}", "--worker-processes", "1"]
    for node in nodes:
        cmd += ["--node", f"127.0.0.1:{node}"]
    subprocess.run(cmd, check=True, capture_output=True)
    proc = subprocess.Popen(nginx_command(find_nginx(), prefix, prefix / "nginx.conf", "-g", "daemon off;"),
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/balancer/health", proc, "nginx")
    return proc, url


async def run_load(url: str, requests: int, tokens: int, concurrency: int) -> tuple[int, float]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url + "/v1", api_key="not-needed", max_retries=0, timeout=300)
    gate = asyncio.Semaphore(concurrency)
    produced = 0

    async def one(i: int) -> None:
        nonlocal produced
        async with gate:
            reply = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Benchmark request {i}: write a story."}],
                max_tokens=tokens)
            produced += reply.usage.completion_tokens

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(requests)))
    finally:
        await client.close()
    return produced, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=32, help="max_tokens per request")
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    ports = [free_port() for _ in range(args.nodes)]
    nodes = [start_node(port, work / f"node{i}.log") for i, port in enumerate(ports)]
    figures: dict[int, tuple[int, float]] = {}
    try:
        for port, proc in zip(ports, nodes):
            wait_http(f"http://127.0.0.1:{port}/healthcheck", proc, f"node on {port}")
        for count in (1, args.nodes):
            balancer, url = start_balancer(ports[:count], work / f"nginx-{count}")
            try:
                produced, wall = asyncio.run(run_load(url, args.requests, args.tokens, concurrency=count))
            finally:
                stop(balancer)
            figures[count] = (produced, wall)
            print(f"{count} node(s): {args.requests} requests, {produced} tokens in {wall:.2f} s "
                  f"= {produced / wall:.2f} tok/s (concurrency {count})", flush=True)
    finally:
        for proc in nodes:
            stop(proc)
    shutil.rmtree(work, ignore_errors=True)
    one_rate = figures[1][0] / figures[1][1]
    many_rate = figures[args.nodes][0] / figures[args.nodes][1]
    ratio = many_rate / one_rate
    verdict = "meets" if ratio >= 2.8 else "MISSES"
    print(f"throughput ratio {args.nodes} nodes / 1 node: {ratio:.2f}x ({verdict} the 2.8x target); "
          f"model {MODEL} at Rockchip's 16.32 tok/s")
    print(json.dumps({"model": MODEL, "requests": args.requests, "max_tokens": args.tokens,
                      "one_node_tok_s": round(one_rate, 3), "n_nodes": args.nodes,
                      "n_nodes_tok_s": round(many_rate, 3), "ratio": round(ratio, 3)}))
    return 0 if ratio >= 2.8 else 1


if __name__ == "__main__":
    sys.exit(main())

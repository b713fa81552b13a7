"""Runtime worker process: holds one model handle and runs generations for the serving process.

Why a process: a segfault inside librkllmrt.so (or an OOM kill) must take down only this worker,
never the server; and Rockchip supports one model per process. The server talks to it over a
socket (``exo_rkllm.core.wire``); the runtime's own log lines go to stdout/stderr, which the server
reads to diagnose version problems.

Commands (pickled): ("load", config) first, then ("run", run_id, prompt_ids, opts), ("abort", run_id),
("shutdown",). Replies: ("ready", info) | ("init_failed", kind, message), a token frame per generated
token, then ("done", run_id, status, perf, kv_size) or ("run_error", run_id, kind, message).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time

from exo_rkllm.core.wire import message_frame, read_message, token_frame


class Runner:
    """Runs one generation at a time in a thread, so the command loop can still take an abort."""

    def __init__(self, runtime, sock: socket.socket) -> None:
        self.rt = runtime
        self.sock = sock
        self.send_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.current: int | None = None
        self.aborted = False

    def send(self, frame: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(frame)

    def start(self, run_id: int, prompt_ids: list[int], opts: dict) -> None:
        if self.thread is not None:
            self.thread.join()
        self.current = run_id
        self.aborted = False
        self.thread = threading.Thread(target=self._run, args=(run_id, prompt_ids, opts), daemon=True,
                                       name=f"rkllm-run-{run_id}")
        self.thread.start()

    def abort(self, run_id: int) -> None:
        if self.current == run_id and not self.aborted:
            self.aborted = True
            try:
                self.rt.abort()
            except Exception as exc:  # the run thread reports the outcome; abort failure is only logged
                print(f"exo-rkllm worker: rkllm_abort failed: {exc}", file=sys.stderr, flush=True)

    def _run(self, run_id: int, prompt_ids: list[int], opts: dict) -> None:
        import rkllm

        cap: int | None = opts.get("max_new_tokens")
        budget: int | None = opts.get("reasoning_budget")
        think_start = opts.get("think_start_id")
        think_end = opts.get("think_end_id")
        state = {"count": 0, "thought": 0, "in_think": bool(opts.get("in_think")), "budget_hit": False,
                 "capped": False}
        sock_send = self.sock.sendall
        lock = self.send_lock

        def on_token(token_id: int, text: str) -> int:
            state["count"] += 1
            with lock:
                sock_send(token_frame(run_id, token_id, text))
            if state["in_think"]:
                if token_id == think_end:
                    state["in_think"] = False
                else:
                    state["thought"] += 1
                    if budget is not None and state["thought"] >= budget:
                        state["budget_hit"] = True
                        return 1
            elif token_id == think_start:
                state["in_think"] = True
            if cap is not None and state["count"] >= cap:
                state["capped"] = True
                return 1
            return 0

        perf = {"prefill_ms": 0.0, "prefill_tokens": 0, "generate_ms": 0.0, "generate_tokens": 0, "memory_mb": 0.0}

        def add_perf(res) -> None:
            p = res.perf
            if p is not None:
                perf["prefill_ms"] += p.prefill_time_ms
                perf["prefill_tokens"] += p.prefill_tokens
                perf["generate_ms"] += p.generate_time_ms
                perf["generate_tokens"] += p.generate_tokens
                perf["memory_mb"] = p.memory_usage_mb

        try:
            if opts.get("clear"):
                self.rt.clear_kv_cache()
            res = self.rt.run_tokens(prompt_ids, on_token=on_token, keep_history=True)
            add_perf(res)
            # Reasoning budget: the thought ran too long. The run is paused (KV kept); feed the closing
            # tag ourselves so the model moves on to its answer instead of timing out.
            close = opts.get("close_think") or []
            while state["budget_hit"] and close and not self.aborted and not state["capped"]:
                state["budget_hit"] = False
                state["in_think"] = False
                for token_id, text in close:
                    state["count"] += 1
                    self.send(token_frame(run_id, token_id, text))
                res = self.rt.run_tokens([t for t, _ in close], on_token=on_token, keep_history=True)
                add_perf(res)
            if self.aborted or res.status == "aborted":
                status = "abort"
            elif state["capped"]:
                status = "length"
            else:
                status = "stop"
            try:
                kv_size = int(self.rt.kv_cache_size()[0])
            except Exception:
                kv_size = -1
            self.send(message_frame(("done", run_id, status, perf, kv_size)))
        except rkllm.RKLLMError as exc:
            self.send(message_frame(("run_error", run_id, type(exc).__name__, str(exc))))
        except Exception as exc:  # a bug here must still end the request, never hang it
            self.send(message_frame(("run_error", run_id, type(exc).__name__, f"{exc!r}")))
        finally:
            self.current = None


def _load(config: dict):
    import rkllm

    lib = rkllm.load_library(config["library"])
    return rkllm.RKLLMRuntime(rkllm.RuntimeConfig(**config["runtime"]), library=lib)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="exo-rkllm runtime worker (started by the server)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--model", default="?")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    hello = read_message(sock)
    if hello is None or hello[0] != "load":
        return 2
    config = hello[1]
    started = time.monotonic()
    try:
        runtime = _load(config)
    except Exception as exc:
        sys.stdout.flush()
        sys.stderr.flush()
        sock.sendall(message_frame(("init_failed", type(exc).__name__, str(exc))))
        return 3
    sys.stdout.flush()
    sock.sendall(message_frame(("ready", {"load_s": time.monotonic() - started, "pid": os.getpid()})))
    runner = Runner(runtime, sock)
    while True:
        msg = read_message(sock)
        if msg is None or msg[0] == "shutdown":
            break
        if msg[0] == "run":
            runner.start(msg[1], msg[2], msg[3])
        elif msg[0] == "abort":
            runner.abort(msg[1])
    if runner.current is not None:
        runner.abort(runner.current)
    if runner.thread is not None:
        runner.thread.join(timeout=10)
    runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

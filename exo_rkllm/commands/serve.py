"""`exo-rkllm serve`: an OpenAI-compatible node on port 52415 over the serving core.

Without --simulate it needs Rockchip's librkllmrt.so and exits non-zero, saying where it looked and
how to try the simulator, when there is none: the simulator is never chosen silently.
"""

from __future__ import annotations

import argparse
import sys

SIM_DEFAULT_MODELS = ("sim-qwen2.5-1.5b", "sim-deepseek-r1-1.5b")
SIM_BANNER = "SIMULATED RUNTIME — no NPU: replies come from exo-rkllm's C simulator, not a model"


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by `serve` and `run`: which runtime, which sampling profile."""
    p.add_argument("--simulate", action="store_true",
                   help="use the C simulator instead of librkllmrt.so (no NPU; for trying and testing)")
    p.add_argument("--lib", metavar="PATH", default=None,
                   help="path of librkllmrt.so (default: $RKLLM_LIB_PATH, then the usual install locations)")
    p.add_argument("--models-dir", default=None,
                   help="models directory (default: $EXO_RKLLM_MODELS_DIR or ~/.local/share/exo-rkllm/models)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature the models are loaded with (default: the model card's)")
    p.add_argument("--top-p", type=float, default=None, help="top_p the models are loaded with")
    p.add_argument("--top-k", type=int, default=None, help="top_k the models are loaded with")


def register(sub) -> None:
    from exo_rkllm.server.config import DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT

    p = sub.add_parser(
        "serve", help="serve models over an OpenAI-compatible HTTP API (default port 52415)",
        description="Serve models over an OpenAI-compatible HTTP API: /v1/chat/completions, /v1/completions, "
                    "/v1/models, /healthcheck, /metrics.")
    p.add_argument("--model", "-m", action="append", dest="models", metavar="ID", default=None,
                   help="model id to load (repeatable; `exo-rkllm models list`); with --simulate the default is "
                        + " and ".join(SIM_DEFAULT_MODELS))
    add_runtime_args(p)
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"bind address (default {DEFAULT_HOST}: this machine only; use 0.0.0.0 for a node in a "
                        "rack, together with --api-key)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--api-key", default=None,
                   help="require `Authorization: Bearer KEY` on every route but /healthcheck "
                        "(default: $EXO_RKLLM_API_KEY, else no key)")
    p.add_argument("--queue-depth", type=int, default=8,
                   help="requests that may wait per model; past it the node answers 503 + Retry-After (default 8)")
    p.add_argument("--sampling-policy", choices=("strict", "reload"), default="strict",
                   help="a request whose temperature/top_p differ from the loaded profile: strict = 400 naming "
                        "the loaded values (default), reload = reload the model with them (costs a model load)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY,
                   help=f"largest request body accepted, else 413 (default {DEFAULT_MAX_BODY})")
    p.add_argument("--reasoning-format", choices=("separate", "tags"), default="separate",
                   help="reasoning models: thinking in reasoning_content (separate, default) or kept as "
                        "<think>...</think> inside content (tags); a request's reasoning_format overrides")
    p.add_argument("--reasoning-budget", type=int, default=None, metavar="TOKENS",
                   help="default thought budget: past it the run is paused, </think> fed in and the answer follows")
    p.add_argument("--auto-model", default="auto", metavar="NAME",
                   help="model name that picks the quick model, or the reasoning model when the request asks "
                        "for reasoning (default: auto)")
    p.add_argument("--auto-reasoning-keyword", action="append", default=None, metavar="WORD",
                   help="the auto model also picks the reasoning model when the last user message contains WORD "
                        "(repeatable)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                   help="log verbosity on stderr (info: one line per request; warning: problems only)")
    p.add_argument("--cluster-header", action="store_true",
                   help="honour X-RKLLM-Cluster: host:port,... on /v1/models (the union over those peers; set by "
                        "the nginx config)")
    p.set_defaults(func=cmd_serve)


class LoadProgress:
    """Model loads take up to a minute on a board: say what loads, with a running clock on a terminal."""

    def __init__(self, stream=None) -> None:
        self.out = stream or sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self._stop = None
        self._thread = None

    def __call__(self, model_id: str, what: str) -> None:
        self.close()
        if self.tty and what == "loading":
            import threading
            import time

            self._stop = threading.Event()
            started = time.monotonic()

            def tick(stop=self._stop) -> None:
                while not stop.wait(0.5):
                    self.out.write(f"\r[exo-rkllm] {model_id}: loading ... {time.monotonic() - started:.0f} s")
                    self.out.flush()
                self.out.write("\r\033[K")

            self._thread = threading.Thread(target=tick, name="load-progress", daemon=True)
            self._thread.start()
        print(f"[exo-rkllm] {model_id}: {what}", file=self.out, flush=True)

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            self._stop = self._thread = None


def load_progress_printer(stream=None) -> LoadProgress:
    return LoadProgress(stream)


def resolve_cards(model_ids: list[str] | None, simulate: bool, models_dir: str | None) -> list:
    """Cards for the requested ids (UnknownModelError lists the known ones)."""
    import os

    from exo_rkllm.catalog import get_card

    if models_dir:  # the core's model store reads the same setting
        os.environ["EXO_RKLLM_MODELS_DIR"] = str(models_dir)

    ids = model_ids or (list(SIM_DEFAULT_MODELS) if simulate else [])
    if not ids:
        raise ValueError("no model given: name one with --model ID (`exo-rkllm models list` shows the installed "
                         "ones), or add --simulate to serve the simulated models")
    seen: list[str] = []
    for i in ids:
        if i not in seen:
            seen.append(i)
    return [get_card(i, models_dir) for i in seen]


def runtime_spec(simulate: bool, lib: str | None):
    """The runtime the workers load; raises RuntimeUnavailableError (where it looked, --simulate hint)."""
    from exo_rkllm.core import RuntimeSpec

    return RuntimeSpec.simulated() if simulate else RuntimeSpec.board(lib_path=lib)


def error(message: str) -> int:
    print(f"exo-rkllm: error: {message}", file=sys.stderr, flush=True)
    return 2


def sampling_overrides(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p), ("top_k", args.top_k))
            if v is not None}


def _check_args(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return f"--port must be 0-65535, not {args.port}"
    if args.queue_depth < 1:
        return f"--queue-depth must be at least 1, not {args.queue_depth}"
    if args.max_body_bytes < 1024:
        return f"--max-body-bytes must be at least 1024, not {args.max_body_bytes}"
    if args.temperature is not None and not 0 <= args.temperature <= 2:
        return f"--temperature must be between 0 and 2, not {args.temperature}"
    if args.top_p is not None and not 0 < args.top_p <= 1:
        return f"--top-p must be in (0, 1], not {args.top_p}"
    if args.top_k is not None and args.top_k < 1:
        return f"--top-k must be at least 1, not {args.top_k}"
    if args.reasoning_budget is not None and args.reasoning_budget < 0:
        return f"--reasoning-budget must be >= 0, not {args.reasoning_budget}"
    return None


def quiet_transformers() -> None:
    """transformers warns that PyTorch is absent: by design here (tokenizers only), so not news."""
    import os

    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _port_problem(host: str, port: int) -> str | None:
    """Can we listen there? Checked before loading models; the real bind happens after them."""
    import socket

    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve --host {host}: {exc.strerror}"
    for family, kind, proto, _, addr in infos[:1]:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(addr)
            except OSError as exc:
                return (f"cannot listen on {host}:{port}: {exc.strerror or exc}. Pick another --port or stop "
                        "whatever holds it")
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    quiet_transformers()

    from exo_rkllm.catalog import UnknownModelError
    from exo_rkllm.core.errors import CoreError
    from exo_rkllm.server.config import ServerConfig

    problem = _check_args(args)
    if problem:
        return error(problem)
    import logging

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # the runtime first: on a machine without one, that is the news (not a missing --model)
        spec = runtime_spec(args.simulate, args.lib)
    except CoreError as exc:
        return error(f"{exc.message}\n  fix: {exc.fix}")
    try:
        cards = resolve_cards(args.models, args.simulate, args.models_dir)
    except (UnknownModelError, ValueError) as exc:
        return error(str(exc))
    if spec.is_simulated:
        bar = "=" * len(SIM_BANNER)
        print(f"{bar}\n{SIM_BANNER}\n{bar}", file=sys.stderr, flush=True)
    config = ServerConfig(host=args.host, port=args.port,
                          api_key=args.api_key or ServerConfig.api_key_from_env(),
                          max_body_bytes=args.max_body_bytes, reasoning_format=args.reasoning_format,
                          reasoning_budget=args.reasoning_budget, auto_model=args.auto_model,
                          auto_keywords=tuple(args.auto_reasoning_keyword or ()),
                          cluster_header=args.cluster_header, simulated=spec.is_simulated)
    problem = _port_problem(config.host, config.port)
    if problem:  # before a model load that can take a minute on a board
        return error(problem)
    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        print(f"[exo-rkllm] warning: listening on {config.host} without --api-key: anyone who can reach this "
              "port can use the models", file=sys.stderr, flush=True)
    return asyncio.run(_serve(spec, cards, config, args))


async def _serve(spec, cards, config, args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from exo_rkllm.core import ServingCore
    from exo_rkllm.core.errors import CoreError
    from exo_rkllm.server import NodeServer
    from exo_rkllm.server import sdnotify

    progress = load_progress_printer()
    core = ServingCore(spec, cards, queue_depth=args.queue_depth, sampling_policy=args.sampling_policy,
                       sampling_overrides=sampling_overrides(args), on_load_progress=progress)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = NodeServer(core, config)
    watchdog: asyncio.Task | None = None
    try:
        sdnotify.notify("STATUS=loading models")
        start = asyncio.ensure_future(core.start())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({start, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            start.cancel()
            print("[exo-rkllm] interrupted while loading models", file=sys.stderr, flush=True)
            return 130
        stopper.cancel()
        progress.close()
        try:
            start.result()
        except CoreError as exc:
            return error(f"{exc.message}\n  fix: {exc.fix}")
        except Exception as exc:  # tokenizer missing, catalog problems: named, never a traceback wall
            return error(f"could not load the models: {exc}")
        try:
            await server.start()
        except OSError as exc:
            return error(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}. Pick another "
                         "--port or stop whatever holds it")
        models = ", ".join(core.services)
        kind = "SIMULATED runtime" if spec.is_simulated else f"runtime {spec.library}"
        print(f"[exo-rkllm] listening on {server.url} — models: {models} ({kind})", file=sys.stderr, flush=True)
        print(f"[exo-rkllm] try: curl {server.url}/v1/chat/completions -H 'Content-Type: application/json' "
              f"-d '{{\"model\": \"{next(iter(core.services))}\", \"messages\": [{{\"role\": \"user\", "
              f"\"content\": \"hello\"}}]}}'", file=sys.stderr, flush=True)
        sdnotify.notify(f"READY=1\nSTATUS=serving {models} on port {server.port}")
        interval = sdnotify.watchdog_interval()
        if interval:
            watchdog = asyncio.create_task(sdnotify.watchdog_loop(interval))
        await stop.wait()
        print("[exo-rkllm] stopping", file=sys.stderr, flush=True)
        sdnotify.notify("STOPPING=1")
        return 0
    finally:
        progress.close()
        if watchdog is not None:
            watchdog.cancel()
        await server.drain()  # first: requests in flight end now (error event / 503), not after minutes
        await core.close()
        await server.close()

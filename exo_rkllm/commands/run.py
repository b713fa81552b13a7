"""`exo-rkllm run MODEL [PROMPT]`: try a model in the terminal, in-process (no HTTP).

With a prompt: one answer, streamed as tokens arrive. Without: an interactive chat on stdin
(/reset clears the conversation, /exit or Ctrl-D leaves; Ctrl-C stops the current answer).
The answer goes to stdout; a reasoning model's thinking goes to stderr (dimmed on a terminal),
so `exo-rkllm run m "q" > answer.txt` keeps only the answer.
"""

from __future__ import annotations

import argparse
import sys

DIM, RESET = "\033[2m", "\033[0m"


def register(sub) -> None:
    from exo_rkllm.commands.serve import add_runtime_args

    p = sub.add_parser("run", help="chat with a model in the terminal (one-shot with PROMPT, else interactive)",
                       description="Load MODEL in-process and stream its answer to PROMPT, or chat interactively "
                                   "when no PROMPT is given.")
    p.add_argument("model", metavar="MODEL", help="model id (`exo-rkllm models list`)")
    p.add_argument("prompt", metavar="PROMPT", nargs="?", default=None, help="one-shot prompt; omit to chat")
    add_runtime_args(p)
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--max-tokens", type=int, default=None, help="cap on generated tokens (default: the card's)")
    p.add_argument("--reasoning-budget", type=int, default=None, metavar="TOKENS",
                   help="reasoning models: close the thought after TOKENS tokens and answer")
    p.add_argument("--reasoning-format", choices=("separate", "tags"), default="separate",
                   help="show thinking apart on stderr (separate, default) or inline with its tags (tags)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from exo_rkllm.catalog import UnknownModelError
    from exo_rkllm.commands.serve import SIM_BANNER, error, quiet_transformers, resolve_cards, runtime_spec

    quiet_transformers()
    from exo_rkllm.core.errors import CoreError

    if args.max_tokens is not None and args.max_tokens < 1:
        return error(f"--max-tokens must be at least 1, not {args.max_tokens}")
    try:
        (card,) = resolve_cards([args.model], args.simulate, args.models_dir)
    except (UnknownModelError, ValueError) as exc:
        return error(str(exc))
    try:
        spec = runtime_spec(args.simulate, args.lib)
    except CoreError as exc:
        return error(f"{exc.message}\n  fix: {exc.fix}")
    if spec.is_simulated:
        print(f"[{SIM_BANNER}]", file=sys.stderr, flush=True)
    try:
        return asyncio.run(_main(spec, card, args))
    except KeyboardInterrupt:
        return 130


async def _main(spec, card, args: argparse.Namespace) -> int:
    from exo_rkllm.commands.serve import error, load_progress_printer, sampling_overrides
    from exo_rkllm.core import ServingCore
    from exo_rkllm.core.errors import CoreError

    progress = load_progress_printer()
    core = ServingCore(spec, [card], queue_depth=1, sampling_overrides=sampling_overrides(args),
                       on_load_progress=progress)
    try:
        try:
            await core.start()
        except CoreError as exc:
            return error(f"{exc.message}\n  fix: {exc.fix}")
        svc = core.service(card.id)
        base = [{"role": "system", "content": args.system}] if args.system else []
        if args.prompt is not None:
            ok = await _answer(svc, base + [{"role": "user", "content": args.prompt}], args) is not None
            return 0 if ok else 1
        return await _chat(svc, base, args)
    finally:
        progress.close()
        await core.close()


async def _answer(svc, messages: list[dict], args: argparse.Namespace) -> str | None:
    """Stream one answer; returns its content, or None when it failed (the error is printed)."""
    from contextlib import aclosing

    from exo_rkllm.core import GenerationRequest
    from exo_rkllm.server.errors import APIError
    from exo_rkllm.server.generation import Generation
    from exo_rkllm.server.prompt import build_chat_prompt, check_context
    from exo_rkllm.server.reasoning import ReasoningSplitter
    from exo_rkllm.server.stops import StopMatcher

    card = svc.card
    tty = sys.stderr.isatty()
    content: list[str] = []
    try:
        prompt = build_chat_prompt(svc.tokenizer, card, messages)
        check_context(prompt, card)
        reasoning = bool(card.reasoning)
        splitter = ReasoningSplitter(card.think_start if reasoning else None, card.think_end if reasoning else None,
                                     opened_by_template=prompt.think_opened, fmt=args.reasoning_format)
        req = GenerationRequest(request_id="run", prompt_ids=prompt.ids, max_new_tokens=args.max_tokens,
                                timeout_s=None, reasoning_budget=args.reasoning_budget if reasoning else None)
        gen = Generation(svc, req, splitter, StopMatcher(None))
        gen.submit()
        try:
            async with aclosing(gen.deltas()) as deltas:
                async for batch in deltas:
                    thought = "".join(d.reasoning for d in batch)
                    answer = "".join(d.content for d in batch)
                    if thought:
                        sys.stderr.write(f"{DIM}{thought}{RESET}" if tty else thought)
                        sys.stderr.flush()
                    if answer:
                        if not content and splitter.reasoning_seen:
                            sys.stderr.write("\n")
                        content.append(answer)
                        sys.stdout.write(answer)
                        sys.stdout.flush()
        finally:
            gen.cancel()
        sys.stdout.write("\n")
        sys.stdout.flush()
        if gen.outcome is not None and gen.outcome.finish_reason == "length":
            print("[exo-rkllm] (stopped at the token limit; raise --max-tokens for longer answers)",
                  file=sys.stderr, flush=True)
        return "".join(content)
    except APIError as exc:
        sys.stdout.write("\n")
        print(f"exo-rkllm: error: {exc.message}", file=sys.stderr, flush=True)
        return None


async def _chat(svc, history: list[dict], args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import threading

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    interactive = sys.stdin.isatty()

    def read_stdin() -> None:  # a daemon thread: a pending readline never blocks the exit
        while True:
            line = sys.stdin.readline()
            loop.call_soon_threadsafe(lines.put_nowait, line if line else None)
            if not line:
                return

    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
    base = list(history)
    current: list[asyncio.Task] = []

    def on_sigint() -> None:
        if current and not current[0].done():
            current[0].cancel()  # stop this answer, keep the chat
        else:
            lines.put_nowait(None)

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    if interactive:
        print(f"[exo-rkllm] chatting with {svc.card.id}: /reset clears, /exit or Ctrl-D leaves, Ctrl-C stops an "
              "answer", file=sys.stderr, flush=True)
    try:
        while True:
            if interactive:
                sys.stderr.write("you> ")
                sys.stderr.flush()
            line = await lines.get()
            if line is None:
                return 0
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return 0
            if text == "/reset":
                history = list(base)
                print("[exo-rkllm] conversation cleared", file=sys.stderr, flush=True)
                continue
            history.append({"role": "user", "content": text})
            task = asyncio.ensure_future(_answer(svc, history, args))
            current[:] = [task]
            try:
                answer = await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
                answer = None
                sys.stdout.write("\n")
                sys.stdout.flush()
                print("[exo-rkllm] stopped", file=sys.stderr, flush=True)
            if answer is None:
                history.pop()
            else:
                history.append({"role": "assistant", "content": answer})
    finally:
        loop.remove_signal_handler(signal.SIGINT)

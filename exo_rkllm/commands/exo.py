"""`exo-rkllm exo [--simulate] [--api-host HOST] [--lib PATH] [exo options]`: run legacy exo with the RKLLM engine registered."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

EXO_INSTALL_HINT = ("exo is not installed. It is not on PyPI; install the legacy Python exo this engine targets:\n"
                    "  pip install -e '.[exo]'   (exo @ git+https://github.com/exo-explore/exo@v0.0.15-alpha)\n"
                    "Without exo, `exo-rkllm serve` runs the same node with an OpenAI-compatible API.")


def register(sub) -> None:
    p = sub.add_parser("exo", help="run exo (legacy v0.0.15-alpha) with the RKLLM engine registered",
                       description="Everything after `exo` goes to exo itself, except --simulate, which serves the "
                                   "simulated models on the simulated runtime (no board, no download), and "
                                   "--api-host, the address exo's ChatGPT API binds (exo itself always binds 0.0.0.0), "
                                   "and --lib, the librkllmrt.so to use.")
    p.add_argument("--simulate", action="store_true", help="use the simulated runtime (no NPU)")
    p.add_argument("--api-host", metavar="HOST", help="bind exo's ChatGPT API here, e.g. 127.0.0.1 (default 0.0.0.0)")
    p.add_argument("--lib", metavar="PATH", help="librkllmrt.so to use (else $RKLLM_LIB_PATH, then the usual places)")
    p.set_defaults(func=lambda args: run_exo(sys.argv[2:]))


def _take_option(argv: list[str], name: str, example: str) -> tuple[str | None, list[str]] | str:
    """Remove `name VALUE` / `name=VALUE` from exo's arguments; an error message if VALUE is missing."""
    value, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == name:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return f"{name} needs a value, e.g. {name} {example}"
            value, i = argv[i + 1], i + 2
            continue
        if arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
            if not value:
                return f"{name} needs a value, e.g. {name}={example}"
        else:
            rest.append(arg)
        i += 1
    return value, rest


def run_exo(argv: list[str]) -> int:
    simulated = "--simulate" in argv
    argv = [a for a in argv if a != "--simulate"]
    options = {}
    for name, example in (("--api-host", "127.0.0.1"), ("--lib", "/usr/lib/librkllmrt.so")):
        taken = _take_option(argv, name, example)
        if isinstance(taken, str):
            print(f"exo-rkllm: {taken}", file=sys.stderr)
            return 2
        options[name], argv = taken
    api_host, lib = options["--api-host"], options["--lib"]
    if lib:
        if simulated:
            print("exo-rkllm: --lib names the real runtime; it cannot be combined with --simulate", file=sys.stderr)
            return 2
        os.environ["RKLLM_LIB_PATH"] = lib  # the engine's runtime workers find it there
    if importlib.util.find_spec("exo") is None or importlib.util.find_spec("exo.main") is None:
        print(f"exo-rkllm: {EXO_INSTALL_HINT}", file=sys.stderr)
        return 2
    from exo_rkllm.core import RuntimeSpec, RuntimeUnavailableError

    try:
        spec = RuntimeSpec.simulated() if simulated else RuntimeSpec.board(lib)
    except RuntimeUnavailableError as exc:
        print(f"exo-rkllm: {exc.message}\n  fix: {exc.fix}", file=sys.stderr)
        return 2
    if simulated:
        print("exo-rkllm: SIMULATED RUNTIME — no NPU; serving the simulated models "
              f"({spec.library})", file=sys.stderr)
    from exo_rkllm.exo_adapter.launcher import run

    return run(argv, simulated, api_host=api_host)

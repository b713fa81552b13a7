"""Shared helpers for the ops tests: run one exo-rkllm subcommand in-process or as a real subprocess."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys


def run_cmd(module_name: str, argv: list[str]) -> tuple[int, str, str]:
    """Parse ``argv`` with only ``exo_rkllm.commands.<module_name>`` registered and run it."""
    import importlib

    module = importlib.import_module(f"exo_rkllm.commands.{module_name}")
    parser = argparse.ArgumentParser(prog="exo-rkllm")
    sub = parser.add_subparsers(dest="command")
    module.register(sub)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = int(args.func(args) or 0)
    return code, out.getvalue(), err.getvalue()


def run_cmd_subprocess(module_name: str, argv: list[str], env: dict[str, str] | None = None,
                       timeout: float = 60) -> subprocess.CompletedProcess:
    """The same, in a fresh interpreter (for environment read at import time, e.g. HF_HUB_CACHE)."""
    code = ("import sys; sys.path.insert(0, %r); from helpers import run_cmd; "
            "c, o, e = run_cmd(%r, sys.argv[1:]); sys.stdout.write(o); sys.stderr.write(e); sys.exit(c)"
            % (os.path.dirname(__file__), module_name))
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=full_env, timeout=timeout)

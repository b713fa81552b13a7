"""The `exo-rkllm` command line: a thin dispatcher over ``exo_rkllm.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them. Each has register(subparsers),
# which adds its parser and sets ``func`` (args -> exit code).
COMMAND_MODULES = [
    "sim",
    "nginx_config",
    "models",
    "exo",
    "serve",
    "run",
    "doctor",
    "tune",
    "systemd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exo-rkllm",
        description="Serve LLMs on RK3588 NPUs through Rockchip's RKLLM runtime 1.2.3.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"exo_rkllm.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `exo-rkllm exo ...` hands everything after `exo` to exo's own parser untouched.
    if argv[:1] == ["exo"] and "exo" in COMMAND_MODULES:
        from exo_rkllm.commands import exo as exo_command

        return exo_command.run_exo(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

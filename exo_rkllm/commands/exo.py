"""`exo-rkllm exo [--simulate] [exo options]`: run legacy exo with the RKLLM engine registered."""

from __future__ import annotations

import argparse
import importlib.util
import sys

EXO_INSTALL_HINT = ("exo is not installed. It is not on PyPI; install the legacy Python exo this engine targets:\n"
                    "  pip install -e '.[exo]'   (exo @ git+https://github.com/exo-explore/exo@v0.0.15-alpha)\n"
                    "Without exo, `exo-rkllm serve` runs the same node with an OpenAI-compatible API.")


def register(sub) -> None:
    p = sub.add_parser("exo", help="run exo (legacy v0.0.15-alpha) with the RKLLM engine registered",
                       description="Everything after `exo` goes to exo itself, except --simulate, which serves the "
                                   "simulated models on the simulated runtime (no board, no download).")
    p.add_argument("--simulate", action="store_true", help="use the simulated runtime (no NPU)")
    p.set_defaults(func=lambda args: run_exo(sys.argv[2:]))


def run_exo(argv: list[str]) -> int:
    simulated = "--simulate" in argv
    argv = [a for a in argv if a != "--simulate"]
    if importlib.util.find_spec("exo") is None or importlib.util.find_spec("exo.main") is None:
        print(f"exo-rkllm: {EXO_INSTALL_HINT}", file=sys.stderr)
        return 2
    from exo_rkllm.core import RuntimeSpec, RuntimeUnavailableError

    try:
        spec = RuntimeSpec.simulated() if simulated else RuntimeSpec.board()
    except RuntimeUnavailableError as exc:
        print(f"exo-rkllm: {exc.message}\n  fix: {exc.fix}", file=sys.stderr)
        return 2
    if simulated:
        print("exo-rkllm: SIMULATED RUNTIME — no NPU; serving the simulated models "
              f"({spec.library})", file=sys.stderr)
    from exo_rkllm.exo_adapter.launcher import run

    return run(argv, simulated)

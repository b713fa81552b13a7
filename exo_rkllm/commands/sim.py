"""`exo-rkllm sim build|model`: build the simulated RKLLM runtime and locate its simulated models."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("sim", help="the simulated RKLLM runtime (no NPU): build it, locate its models",
                       description="The simulator stands in for librkllmrt.so when no RK3588 board is present. "
                                   "It never produces NPU results.")
    ssub = p.add_subparsers(dest="sim_command", metavar="ACTION")
    ssub.required = True
    q = ssub.add_parser("build", help="compile librkllmrt-sim.so (cached); prints its absolute path last")
    q.add_argument("--force", action="store_true", help="rebuild even when a cached build exists")
    q.set_defaults(func=cmd_build)
    q = ssub.add_parser("model", help="print the path of a shipped simulated model")
    q.add_argument("name", help="chat, reasoning, chat-instant or reasoning-instant")
    q.set_defaults(func=cmd_model)


def cmd_build(args) -> int:
    from exo_rkllm.sim import SimulatorError, build_simulator

    try:
        path = build_simulator(force=args.force)
    except SimulatorError as exc:
        print(f"exo-rkllm sim build: {exc}", file=sys.stderr)
        return 1
    print("simulated RKLLM runtime (not an NPU) built:", file=sys.stderr)
    print(path)
    return 0


def cmd_model(args) -> int:
    from exo_rkllm.sim import SIM_MODELS, SimulatorError, UnknownSimModelError, sim_model_path

    try:
        print(sim_model_path(args.name))
    except UnknownSimModelError:
        print(f"exo-rkllm sim model: unknown simulated model {args.name!r}; choose one of: {', '.join(SIM_MODELS)}",
              file=sys.stderr)
        return 2
    except SimulatorError as exc:
        print(f"exo-rkllm sim model: {exc}", file=sys.stderr)
        return 1
    return 0

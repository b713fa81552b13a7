"""`exo-rkllm tune [--undo]`: pin NPU/CPU/DDR frequencies like Rockchip's benchmark (root)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("tune", help="pin NPU 1 GHz, big cores 2.352 GHz, DDR 2112 MHz (root); --undo restores",
                       description="Pin frequencies the way Rockchip's RKLLM benchmark assumes "
                                   "(rknn-llm scripts/fix_freq_rk3588.sh). Untuned boards decode at about half speed.")
    p.add_argument("--undo", action="store_true", help="restore the governors saved by the last tune")
    p.add_argument("--state-file", default=None, help="where previous settings are kept "
                                                      "(default /var/lib/exo-rkllm/tune-state.json)")
    p.add_argument("--sysfs-root", default="/", help="filesystem root holding sys/ (for testing)")
    p.set_defaults(func=cmd_tune)


def cmd_tune(args) -> int:
    from exo_rkllm.ops.tune import DEFAULT_STATE, TuneError, print_steps, tune, undo

    state = args.state_file or DEFAULT_STATE
    try:
        steps = (undo if args.undo else tune)(args.sysfs_root, state_file=state)
    except TuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_steps(steps)
    return 1 if any(s.status == "FAIL" for s in steps) else 0

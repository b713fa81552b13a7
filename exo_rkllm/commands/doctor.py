"""`exo-rkllm doctor`: check driver, runtime, frequencies, memory and models; run a 20-token smoke test."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check this board: NPU driver, runtime, frequencies, memory, models, smoke test",
                       description="One PASS/WARN/FAIL/SKIP line per check, with the fix. Exit code 1 only on FAIL.")
    p.add_argument("--simulate", action="store_true",
                   help="check the simulated runtime instead of the NPU (no board needed); labelled SIMULATED")
    p.add_argument("--models-dir", default=None, help="models directory (default: $EXO_RKLLM_MODELS_DIR or "
                                                      "~/.local/share/exo-rkllm/models)")
    p.add_argument("--lib", default=None, help="path to librkllmrt.so (default: $RKLLM_LIB_PATH, usual locations)")
    p.add_argument("--model", default=None, help="model id for the smoke test (default: smallest installed)")
    p.add_argument("--tokens", type=int, default=20, help="tokens the smoke test generates (default 20)")
    p.add_argument("--no-smoke", action="store_true", help="skip the smoke generation")
    p.add_argument("--sysfs-root", default="/", help="filesystem root holding proc/ sys/ dev/ (for testing)")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    from exo_rkllm.ops.doctor import Doctor, exit_code, render

    doc = Doctor(root=args.sysfs_root, models_dir=args.models_dir, lib_path=args.lib, simulate=args.simulate,
                 smoke=not args.no_smoke, smoke_model=args.model, smoke_tokens=args.tokens)
    lines = doc.run()
    if args.simulate:
        print("exo-rkllm doctor (SIMULATED runtime: figures are the simulator's, not an NPU's)")
    for line in lines:
        print(render(line), flush=True)
    fails = sum(line.status == "FAIL" for line in lines)
    warns = sum(line.status == "WARN" for line in lines)
    print(f"{fails} failed, {warns} warnings")
    return exit_code(lines)

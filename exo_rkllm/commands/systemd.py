"""`exo-rkllm systemd install [--dry-run]`: install and enable the node (or exo-mode) unit."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("systemd", help="install the systemd units (node, exo mode) and enable one",
                       description="Write exo-rkllm.service and exo-rkllm-exo.service, /etc/default/exo-rkllm "
                                   "(if absent), run daemon-reload and enable the node unit (or --exo).")
    ssub = p.add_subparsers(dest="systemd_command", metavar="ACTION")
    ssub.required = True
    q = ssub.add_parser("install", help="write the units and enable one")
    q.add_argument("--dry-run", action="store_true", help="print what would be written and run; change nothing")
    q.add_argument("--exo", action="store_true", help="enable exo mode (exo-rkllm-exo.service) instead of the node")
    q.add_argument("--no-enable", action="store_true", help="write the units but enable nothing")
    q.add_argument("--exe", default=None, help="exo-rkllm executable for ExecStart (default: the installed script)")
    q.add_argument("--unit-dir", default="/etc/systemd/system", help="where units go (default /etc/systemd/system)")
    q.add_argument("--env-file", default="/etc/default/exo-rkllm", help="environment file (default /etc/default/exo-rkllm)")
    q.add_argument("--print", dest="print_units", action="store_true", help="also print the unit text")
    q.set_defaults(func=cmd_install)


def cmd_install(args) -> int:
    from exo_rkllm.ops.systemd import InstallError, find_executable, install, render

    try:
        exe = args.exe or find_executable()
        actions = install(exe=exe, unit_dir=Path(args.unit_dir), env_file=Path(args.env_file), exo_mode=args.exo,
                          enable=not args.no_enable, dry_run=args.dry_run)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    prefix = "would " if args.dry_run else ""
    for a in actions:
        print(f"{prefix}{a.what}: {a.detail}" if a.what != "next" else f"next: {a.detail}")
    if args.print_units or args.dry_run:
        for name, text in render(exe, Path(args.env_file)).items():
            print(f"\n# ----- {name}\n{text}")
    return 0

"""`exo-rkllm tune`: pin NPU/CPU/DDR frequencies the way Rockchip's benchmark assumes; `--undo` restores.

Untuned boards reach about half the published decode rate. Previous governors (and cpuidle
settings) are saved once to a state file, so tuning twice and undoing still returns to the
board's own settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from exo_rkllm.ops.board import CPUIDLE_DISABLE_GLOB, FreqUnit, freq_units, read_int, read_text

DEFAULT_STATE = Path("/var/lib/exo-rkllm/tune-state.json")


class TuneError(RuntimeError):
    pass


@dataclass
class Step:
    status: str   # PASS, WARN, FAIL, SKIP
    what: str
    detail: str


def _write(path: Path, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(f"{value}\n")


def _choose(unit: FreqUnit) -> tuple[int, str]:
    """The pinned value if the board offers it, else the highest offered value below it."""
    offered_text = read_text(unit.path / unit.available_file)
    if not offered_text:
        return unit.pinned, ""
    try:
        offered = sorted(int(x) for x in offered_text.split())
    except ValueError:
        return unit.pinned, ""
    if unit.pinned in offered or not offered:
        return unit.pinned, ""
    below = [x for x in offered if x <= unit.pinned]
    pick = below[-1] if below else offered[0]
    return pick, f" (board does not offer {unit.pinned}; using {pick})"


def require_root(euid: int | None = None) -> None:
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise TuneError("exo-rkllm tune writes frequency governors under /sys and must run as root: "
                        "run `sudo exo-rkllm tune` (the systemd unit does this via ExecStartPre=+)")


def snapshot(root: Path) -> dict:
    """The current governors/frequencies and cpuidle settings, for --undo."""
    state: dict = {"units": {}, "cpuidle": {}}
    for u in freq_units(root):
        state["units"][u.unit] = {"path": str(u.path), "governor": read_text(u.path / u.governor_file),
                                  "cur": read_int(u.path / u.cur_file)}
    for p in sorted(root.glob(CPUIDLE_DISABLE_GLOB)):
        state["cpuidle"][str(p)] = read_text(p)
    return state


def tune(root: str | os.PathLike[str] = "/", *, state_file: str | os.PathLike[str] = DEFAULT_STATE,
         euid: int | None = None) -> list[Step]:
    """Pin every unit found under ``root``; save the previous settings first (only if not saved yet)."""
    require_root(euid)
    root, state_file = Path(root), Path(state_file)
    units = freq_units(root)
    if not units:
        raise TuneError(f"no NPU/CPU/DDR frequency controls under {root / 'sys'} (not an RK3588 board, or /sys is "
                        f"read-only in this container); nothing to tune")
    steps: list[Step] = []
    if state_file.exists():
        steps.append(Step("PASS", "state", f"previous settings already saved in {state_file} (kept)"))
    else:
        try:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = state_file.with_name(state_file.name + ".tmp")
            tmp.write_text(json.dumps(snapshot(root), indent=1))
            os.replace(tmp, state_file)
        except OSError as exc:
            raise TuneError(f"cannot save the current settings to {state_file} ({exc.strerror or exc}); "
                            f"nothing was changed") from None
        steps.append(Step("PASS", "state", f"previous settings saved to {state_file}"))
    for p in sorted(root.glob(CPUIDLE_DISABLE_GLOB)):
        try:
            _write(p, 1)
        except OSError as exc:
            steps.append(Step("WARN", "cpuidle", f"{p}: {exc.strerror or exc}"))
    for u in units:
        steps.append(_pin(u))
    return steps


def _pin(u: FreqUnit) -> Step:
    governors = read_text(u.path / ("scaling_available_governors" if u.hz_per_unit == 1000
                                    else "available_governors")) or "userspace"
    value, note = _choose(u)
    try:
        if "userspace" in governors.split():
            _write(u.path / u.governor_file, "userspace")
            _write(u.path / u.set_file, value)
            how = f"userspace governor, {value}"
        else:
            _write(u.path / u.governor_file, "performance")
            how = "performance governor (userspace not offered: runs at the maximum, not pinned)"
    except OSError as exc:
        return Step("FAIL", u.unit, f"{u.path}: {exc.strerror or exc}")
    cur = read_int(u.path / u.cur_file)
    shown = f"; now {cur}" if cur is not None else ""
    return Step("WARN" if note or "performance" in how else "PASS", u.unit, f"{how}{note}{shown}")


def undo(root: str | os.PathLike[str] = "/", *, state_file: str | os.PathLike[str] = DEFAULT_STATE,
         euid: int | None = None) -> list[Step]:
    """Restore what tune saved, then delete the state file."""
    require_root(euid)
    root, state_file = Path(root), Path(state_file)
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise TuneError(f"nothing to undo: {state_file} does not exist (tune was not run, or already undone)") from None
    except (OSError, ValueError) as exc:
        raise TuneError(f"cannot read {state_file}: {exc}; restore governors by hand or reboot") from None
    steps: list[Step] = []
    by_unit = {u.unit: u for u in freq_units(root)}
    for name, saved in state.get("units", {}).items():
        u = by_unit.get(name)
        if u is None or not saved.get("governor"):
            steps.append(Step("SKIP", name, "not present any more"))
            continue
        try:
            if saved["governor"] == "userspace" and saved.get("cur"):
                _write(u.path / u.set_file, saved["cur"])
            _write(u.path / u.governor_file, saved["governor"])
            steps.append(Step("PASS", name, f"governor {saved['governor']} restored"))
        except OSError as exc:
            steps.append(Step("FAIL", name, f"{u.path}: {exc.strerror or exc}"))
    for path, value in state.get("cpuidle", {}).items():
        if value is None:
            continue
        try:
            _write(Path(path), value)
        except OSError as exc:
            steps.append(Step("WARN", "cpuidle", f"{path}: {exc.strerror or exc}"))
    state_file.unlink()
    return steps


def print_steps(steps: list[Step], out: Callable[[str], None] = print) -> None:
    for s in steps:
        out(f"{s.status:4} {s.what:10} {s.detail}")

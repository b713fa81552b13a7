"""NPU load and clock frequencies from sysfs, for /metrics. Missing files (no board) are skipped."""

from __future__ import annotations

import glob
import re
from pathlib import Path

NPU_LOAD_PATH = "/sys/kernel/debug/rknpu/load"
_CORE_RE = re.compile(r"Core(\d+):\s*(\d+)%")
_SINGLE_RE = re.compile(r"NPU load:\s*(\d+)%")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def npu_load(path: str = NPU_LOAD_PATH) -> dict[str, float]:
    """{"0": 37.0, ...} per NPU core; RK3588's rknpu prints ``NPU load:  Core0: 37%, Core1: 0%, ...``."""
    text = _read(path)
    if not text:
        return {}
    cores = {c: float(v) for c, v in _CORE_RE.findall(text)}
    if not cores:
        m = _SINGLE_RE.search(text)
        if m:
            cores = {"0": float(m.group(1))}
    return cores


def frequencies(root: str = "/sys") -> dict[str, float]:
    """Current Hz of the NPU and DDR (devfreq, Hz) and each CPU cluster (cpufreq, kHz)."""
    out: dict[str, float] = {}
    for path in sorted(glob.glob(f"{root}/class/devfreq/*/cur_freq")):
        dev = path.split("/")[-2]
        unit = "npu" if "npu" in dev else "ddr" if "dmc" in dev else None
        text = _read(path)
        if unit and text and text.isdigit():
            out[unit] = float(text)
    for path in sorted(glob.glob(f"{root}/devices/system/cpu/cpufreq/policy*/scaling_cur_freq")):
        text = _read(path)
        if text and text.isdigit():
            out[f"cpu_{path.split('/')[-2]}"] = float(text) * 1000.0
    return out

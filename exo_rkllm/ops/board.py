"""Where an RK3588 board exposes what doctor, tune and /metrics read (all under an injectable root).

Paths and pinned values follow Rockchip's rknn-llm ``scripts/fix_freq_rk3588.sh``, the setting its
published benchmark assumes: NPU 1 GHz, big cores (policy4, policy6) 2.352 GHz, little cores
(policy0) 1.8 GHz, DDR 2112 MHz, cpuidle state1 disabled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

NPU_DEVFREQ_GLOB = "sys/class/devfreq/*.npu"      # fdab0000.npu on RK3588
DMC_DEVFREQ = "sys/class/devfreq/dmc"
CPUFREQ = "sys/devices/system/cpu/cpufreq"
CPUIDLE_DISABLE_GLOB = "sys/devices/system/cpu/cpu[0-9]*/cpuidle/state1/disable"
NPU_LOAD = "sys/kernel/debug/rknpu/load"
NPU_VERSION_FILES = ("sys/kernel/debug/rknpu/version", "sys/module/rknpu/version")
DEVICE_TREE_COMPATIBLE = "proc/device-tree/compatible"
NPU_DEVICE_NODES = ("dev/dri/renderD129", "dev/rknpu")
REQUIRED_DRIVER = (0, 9, 8)


@dataclass(frozen=True)
class FreqUnit:
    """One frequency domain: its sysfs dir, file names, and the value Rockchip pins it to."""

    unit: str             # metric label (as /metrics uses it): npu, cpu_policy0, cpu_policy4, cpu_policy6, ddr
    path: Path
    governor_file: str
    cur_file: str
    set_file: str
    available_file: str
    pinned: int           # in the unit the sysfs files use
    hz_per_unit: int      # 1 for devfreq (Hz), 1000 for cpufreq (kHz)

    @property
    def pinned_hz(self) -> int:
        return self.pinned * self.hz_per_unit


def freq_units(root: str | Path = "/") -> list[FreqUnit]:
    """The NPU, CPU clusters and DDR of this board (only those that exist under ``root``)."""
    root = Path(root)
    units: list[FreqUnit] = []
    npus = sorted(root.glob(NPU_DEVFREQ_GLOB))
    if npus:
        units.append(FreqUnit("npu", npus[0], "governor", "cur_freq", "userspace/set_freq",
                              "available_frequencies", 1_000_000_000, 1))
    for policy, pinned in (("policy0", 1_800_000), ("policy4", 2_352_000), ("policy6", 2_352_000)):
        unit = f"cpu_{policy}"
        p = root / CPUFREQ / policy
        if p.is_dir():
            units.append(FreqUnit(unit, p, "scaling_governor", "scaling_cur_freq", "scaling_setspeed",
                                  "scaling_available_frequencies", pinned, 1000))
    dmc = root / DMC_DEVFREQ
    if dmc.is_dir():
        units.append(FreqUnit("ddr", dmc, "governor", "cur_freq", "userspace/set_freq",
                              "available_frequencies", 2_112_000_000, 1))
    return units


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def read_frequencies(root: str | Path = "/") -> dict[str, int]:
    """{unit: current Hz} for every readable unit (for the rkllm_frequency_hz gauge)."""
    out: dict[str, int] = {}
    for u in freq_units(root):
        cur = read_int(u.path / u.cur_file)
        if cur is not None:
            out[u.unit] = cur * u.hz_per_unit
    return out


def read_npu_load(root: str | Path = "/") -> dict[str, int]:
    """{core id: percent} from debugfs ``NPU load:  Core0: 12%, Core1:  0%, Core2:  0%,``; {} if unreadable.

    Older single-core drivers print ``NPU load:  12%``: that is core "0".
    """
    text = read_text(Path(root) / NPU_LOAD)
    if not text:
        return {}
    cores = {m.group(1): int(m.group(2)) for m in re.finditer(r"Core(\d+):\s*(\d+)%", text)}
    if not cores:
        single = re.search(r"NPU load:\s*(\d+)%", text)
        if single:
            cores = {"0": int(single.group(1))}
    return cores


def parse_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(x) for x in m.groups()) if m else None

"""A fake RK3588 /proc, /sys and /dev tree, written by the tests into a temporary directory."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_board(root: Path, *, driver: str | None = "RKNPU driver: v0.9.8", pinned: bool = False,
               userspace: bool = True, mem_available_kb: int = 6_000_000) -> Path:
    write(root / "proc/device-tree/compatible", "radxa,rock-5b\x00rockchip,rk3588\x00")
    write(root / "proc/meminfo", f"MemTotal: 8000000 kB\nMemFree: 100000 kB\nMemAvailable: {mem_available_kb} kB\n")
    if driver is not None:
        write(root / "sys/kernel/debug/rknpu/version", driver + "\n")
    write(root / "sys/kernel/debug/rknpu/load", "NPU load:  Core0: 35%, Core1:  0%, Core2:  7%,\n")
    write(root / "dev/dri/renderD129", "")
    govs = "userspace performance simple_ondemand" if userspace else "performance simple_ondemand"
    npu = root / "sys/class/devfreq/fdab0000.npu"
    write(npu / "governor", ("userspace" if pinned else "rknpu_ondemand") + "\n")
    write(npu / "available_governors", govs + "\n")
    write(npu / "cur_freq", ("1000000000" if pinned else "300000000") + "\n")
    write(npu / "available_frequencies", "300000000 600000000 800000000 1000000000\n")
    write(npu / "userspace/set_freq", "unsupported\n")
    dmc = root / "sys/class/devfreq/dmc"
    write(dmc / "governor", ("userspace" if pinned else "dmc_ondemand") + "\n")
    write(dmc / "available_governors", govs + "\n")
    write(dmc / "cur_freq", ("2112000000" if pinned else "528000000") + "\n")
    write(dmc / "available_frequencies", "528000000 1068000000 1560000000 2112000000\n")
    write(dmc / "userspace/set_freq", "unsupported\n")
    for policy, top in (("policy0", 1800000), ("policy4", 2352000), ("policy6", 2352000)):
        p = root / "sys/devices/system/cpu/cpufreq" / policy
        write(p / "scaling_governor", ("userspace" if pinned else "schedutil") + "\n")
        write(p / "scaling_available_governors", ("userspace " if userspace else "") + "performance schedutil\n")
        write(p / "scaling_cur_freq", (str(top) if pinned else "408000") + "\n")
        write(p / "scaling_available_frequencies", f"408000 1200000 {top}\n")
        write(p / "scaling_setspeed", "<unsupported>\n")
    for cpu in range(8):
        write(root / f"sys/devices/system/cpu/cpu{cpu}/cpuidle/state1/disable", "0\n")
    return root

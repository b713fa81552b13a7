"""What an RKLLM node tells exo about its hardware (exo's DeviceCapabilities fields, as a plain dict).

Why not exo's own probe: on Linux, exo v0.0.15-alpha asks tinygrad for its default device and then
assumes NVIDIA/AMD tooling. On an RK3588 board that either fails ("no usable devices" when tinygrad has
no compiler backend) or picks the Mali GPU through OpenCL and then crashes importing pynvml; either way
the node never starts. The NPU is what serves here, so the node reports the board, the NPU and its RAM.
"""

from __future__ import annotations

import os

RK3588_NPU_INT8_TOPS = 6.0  # Rockchip's published RK3588 NPU figure (int8); no fp16/fp32 figure is published


def _board_model() -> str:
    """The board's name from the device tree ("Radxa ROCK 5B", "Orange Pi 5 Plus"), if there is one."""
    try:
        with open("/proc/device-tree/model", "rb") as f:
            name = f.read().rstrip(b"\x00").decode(errors="replace").strip()
    except OSError:
        return "Linux box"
    return name or "Linux box"


def _memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (OSError, ValueError):
        return 0


def node_capabilities(simulated: bool) -> dict:
    """exo DeviceCapabilities fields for this node: memory drives exo's ring partitioning, the rest is shown."""
    if simulated:
        return {"model": f"{_board_model()} (exo-rkllm simulator)", "chip": "simulated RK3588 NPU (no NPU)",
                "memory": _memory_mb(), "flops": {"fp32": 0.0, "fp16": 0.0, "int8": 0.0}}
    return {"model": _board_model(), "chip": "Rockchip RK3588 NPU (RKLLM 1.2.3)", "memory": _memory_mb(),
            "flops": {"fp32": 0.0, "fp16": 0.0, "int8": RK3588_NPU_INT8_TOPS}}

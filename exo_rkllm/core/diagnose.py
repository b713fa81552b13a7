"""Turn what the RKLLM runtime prints on stderr into plain words with a fix.

Wrong versions (NPU driver, runtime, model toolkit) are the failure users hit most; the runtime
reports them only as log lines, so the worker keeps its child's stderr and this module reads it.
"""

from __future__ import annotations

import re

REQUIRED_RUNTIME = "1.2.3"
COMPATIBLE_RUNTIMES = ("1.2.2", "1.2.3")  # 1.2.2 -> 1.2.3 only renamed a struct; the ABI is the same
REQUIRED_DRIVER = (0, 9, 8)

_VERSION_LINE = re.compile(r"rkllm-runtime version:\s*([0-9]+\.[0-9]+\.[0-9]+)[^,]*,\s*rknpu driver version:\s*([^,\s]+)")


def runtime_and_driver(lines: list[str]) -> tuple[str | None, str | None]:
    """The runtime and driver versions announced in the runtime's init line, if it printed one."""
    for line in lines:
        m = _VERSION_LINE.search(line)
        if m:
            return m.group(1), m.group(2)
    return None, None


def _version_tuple(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return None


def diagnose(lines: list[str]) -> str | None:
    """One sentence naming the most likely cause and its fix, or None when the log says nothing known."""
    text = "\n".join(lines)
    runtime, driver = runtime_and_driver(lines)
    if runtime and runtime not in COMPATIBLE_RUNTIMES:
        return (f"The runtime library is RKLLM {runtime}, but exo-rkllm needs {REQUIRED_RUNTIME}. Install "
                f"librkllmrt.so {REQUIRED_RUNTIME} (rknn-llm release-v{REQUIRED_RUNTIME}, rkllm-runtime/Linux/"
                "librkllm_api/aarch64) to /usr/lib and run `exo-rkllm doctor`.")
    if "driver version is too low" in text or (
        driver and (_version_tuple(driver) or REQUIRED_DRIVER) < REQUIRED_DRIVER
    ):
        return (f"The NPU kernel driver is {driver or 'too old'}; RKLLM {REQUIRED_RUNTIME} needs >= 0.9.8. "
                "Update the board's kernel (vendor 5.10/6.1 image with rknpu 0.9.8) and check "
                "/sys/kernel/debug/rknpu/version with `exo-rkllm doctor`.")
    if "invalid rknn llm model magic" in text or "model magic" in text:
        return ("The model file is not an RKLLM model this runtime can read: it was converted with another "
                f"rkllm-toolkit version (needs {REQUIRED_RUNTIME}) or is corrupt/truncated. Re-download it with "
                "`exo-rkllm models pull ID` or convert it with rkllm-toolkit 1.2.3; `exo-rkllm models verify` checks it.")
    if "matmul" in text and "run failed" in text:
        return ("The NPU failed a matmul: almost always an NPU driver older than 0.9.8. Update the kernel driver; "
                "`exo-rkllm doctor` shows the version.")
    if "failed to malloc npu memory" in text or "failed to allocate handle" in text:
        return ("The NPU could not allocate memory for the model: the board has too little free memory or another "
                "model holds the NPU domain. Stop other models, use a smaller model, or give each resident model "
                "its own base_domain_id.")
    if "Illegal instruction" in text or "SVE" in text:
        return ("The runtime uses CPU instructions this board lacks (RKLLM 1.3.0 builds use SVE, which RK3588 "
                f"has not). Install librkllmrt.so {REQUIRED_RUNTIME}.")
    return None

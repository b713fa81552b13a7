"""Helpers shared by the simulator tests: model-file parsing and a clean environment."""

from __future__ import annotations

import os
from pathlib import Path


def model_values(path: Path, key: str) -> list[str]:
    """Every value of `key` in a simulated model file, with the file's \\n escapes applied."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip().startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        if k.strip() == key:
            out.append(v.strip().replace("\\n", "\n").replace("\\t", "\t"))
    return out


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without simulator overrides, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RKLLM_SIM_") and k != "RKLLM_LOG_LEVEL"}
    env.update(extra)
    return env

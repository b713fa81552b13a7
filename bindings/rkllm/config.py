"""``RuntimeConfig``: the typed, validated subset of RKLLMParam a caller sets.

Why separate: validation must run before any C call (a negative max_context_len reaching the
runtime is undefined behaviour); ``None`` keeps the runtime's own default from
``rkllm_createDefaultParam()``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any

from . import _capi
from .errors import InvalidConfigError

# field -> (kind, low, high, meaning of the range). Bounds are inclusive.
_RANGES: dict[str, tuple[str, float, float, str]] = {
    "max_context_len": ("int", 1, 1 << 20, "1..1048576 tokens"),
    "max_new_tokens": ("int", -1, 1 << 20, "-1 (until the context is full) or 1..1048576"),
    "top_k": ("int", 0, 1 << 20, "0..1048576 (0 disables top-k)"),
    "n_keep": ("int", -1, 1 << 20, "-1 (runtime's choice) or 0..max_context_len"),
    "top_p": ("float", 0.0, 1.0, "0.0..1.0"),
    "temperature": ("float", 0.0, 100.0, "0.0..100.0"),
    "repeat_penalty": ("float", 1e-6, 10.0, "> 0.0 and <= 10.0 (1.0 = off)"),
    "frequency_penalty": ("float", -2.0, 2.0, "-2.0..2.0"),
    "presence_penalty": ("float", -2.0, 2.0, "-2.0..2.0"),
    "mirostat": ("int", 0, 2, "0 (off), 1 or 2"),
    "mirostat_tau": ("float", 0.0, 100.0, "0.0..100.0"),
    "mirostat_eta": ("float", 0.0, 10.0, "0.0..10.0"),
    "base_domain_id": ("int", 0, 127, "0..127 (one NPU memory domain per loaded model)"),
    "enabled_cpus_mask": ("int", 1, 0xFF, "1..0xFF (CPU0..CPU7 bits; RK3588 big cores: 0xF0)"),
    "enabled_cpus_num": ("int", 1, 8, "1..8"),
    "n_batch": ("int", 1, 255, "1..255"),
}


@dataclass
class RuntimeConfig:
    """What to load and how; ``None`` = keep the runtime's default (rkllm_createDefaultParam)."""

    model_path: str | os.PathLike[str]
    max_context_len: int | None = 4096
    max_new_tokens: int | None = 2048
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    repeat_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    n_keep: int | None = None
    skip_special_token: bool | None = True
    base_domain_id: int | None = 0
    enabled_cpus_mask: int | None = None
    enabled_cpus_num: int | None = None
    embed_flash: bool | None = None
    n_batch: int | None = 1
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise InvalidConfigError naming the first bad field and its allowed range."""
        if self.model_path is None or (isinstance(self.model_path, str) and not self.model_path):
            raise InvalidConfigError("model_path is required (path to a .rkllm model file)",
                                     field="model_path")
        if not isinstance(self.model_path, (str, os.PathLike)):
            raise InvalidConfigError(
                f"model_path must be a str or path, got {type(self.model_path).__name__}",
                field="model_path")
        for name, (kind, lo, hi, allowed) in _RANGES.items():
            v = getattr(self, name)
            if v is None:
                continue
            if kind == "int":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise InvalidConfigError(
                        f"{name} must be an integer in {allowed}, got {v!r}", field=name)
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise InvalidConfigError(
                        f"{name} must be a finite number in {allowed}, got {v!r}", field=name)
            if not lo <= v <= hi:
                raise InvalidConfigError(f"{name}={v!r} is out of range; allowed: {allowed}",
                                         field=name)
        if self.max_new_tokens == 0:
            raise InvalidConfigError(
                "max_new_tokens=0 would generate nothing; allowed: -1 or 1..1048576",
                field="max_new_tokens")
        for name in ("skip_special_token", "embed_flash"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (bool, int)) or v not in (0, 1)):
                raise InvalidConfigError(f"{name} must be True, False or None, got {v!r}",
                                         field=name)
        if (self.n_keep is not None and self.max_context_len is not None
                and self.n_keep > self.max_context_len):
            raise InvalidConfigError(
                f"n_keep={self.n_keep} exceeds max_context_len={self.max_context_len}; "
                "allowed: -1 or 0..max_context_len", field="n_keep")
        if self.enabled_cpus_mask is not None and self.enabled_cpus_num is not None:
            bits = bin(self.enabled_cpus_mask).count("1")
            if bits != self.enabled_cpus_num:
                raise InvalidConfigError(
                    f"enabled_cpus_num={self.enabled_cpus_num} does not match "
                    f"enabled_cpus_mask={self.enabled_cpus_mask:#x} ({bits} CPUs); "
                    "set both consistently or leave one None", field="enabled_cpus_num")

    def apply(self, param: _capi.RKLLMParam, model_path: bytes) -> None:
        """Write the non-None fields into ``param`` (which starts as the runtime's defaults)."""
        param.model_path = model_path
        for name in ("max_context_len", "max_new_tokens", "top_k", "n_keep", "top_p",
                     "temperature", "repeat_penalty", "frequency_penalty", "presence_penalty",
                     "mirostat", "mirostat_tau", "mirostat_eta"):
            v = getattr(self, name)
            if v is not None:
                setattr(param, name, v)
        if self.skip_special_token is not None:
            param.skip_special_token = bool(self.skip_special_token)
        ext = param.extend_param  # shares param's memory
        if self.base_domain_id is not None:
            ext.base_domain_id = self.base_domain_id
        if self.embed_flash is not None:
            ext.embed_flash = int(bool(self.embed_flash))
        if self.enabled_cpus_mask is not None:
            ext.enabled_cpus_mask = self.enabled_cpus_mask
            if self.enabled_cpus_num is None:
                ext.enabled_cpus_num = bin(self.enabled_cpus_mask).count("1")
        if self.enabled_cpus_num is not None:
            ext.enabled_cpus_num = self.enabled_cpus_num
        if self.n_batch is not None:
            ext.n_batch = self.n_batch

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

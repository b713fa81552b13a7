"""Memory fit before loading, and NPU domain ids for several resident models.

Loading a model that does not fit gets the board OOM-killed minutes later (or swaps a 1.8B model
to a crawl), so the serving core asks here first and refuses with a message naming the numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from exo_rkllm.catalog import ModelCard

MEMINFO = Path("/proc/meminfo")
# Headroom left for the OS, the server and the tokenizer (transformers' tokenizer alone is ~100 MB).
DEFAULT_MARGIN_MB = int(os.environ.get("EXO_RKLLM_MEMORY_MARGIN_MB", "512"))
# RKLLM 1.2.2+ multi-instance: every resident model needs its own base_domain_id (~4 GB of NPU memory each).
MAX_DOMAIN_ID = 15


class InsufficientMemoryError(MemoryError):
    """A model (or a set of models) does not fit the memory this board has free."""


@dataclass(frozen=True)
class MemoryFit:
    ok: bool
    needed_mb: int        # the models' figures plus the margin
    available_mb: int | None
    margin_mb: int
    message: str


def read_meminfo(path: str | os.PathLike[str] = MEMINFO) -> dict[str, int]:
    """``/proc/meminfo`` as {field: kB}; empty if unreadable (not Linux, restricted container)."""
    out: dict[str, int] = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def available_mb(path: str | os.PathLike[str] = MEMINFO) -> int | None:
    """MemAvailable in MB (what can be allocated without swapping), or None when unknown."""
    info = read_meminfo(path)
    if "MemAvailable" in info:
        return info["MemAvailable"] // 1024
    if "MemFree" in info:  # kernels before 3.14
        return (info["MemFree"] + info.get("Cached", 0)) // 1024
    return None


def total_mb(path: str | os.PathLike[str] = MEMINFO) -> int | None:
    info = read_meminfo(path)
    return info["MemTotal"] // 1024 if "MemTotal" in info else None


def check_fit(cards: "ModelCard | Sequence[ModelCard]", *, meminfo: str | os.PathLike[str] = MEMINFO,
              margin_mb: int = DEFAULT_MARGIN_MB) -> MemoryFit:
    """Do these models (loaded together) fit into MemAvailable minus ``margin_mb``?"""
    group = [cards] if not isinstance(cards, (list, tuple)) else list(cards)
    need_models = sum(int(c.memory_mb) for c in group)
    needed = need_models + margin_mb
    free = available_mb(meminfo)
    names = ", ".join(f"{c.id} ({c.memory_mb} MB)" for c in group)
    if free is None:
        return MemoryFit(True, needed, None, margin_mb,
                         f"free memory unknown ({meminfo} unreadable); not checked for {names}")
    if needed <= free:
        return MemoryFit(True, needed, free, margin_mb,
                         f"{names} need {need_models} MB + {margin_mb} MB margin; {free} MB free")
    return MemoryFit(False, needed, free, margin_mb,
                     f"not enough memory for {names}: needs {need_models} MB + {margin_mb} MB margin "
                     f"= {needed} MB, but only {free} MB is free (MemAvailable). Fix: stop other models "
                     f"or services, choose a smaller model (`exo-rkllm models list`), or lower the margin "
                     f"with EXO_RKLLM_MEMORY_MARGIN_MB")


def require_fit(cards: "ModelCard | Sequence[ModelCard]", **kwargs) -> MemoryFit:
    """check_fit, raising InsufficientMemoryError (with the numbers and the fix) when it does not fit."""
    fit = check_fit(cards, **kwargs)
    if not fit.ok:
        raise InsufficientMemoryError(fit.message)
    return fit


def assign_domain_ids(cards: Iterable["ModelCard"]) -> dict[str, int]:
    """Distinct ``base_domain_id`` per resident model, in the given order (first model gets 0).

    Two handles sharing a domain corrupt each other's NPU memory, so ids are never reused.
    """
    ids: dict[str, int] = {}
    for card in cards:
        if card.id in ids:
            raise ValueError(f"model {card.id!r} listed twice; load each model once")
        if len(ids) > MAX_DOMAIN_ID:
            raise ValueError(f"more than {MAX_DOMAIN_ID + 1} resident models; RKLLM domains run out")
        ids[card.id] = len(ids)
    return ids


# The serving core calls ``check_fits(card)`` before each load (models load one after another, so
# MemAvailable already accounts for the ones loaded before).
check_fits = require_fit

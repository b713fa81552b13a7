"""Fixtures for the binding tests: the real simulator library across a real C boundary.

Custom simulated models (docs/architecture.md section 1) are written into tmp_path when a test
needs a behaviour or a fault the shipped models do not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

import rkllm
from rkllm_helpers import write_model


@pytest.fixture(scope="session")
def sim_lib_path() -> Path:
    from exo_rkllm.sim import build_simulator

    return build_simulator()


@pytest.fixture(scope="session")
def lib(sim_lib_path: Path):
    return rkllm.load_library(sim_lib_path)


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1_000_000))

    def make(**kw) -> Path:
        return write_model(tmp_path / f"model{next(counter)}.rkllm-sim", **kw)

    return make


@pytest.fixture
def make_runtime(lib, make_model):
    """Factory: make_runtime(model kwargs..., cfg=dict(...)) -> RKLLMRuntime, closed after the test."""
    made: list[rkllm.RKLLMRuntime] = []

    def make(cfg: dict | None = None, **model_kw) -> rkllm.RKLLMRuntime:
        model = make_model(**model_kw)
        rt = rkllm.RKLLMRuntime(rkllm.RuntimeConfig(model_path=model, **(cfg or {})), library=lib)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()

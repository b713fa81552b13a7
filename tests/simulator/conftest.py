"""Fixtures for the simulator's own tests: the built library and the compiled C smoke program."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exo_rkllm.sim import build_simulator

HERE = Path(__file__).resolve().parent
SIM_DIR = HERE.parents[1] / "bindings" / "simulator"


@pytest.fixture(scope="session")
def sim_lib() -> Path:
    return build_simulator()


@pytest.fixture(scope="session")
def smoke_bin(sim_lib: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/simulator/sim_smoke.c compiled against the simulator (C only, no Python binding)."""
    out = tmp_path_factory.mktemp("smoke") / "sim_smoke"
    subprocess.run(
        ["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1", "-pthread", f"-I{SIM_DIR}", "-o", str(out),
         str(HERE / "sim_smoke.c"), str(sim_lib), f"-Wl,-rpath,{sim_lib.parent}"],
        check=True, capture_output=True, text=True,
    )
    return out

"""Fixtures for the serving core: the simulated runtime and the shipped simulated model cards."""

from __future__ import annotations

import pytest

from exo_rkllm.catalog import get_card
from exo_rkllm.core import RuntimeSpec


@pytest.fixture(scope="session")
def sim_spec() -> RuntimeSpec:
    return RuntimeSpec.simulated()


@pytest.fixture()
def chat_card():
    return get_card("sim-instant")


@pytest.fixture()
def reasoning_card():
    return get_card("sim-reasoning-instant")

"""Fixtures shared by the cluster tests (helpers live in harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exo_rkllm.ops.nginx import INSTALL_HINT, NginxNotFoundError, find_nginx


@pytest.fixture(scope="session")
def nginx_bin() -> Path:
    """The real nginx; its absence fails the cluster tests (they must not pass silently without it)."""
    try:
        return find_nginx()
    except NginxNotFoundError:
        pytest.fail(f"the cluster tests need a real nginx and none was found: {INSTALL_HINT}")

"""Fixtures for the exo adapter: engines on the simulated runtime, and exo's call sequence."""

from __future__ import annotations

import pytest

from exo_rkllm.catalog import get_card


@pytest.fixture(autouse=True)
def simulated(monkeypatch):
    """exo builds engines as cls(shard_downloader): the launcher's env switch selects the simulator."""
    monkeypatch.setenv("EXO_RKLLM_SIMULATE", "1")


@pytest.fixture()
def cached_models_dir(tmp_path, monkeypatch):
    """A user catalog holding a cached-delivery variant of the instant chat model."""
    base = get_card("sim-instant")
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "sim-cached.toml").write_text(
        'id = "sim-cached"\npretty_name = "Simulated chat model, cached replay"\nfamily = "simulated"\n'
        f'file = "{base.file}"\ntokenizer = "{base.tokenizer}"\nlayers = {base.layers}\n'
        f'context_length = {base.context_length}\nmemory_mb = 64\ndelivery = "cached"\nmax_new_tokens = 256\n'
        'simulated = true\nsim_model = "chat-instant"\nrequest_timeout_s = 60.0\nidle_timeout_s = 30.0\n')
    monkeypatch.setenv("EXO_RKLLM_MODELS_DIR", str(tmp_path))
    return tmp_path

"""Against real legacy exo (v0.0.15-alpha), when it is installed.

exo is not on PyPI and pulls a heavy dependency set (tinygrad, grpcio, opencv), so the default install
and CI do not have it. To run these locally: make a virtual environment, `pip install -e '.[exo,test]'`
(exo @ git+https://github.com/exo-explore/exo@v0.0.15-alpha), then run pytest tests/exo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("exo") is None,
                                reason="real exo (legacy v0.0.15-alpha) is not installed; see this module's docstring")


def test_registration_patches_exos_registries():
    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine
    from exo_rkllm.exo_adapter.launcher import register_with_exo

    register_with_exo(simulated=True)
    import exo.inference.inference_engine as engines
    import exo.models as models
    from exo.orchestration.node import Node

    engine = engines.get_inference_engine("rkllm", None)
    assert isinstance(engine, RKLLMInferenceEngine) and isinstance(engine, engines.InferenceEngine)
    shard = models.build_base_shard("sim-instant", "RKLLMInferenceEngine")
    assert shard is not None and shard.model_id == "sim-instant"
    assert models.get_pretty_name("sim-instant")
    node = Node.__new__(Node)
    node.inference_engine = engine
    assert node.get_supported_inference_engines() == ["rkllm"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exo_simulate_serves_chat_completions(tmp_path):
    port = _free_port()
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "exo_rkllm.cli", "exo", "--simulate", "--disable-tui",
                             "--chatgpt-api-port", str(port), "--discovery-module", "manual",
                             "--discovery-config-path", str(tmp_path / "none.json"),
                             "--node-port", str(_free_port())],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
                time.sleep(0.5)
        body = json.dumps({"model": "sim-instant", "messages": [{"role": "user", "content": "Hello"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        reply = json.load(urllib.request.urlopen(req, timeout=120))
        assert reply["choices"][0]["message"]["content"].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

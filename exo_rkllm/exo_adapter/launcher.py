"""Run legacy exo (v0.0.15-alpha) with the RKLLM engine registered, without forking exo.

exo builds its engine while ``exo.main`` is being imported, so everything here happens before that
import: the engine joins exo's registry, the catalog joins exo's model cards, and exo's habit of
swapping any non-MLX engine for tinygrad on every peer change is switched off for this engine.
"""

from __future__ import annotations

import os
import sys

from exo_rkllm.exo_adapter.engine import MAX_TOKENS_ENV, SIMULATE_ENV, RKLLMInferenceEngine
from exo_rkllm.exo_adapter.registration import ENGINE_CLASS_NAME, build_model_cards, build_pretty_names

ENGINE_NAME = "rkllm"
DEFAULT_MODEL = "qwen2.5-1.5b-instruct"
DEFAULT_SIM_MODEL = "sim-qwen2.5-1.5b"


def register_with_exo(simulated: bool) -> None:
    """Patch exo's registries in place (they are module-level dicts and functions)."""
    import exo.inference.inference_engine as engines
    import exo.models as models
    import exo.orchestration.node as node_module

    engines.inference_engine_classes[ENGINE_NAME] = ENGINE_CLASS_NAME
    original = engines.get_inference_engine
    if not getattr(original, "_rkllm", False):
        def get_inference_engine(name, shard_downloader):
            if name == ENGINE_NAME:
                return RKLLMInferenceEngine(shard_downloader)
            return original(name, shard_downloader)

        get_inference_engine._rkllm = True
        engines.get_inference_engine = get_inference_engine
        node_module.get_inference_engine = get_inference_engine

    models.model_cards.update(build_model_cards(simulated=simulated))
    models.pretty_name.update(build_pretty_names(simulated=simulated))

    node_cls = node_module.Node
    if not getattr(node_cls, "_rkllm_patched", False):
        supported, select = node_cls.get_supported_inference_engines, node_cls.select_best_inference_engine

        def get_supported_inference_engines(self):
            if isinstance(self.inference_engine, RKLLMInferenceEngine):
                return [ENGINE_NAME]
            return supported(self)

        async def select_best_inference_engine(self):
            if isinstance(self.inference_engine, RKLLMInferenceEngine):
                return  # never swapped for tinygrad: this board runs RKLLM
            return await select(self)

        node_cls.get_supported_inference_engines = get_supported_inference_engines
        node_cls.select_best_inference_engine = select_best_inference_engine
        node_cls._rkllm_patched = True


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def exo_argv(argv: list[str], simulated: bool) -> list[str]:
    """exo's own arguments with this engine and a sensible default model filled in."""
    out = list(argv)
    if _option(out, "--inference-engine") is None:
        out += ["--inference-engine", ENGINE_NAME]
    if _option(out, "--default-model") is None:
        out += ["--default-model", DEFAULT_SIM_MODEL if simulated else DEFAULT_MODEL]
    return out


def run(argv: list[str], simulated: bool) -> int:
    """Register, then hand control to exo's main (blocks until exo exits)."""
    os.environ[SIMULATE_ENV] = "1" if simulated else "0"
    cap = _option(argv, "--max-generate-tokens")
    if cap:
        os.environ[MAX_TOKENS_ENV] = cap
    register_with_exo(simulated)
    sys.argv = ["exo"] + exo_argv(argv, simulated)
    import exo.main

    exo.main.run()
    return 0

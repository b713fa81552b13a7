"""Run legacy exo (v0.0.15-alpha) with the RKLLM engine registered, without forking exo.

exo builds its engine while ``exo.main`` is being imported, so everything here happens before that
import: the engine joins exo's registry, the catalog joins exo's model cards, exo's habit of
swapping any non-MLX engine for tinygrad on every peer change is switched off for this engine, the
node reports the RK3588 board instead of probing GPUs through tinygrad (which fails on these boards),
exo's SIGTERM/SIGINT shutdown first stops the engine's runtime workers, exo's API replies lose their
EOS text and stream whole characters (api_fixes), and, when the node runs this engine, the shard
downloader is the exo-rkllm models store (downloads) and /v1/models lists only the catalog.
Every patch is to module attributes, in memory, marked so registering twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from exo_rkllm.exo_adapter.api_fixes import install_api_fixes
from exo_rkllm.exo_adapter.device import node_capabilities
from exo_rkllm.exo_adapter.engine import MAX_TOKENS_ENV, SIMULATE_ENV, RKLLMInferenceEngine
from exo_rkllm.exo_adapter.registration import ENGINE_CLASS_NAME, build_model_cards, build_pretty_names

ENGINE_NAME = "rkllm"
DEFAULT_MODEL = "qwen2.5-1.5b-instruct"
DEFAULT_SIM_MODEL = "sim-qwen2.5-1.5b"
SHUTDOWN_GRACE_S = 15.0  # the runtime workers get this long to release the model on exit

log = logging.getLogger("exo_rkllm.exo")


def register_with_exo(simulated: bool) -> None:
    """Patch exo's registries in place (they are module-level dicts and functions)."""
    import exo.inference.inference_engine as engines
    import exo.models as models
    import exo.orchestration.node as node_module
    import exo.topology.device_capabilities as devices

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
                # Peers still learn what this node runs, but the engine is never swapped for tinygrad.
                await self.broadcast_supported_engines([ENGINE_NAME])
                return
            return await select(self)

        node_cls.get_supported_inference_engines = get_supported_inference_engines
        node_cls.select_best_inference_engine = select_best_inference_engine
        node_cls._rkllm_patched = True

    if not getattr(node_module.device_capabilities, "_rkllm", False):
        async def device_capabilities():
            return devices.DeviceCapabilities(**node_capabilities(simulated))

        device_capabilities._rkllm = True
        devices.device_capabilities = device_capabilities
        node_module.device_capabilities = device_capabilities
    _stop_engine_on_shutdown()
    install_api_fixes({card["repo"][ENGINE_CLASS_NAME]: model_id for model_id, card in models.model_cards.items()
                       if ENGINE_CLASS_NAME in card.get("repo", {})})


def _stop_engine_on_shutdown() -> None:
    """exo's signal handler cancels every task and never tells the engine: release the model first."""
    import exo.helpers as helpers

    original = helpers.shutdown
    if getattr(original, "_rkllm", False):
        return

    async def shutdown(signal, loop, server):
        await stop_engine(server, signal)
        await original(signal, loop, server)

    shutdown._rkllm = True
    helpers.shutdown = shutdown


async def stop_engine(server, signal) -> None:
    """The first step of exo's shutdown on an RKLLM node: end replies in flight with the reason, stop the worker."""
    engine = getattr(getattr(server, "node", None), "inference_engine", None)
    if not isinstance(engine, RKLLMInferenceEngine):
        return
    reason = f"the exo node is shutting down ({getattr(signal, 'name', signal)}); the reply is cut short"
    try:
        await asyncio.wait_for(engine.close(reason), SHUTDOWN_GRACE_S)
    except Exception as exc:  # exo's own shutdown must still run
        log.error("stopping the RKLLM engine failed: %s", exc)


def list_only_rkllm_models() -> None:
    """exo's /v1/models lists every model card; an RKLLM node lists only what it can serve. The other cards
    stay registered so a request naming one still gets exo's clear 400 (an unknown name would instead be
    silently answered by the default model)."""
    from aiohttp import web
    from exo.api.chatgpt_api import ChatGPTAPI
    from exo.models import model_cards

    async def handle_get_models(self, request):
        ids = [m for m, card in model_cards.items() if self.inference_engine_classname in card.get("repo", {})]
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "exo", "ready": True} for m in ids]})

    ChatGPTAPI.handle_get_models = handle_get_models  # before exo.main builds the API (routes bind then)


def use_rkllm_downloader(simulated: bool) -> None:
    """exo.main builds its shard downloader with new_shard_downloader(): an RKLLM node's is the models store."""
    import exo.download.new_shard_download as downloads

    from exo_rkllm.exo_adapter.downloads import RKLLMShardDownloader

    def new_shard_downloader(max_parallel_downloads: int = 8):
        return RKLLMShardDownloader(simulated)

    downloads.new_shard_downloader = new_shard_downloader


def bind_api_host(host: str) -> None:
    """exo's ChatGPT API always binds 0.0.0.0; bind it to `host` instead (e.g. 127.0.0.1)."""
    from exo.api.chatgpt_api import ChatGPTAPI

    original = getattr(ChatGPTAPI.run, "_rkllm_original", ChatGPTAPI.run)

    async def run(self, host: str = host, port: int = 52415):
        return await original(self, host, port)

    run._rkllm_original = original
    ChatGPTAPI.run = run


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


def run(argv: list[str], simulated: bool, api_host: str | None = None) -> int:
    """Register, then hand control to exo's main (blocks until exo exits)."""
    os.environ[SIMULATE_ENV] = "1" if simulated else "0"
    cap = _option(argv, "--max-generate-tokens")
    if cap:
        os.environ[MAX_TOKENS_ENV] = cap
    register_with_exo(simulated)
    if api_host:
        bind_api_host(api_host)
    argv = exo_argv(argv, simulated)
    if _option(argv, "--inference-engine") == ENGINE_NAME:  # exo's other engines keep exo's downloader
        use_rkllm_downloader(simulated)
        list_only_rkllm_models()
    sys.argv = ["exo"] + argv
    import exo.main

    if _option(argv, "--inference-engine") == ENGINE_NAME:
        from exo_rkllm.exo_adapter.cli_fixes import run_model_cli

        exo.main.run_model_cli = run_model_cli  # exo's drops tokens that arrive close together
    try:
        exo.main.run()
    except asyncio.CancelledError:  # exo's shutdown cancels its own main task: that is a clean exit
        pass
    return 0

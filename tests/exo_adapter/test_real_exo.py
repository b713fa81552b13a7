"""Against real legacy exo (v0.0.15-alpha), when it is installed: exo's own Node, registry and ChatGPT API.

exo is not on PyPI and its setup.py pins tinygrad from git, so the default install and CI do not have it.
docs/exo.md ("Running the real-exo tests") explains how to build a virtual environment with it; then
`python -m pytest tests/exo_adapter` runs these instead of skipping them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

def _exo_installed() -> bool:
    """Real exo, not merely some directory named exo on sys.path (a namespace package)."""
    try:
        return importlib.util.find_spec("exo.inference.inference_engine") is not None
    except ModuleNotFoundError:
        return False


needs_exo = pytest.mark.skipif(not _exo_installed(),
                               reason="real exo (legacy v0.0.15-alpha) is not installed; see docs/exo.md")

WORKER_MODULE = "exo_rkllm.core.worker_main"


@pytest.fixture()
def exo_registered():
    from exo_rkllm.exo_adapter.launcher import register_with_exo

    register_with_exo(simulated=True)


def _node(engine, discovery=None):
    """A real exo Node around the engine, with exo's own ring partitioning (not started: no sockets)."""
    from exo.orchestration.node import Node
    from exo.topology.ring_memory_weighted_partitioning_strategy import RingMemoryWeightedPartitioningStrategy

    return Node("board-a", None, engine, discovery, None,
                partitioning_strategy=RingMemoryWeightedPartitioningStrategy(), max_generate_tokens=10000)


@needs_exo
def test_registration_patches_exos_registries(exo_registered):
    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine

    import exo.inference.inference_engine as engines
    import exo.models as models

    engine = engines.get_inference_engine("rkllm", None)
    assert isinstance(engine, RKLLMInferenceEngine) and isinstance(engine, engines.InferenceEngine)
    assert engines.inference_engine_classes["rkllm"] == type(engine).__name__
    # exo's model cards and its API look models up by the engine's class name.
    class_name = type(engine).__name__
    assert models.model_cards["sim-instant"]["repo"][class_name]
    shard = models.build_base_shard("sim-instant", class_name)
    assert shard is not None and shard.model_id == "sim-instant"
    assert shard.n_layers == models.model_cards["sim-instant"]["layers"]
    assert models.build_base_shard("sim-instant", "TinygradDynamicShardInferenceEngine") is None
    assert "sim-instant" in models.get_supported_models([["rkllm"]])
    assert models.get_pretty_name("sim-instant")
    with pytest.raises(ValueError):  # exo's other engines are still exo's
        engines.get_inference_engine("no-such-engine", None)


@needs_exo
def test_peer_change_does_not_swap_the_engine_for_tinygrad(exo_registered):
    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine

    engine = RKLLMInferenceEngine(None)
    node = _node(engine)
    assert node.get_supported_inference_engines() == ["rkllm"]
    # What exo does after a peer joins: another node broadcast its engines, then it re-selects.
    node.topology_inference_engines_pool.append(["tinygrad"])
    asyncio.run(node.select_best_inference_engine())
    assert node.inference_engine is engine


@needs_exo
def test_the_node_reports_the_board_not_a_tinygrad_device(exo_registered):
    import exo.orchestration.node as node_module

    caps = asyncio.run(node_module.device_capabilities())
    assert "RK3588" in caps.chip and "simulat" in caps.chip
    assert caps.memory > 0  # exo's ring partitioning weighs nodes by memory


@needs_exo
def test_a_partial_shard_from_exos_ring_is_refused_with_the_reason(exo_registered):
    from exo.inference.shard import Shard
    from exo.topology.device_capabilities import DeviceCapabilities, DeviceFlops
    from exo.topology.topology import Topology

    from exo_rkllm.exo_adapter.engine import PartialShardError, RKLLMInferenceEngine

    engine = RKLLMInferenceEngine(None)
    node = _node(engine)
    flops = DeviceFlops(fp32=0, fp16=0, int8=0)
    topology = Topology()
    topology.update_node("board-a", DeviceCapabilities(model="a", chip="a", memory=16000, flops=flops))
    topology.update_node("board-b", DeviceCapabilities(model="b", chip="b", memory=8000, flops=flops))
    node.topology = topology
    base = Shard("sim-instant", 0, 0, 28)
    shard = node.get_current_shard(base)
    assert shard.is_first_layer() and not shard.is_last_layer()  # exo split the layers between the boards

    with pytest.raises(PartialShardError) as err:
        asyncio.run(node._process_prompt(base, "<|im_start|>user\nHello<|im_end|>\n", "ring-request"))
    assert "cannot be split by layer" in str(err.value) and "nginx" in str(err.value)


@needs_exo
def test_requests_for_two_models_at_once_both_complete(exo_registered, monkeypatch):
    """exo's Node on one board, two users on different models: the switch waits for the running reply."""
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "5")  # long enough for the second request to arrive mid-reply
    from exo.models import build_base_shard
    from exo.topology.device_capabilities import DeviceCapabilities, DeviceFlops

    from exo_rkllm.catalog import get_card, load_tokenizer
    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine

    def prompt(model: str) -> str:
        return load_tokenizer(get_card(model)).apply_chat_template(
            [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True)

    async def main():
        engine = RKLLMInferenceEngine(None)
        node = _node(engine)
        node.topology.update_node("board-a", DeviceCapabilities(model="a", chip="a", memory=8000,
                                                                 flops=DeviceFlops(fp32=0, fp16=0, int8=0)))
        tokens: dict[str, list[int]] = {}
        finished: dict[str, asyncio.Event] = {r: asyncio.Event() for r in ("a", "b", "a-alone", "b-alone")}

        def on_token(request_id, new_tokens, is_finished):
            tokens.setdefault(request_id, []).extend(new_tokens)
            if is_finished:
                finished[request_id].set()

        node.on_token.register("test").on_next(on_token)
        shard_a = build_base_shard("sim-instant", "RKLLMInferenceEngine")
        shard_b = build_base_shard("sim-reasoning-instant", "RKLLMInferenceEngine")
        await node.process_prompt(shard_a, prompt("sim-instant"), "a")
        await node.process_prompt(shard_b, prompt("sim-reasoning-instant"), "b")  # while "a" is still streaming
        await asyncio.wait_for(asyncio.gather(finished["a"].wait(), finished["b"].wait()), 120)
        for rid, shard, model in (("a-alone", shard_a, "sim-instant"), ("b-alone", shard_b, "sim-reasoning-instant")):
            await node.process_prompt(shard, prompt(model), rid)
            await asyncio.wait_for(finished[rid].wait(), 120)
        eos = engine.tokenizer.eos_token_id
        await engine.close()
        return tokens, eos

    tokens, eos = asyncio.run(main())
    assert tokens["a"][-1] == eos and tokens["b"][-1] == eos
    assert tokens["a"] == tokens["a-alone"] and tokens["b"] == tokens["b-alone"]  # nothing cut short or mixed


@needs_exo
def test_shutdown_mid_reply_says_the_reply_was_cut(exo_registered, monkeypatch):
    """exo's SIGTERM handler closes the engine first: a reply in flight ends with the reason, not a silent stop."""
    monkeypatch.setenv("RKLLM_SIM_DECODE_MS", "20")
    from exo.models import build_base_shard
    from exo.topology.device_capabilities import DeviceCapabilities, DeviceFlops

    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine
    from exo_rkllm.exo_adapter.launcher import stop_engine

    class Server:  # what exo's shutdown(signal, loop, server) is handed
        def __init__(self, node):
            self.node = node

        async def stop(self):
            pass

    async def main():
        engine = RKLLMInferenceEngine(None)
        node = _node(engine)
        node.topology.update_node("board-a", DeviceCapabilities(model="a", chip="a", memory=8000,
                                                                 flops=DeviceFlops(fp32=0, fp16=0, int8=0)))
        tokens: list[int] = []
        done = asyncio.Event()

        def on_token(request_id, new_tokens, is_finished):
            tokens.extend(new_tokens)
            if is_finished:
                done.set()

        node.on_token.register("test").on_next(on_token)
        shard = build_base_shard("sim-instant", "RKLLMInferenceEngine")
        await node.process_prompt(shard, "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "r")
        while len(tokens) < 5:
            await asyncio.sleep(0.01)
        await stop_engine(Server(node), signal.SIGTERM)  # then exo's own shutdown cancels every task
        await asyncio.wait_for(done.wait(), 30)
        text = engine.tokenizer.decode(tokens, skip_special_tokens=True)
        return engine, tokens, text

    engine, tokens, text = asyncio.run(main())
    assert tokens[-1] == engine.tokenizer.eos_token_id
    assert "[exo-rkllm error: the exo node is shutting down (SIGTERM)" in text
    assert engine._service is None  # the runtime worker was stopped


@needs_exo
@pytest.mark.filterwarnings("ignore:old-style middleware:DeprecationWarning")  # exo's own API code
@pytest.mark.filterwarnings("ignore::UserWarning:aiohttp_cors")
def test_next_turn_through_exos_api_prefills_only_the_new_turn(exo_registered):
    """exo's own ChatGPT API templates each turn from the whole conversation; the KV cache still carries over."""
    import aiohttp
    from aiohttp import web
    from exo.api.chatgpt_api import ChatGPTAPI
    from exo.topology.device_capabilities import DeviceCapabilities, DeviceFlops

    from exo_rkllm import metrics
    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine

    prefilled = metrics.PREFILLED_TOKENS.labels(model="sim-instant")

    async def main():
        engine = RKLLMInferenceEngine(None)
        node = _node(engine)
        node.topology.update_node("board-a", DeviceCapabilities(model="a", chip="a", memory=8000,
                                                                 flops=DeviceFlops(fp32=0, fp16=0, int8=0)))
        api = ChatGPTAPI(node, "RKLLMInferenceEngine", response_timeout=60, default_model="sim-instant")
        runner = web.AppRunner(api.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
        try:
            async with aiohttp.ClientSession() as http:
                messages = [{"role": "user", "content": "What is an NPU?"}]
                async with http.post(url, json={"model": "sim-instant", "messages": messages}) as r:
                    first = await r.json()
                reply = first["choices"][0]["message"]["content"]
                messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And RK3588?"}]
                before = prefilled._value.get()
                async with http.post(url, json={"model": "sim-instant", "messages": messages}) as r:
                    second = await r.json()
                used = prefilled._value.get() - before
        finally:
            await runner.cleanup()
            await engine.close()
        return first, second, used

    first, second, used = asyncio.run(main())
    assert second["choices"][0]["message"]["content"].strip()
    assert 0 < used < second["usage"]["prompt_tokens"] / 2  # only the new user turn was prefilled


@needs_exo
def test_the_node_downloads_rkllm_files_not_hugging_face_weights(exo_registered, tmp_path, monkeypatch):
    """exo's web UI lists and downloads models through the node's shard downloader: the models store here."""
    monkeypatch.setenv("EXO_RKLLM_MODELS_DIR", str(tmp_path))
    import exo.download.new_shard_download as downloads
    from exo.inference.shard import Shard

    from exo_rkllm.exo_adapter.launcher import use_rkllm_downloader
    from exo_rkllm.ops.store import ModelStore
    from exo_rkllm.catalog import get_card

    original = downloads.new_shard_downloader
    try:
        use_rkllm_downloader(simulated=False)
        real = downloads.new_shard_downloader(8)
        use_rkllm_downloader(simulated=True)
        sim = downloads.new_shard_downloader(8)
    finally:
        downloads.new_shard_downloader = original

    async def main():
        real_status = {s.shard.model_id: s async for _, s in real.get_shard_download_status("RKLLMInferenceEngine")}
        sim_status = {s.shard.model_id: s async for _, s in sim.get_shard_download_status("RKLLMInferenceEngine")}
        events = []
        sim.on_progress.register("test").on_next(lambda shard, event: events.append(event))
        path = await sim.ensure_shard(Shard("sim-instant", 0, 27, 28), "RKLLMInferenceEngine")
        return real_status, sim_status, events, path

    real_status, sim_status, events, path = asyncio.run(main())
    card = get_card("qwen2.5-1.5b-instruct")
    assert "qwen2.5-1.5b-instruct" in real_status and "sim-instant" not in real_status
    missing = real_status["qwen2.5-1.5b-instruct"]
    assert missing.status == "not_started" and missing.downloaded_bytes < missing.total_bytes  # tmp dir: not pulled
    assert not ModelStore().is_installed(card)
    assert set(sim_status) >= {"sim-instant", "sim-reasoning-instant"} and "qwen2.5-1.5b-instruct" not in sim_status
    assert all(s.status == "complete" and s.downloaded_bytes == s.total_bytes for s in sim_status.values())
    assert path == ModelStore().model_file(get_card("sim-instant")).parent
    assert events and events[-1].status == "complete"


@needs_exo
@pytest.mark.filterwarnings("ignore:old-style middleware:DeprecationWarning")  # exo's own API code
@pytest.mark.filterwarnings("ignore::UserWarning:aiohttp_cors")
def test_exos_api_reports_errors_before_the_reply_as_details(exo_registered, tmp_path, monkeypatch):
    """A missing tokenizer or a malformed message: exo's {"detail": ...} with the cause, not a bare 500."""
    import aiohttp
    from aiohttp import web
    import exo.models as models
    from exo.api.chatgpt_api import ChatGPTAPI

    from exo_rkllm.catalog import get_card
    from exo_rkllm.exo_adapter.api_fixes import install_api_fixes
    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine
    from exo_rkllm.exo_adapter.registration import build_model_cards

    base = get_card("sim-instant")
    missing_dir = tmp_path / "missing-tokenizer"
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "no-tokenizer.toml").write_text(
        'id = "no-tokenizer"\npretty_name = "Card whose tokenizer was never pulled"\nfamily = "qwen2.5"\n'
        f'file = "model.rkllm"\ntokenizer = "{missing_dir}"\nlayers = {base.layers}\n'
        f'context_length = {base.context_length}\nmemory_mb = 64\n')
    monkeypatch.setenv("EXO_RKLLM_MODELS_DIR", str(tmp_path))
    card = build_model_cards(simulated=False)["no-tokenizer"]
    monkeypatch.setitem(models.model_cards, "no-tokenizer", card)
    install_api_fixes({card["repo"]["RKLLMInferenceEngine"]: "no-tokenizer"})

    async def main():
        api = ChatGPTAPI(_node(RKLLMInferenceEngine(None)), "RKLLMInferenceEngine", response_timeout=60,
                         default_model="sim-instant")
        runner = web.AppRunner(api.app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json={"model": "no-tokenizer",
                                                "messages": [{"role": "user", "content": "Hi"}]}) as r:
                    missing = (r.status, await r.json())
                async with http.post(url, json={"model": "sim-instant", "messages": [{"role": "user"}]}) as r:
                    malformed = (r.status, await r.json())
        finally:
            await runner.cleanup()
        return missing, malformed

    missing, malformed = asyncio.run(main())
    assert missing[0] == 500 and "models pull no-tokenizer" in missing[1]["detail"]
    assert malformed[0] == 400 and "content" in malformed[1]["detail"]


def test_stream_chunks_carry_whole_characters():
    """exo streams one token per chunk; a character split over tokens must not arrive as U+FFFD pieces."""
    from exo_rkllm.catalog import get_card, load_tokenizer
    from exo_rkllm.exo_adapter.api_fixes import StreamDetokenizer

    tok = load_tokenizer(get_card("sim-instant"))  # byte-level: the emoji is four tokens
    text = "Hi \U0001f642 \u4f60\u597d!"
    ids = tok.encode(text, add_special_tokens=False)
    detok = StreamDetokenizer(tok.decode)
    chunks = [detok.push([i], final=n == len(ids) - 1) for n, i in enumerate(ids)]
    assert "".join(chunks) == text
    assert "\ufffd" not in "".join(chunks) and "\U0001f642" in chunks


def test_exo_is_imported_only_by_the_adapter():
    root = Path(__file__).resolve().parents[2] / "exo_rkllm"
    offenders = []
    for path in root.rglob("*.py"):
        if "exo_adapter" in path.parts:
            continue
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import exo.", "from exo.", "from exo import")) or s in ("import exo",):
                offenders.append(f"{path.relative_to(root.parent)}: {s}")
    assert not offenders


# -- a real `exo-rkllm exo --simulate` node, loopback only --------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                out.append((int(entry), f.read().replace(b"\0", b" ").decode(errors="replace")))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _alive_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return WORKER_MODULE.encode() in f.read()
    except OSError:
        return False


def _post(url: str, payload: dict, timeout: float = 120):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=timeout)


@pytest.fixture()
def exo_node(tmp_path):
    """`exo-rkllm exo --simulate` as a real subprocess: manual discovery with no peers, no TUI, loopback only."""
    api_port, node_port = _free_port(), _free_port()
    node_id = "rkllm-test-node"
    config = tmp_path / "topology.json"
    config.write_text(json.dumps({"peers": {node_id: {
        "address": "127.0.0.1", "port": node_port,
        "device_capabilities": {"model": "test", "chip": "test", "memory": 0,
                                "flops": {"fp32": 0, "fp16": 0, "int8": 0}}}}}))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=cache,  # reuse the built simulator
               EXO_HOME=str(tmp_path / "exo-home"), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "exo.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "exo_rkllm.cli", "exo", "--simulate", "--api-host", "127.0.0.1",
                             "--disable-tui", "--node-id", node_id, "--node-host", "127.0.0.1",
                             "--node-port", str(node_port), "--chatgpt-api-port", str(api_port),
                             "--discovery-module", "manual", "--discovery-config-path", str(config),
                             "--default-model", "sim-instant", "--max-generate-tokens", "200"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{api_port}"

    def output() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthcheck", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, output()
                assert time.monotonic() < deadline, "exo did not start:\n" + output()
                time.sleep(0.3)
        yield proc, base, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@needs_exo
def test_exo_simulate_serves_chat_completions_and_stops_cleanly(exo_node):
    proc, base, output = exo_node
    messages = [{"role": "user", "content": "Hello"}]

    reply = json.load(_post(f"{base}/v1/chat/completions", {"model": "sim-instant", "messages": messages}))
    text = reply["choices"][0]["message"]["content"]
    assert text.strip() and "<|im_end|>" not in text
    assert reply["choices"][0]["finish_reason"] == "stop"  # the engine ended the run with the model's EOS

    # Streaming: exo sends one SSE chunk per token; the chunks rebuild the same reply.
    chunks, finish = [], None
    with _post(f"{base}/v1/chat/completions",
               {"model": "sim-instant", "messages": messages, "stream": True}) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            choice = json.loads(line[6:])["choices"][0]
            chunks.append(choice["delta"].get("content", ""))
            finish = choice.get("finish_reason") or finish
    assert len(chunks) > 3 and "".join(chunks) == text and finish == "stop"

    # The next turn of the same conversation is answered too (the engine reuses its KV cache for it).
    turn2 = messages + [{"role": "assistant", "content": text}, {"role": "user", "content": "And then?"}]
    reply2 = json.load(_post(f"{base}/v1/chat/completions", {"model": "sim-instant", "messages": turn2}))
    assert reply2["choices"][0]["message"]["content"].strip()

    # exo's --max-generate-tokens (200 here) caps a longer reply; the run ends there and the node serves on.
    capped = json.load(_post(f"{base}/v1/chat/completions", {"model": "sim-reasoning-instant", "messages": messages}))
    assert capped["choices"][0]["finish_reason"] == "length"
    assert capped["usage"]["completion_tokens"] == 200
    again = json.load(_post(f"{base}/v1/chat/completions", {"model": "sim-instant", "messages": messages}))
    assert again["choices"][0]["message"]["content"] == text

    # /v1/models lists what this node can serve, not exo's whole model zoo.
    listed = {m["id"] for m in json.load(urllib.request.urlopen(f"{base}/v1/models", timeout=30))["data"]}
    assert {"sim-instant", "sim-reasoning-instant"} <= listed and "llama-3.2-1b" not in listed
    with pytest.raises(urllib.error.HTTPError) as err:  # one of exo's own models: refused, not swapped silently
        _post(f"{base}/v1/chat/completions", {"model": "llama-3.2-1b", "messages": messages})
    assert err.value.code == 400 and "Supported models for this engine" in json.load(err.value)["detail"]

    # exo's web UI model list comes from the node's downloader: the simulated models, all present, no network.
    with urllib.request.urlopen(f"{base}/modelpool", timeout=60) as resp:
        pool = {}
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data: {"):
                pool.update(json.loads(line[6:]))
    assert "sim-instant" in pool and all(m["downloaded"] for m in pool.values())

    workers = [pid for pid, cmd in _children(proc.pid) if WORKER_MODULE in cmd]
    assert workers, "the engine's runtime worker should be a child of the exo node"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, output()
    deadline = time.monotonic() + 15
    while any(_alive_worker(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive_worker(pid)], "runtime worker outlived the exo node"
    assert "Traceback" not in output()


@needs_exo
def test_exo_run_model_prints_the_whole_reply(tmp_path):
    """exo's --run-model: the reply printed in full (exo's own version lost tokens that came close together)."""
    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine

    async def expected() -> str:  # the same prompt through the engine directly, the way exo's Node drives it
        from exo_rkllm.exo_adapter.base import Shard

        engine = RKLLMInferenceEngine(None, simulate=True)
        shard = Shard("sim-instant", 0, 27, 28)
        await engine.ensure_shard(shard)
        prompt = engine.tokenizer.apply_chat_template([{"role": "user", "content": "Hello there"}], tokenize=False,
                                                      add_generation_prompt=True)
        result, _ = await engine.infer_prompt("x", shard, prompt)
        tokens = [int(result.item())]
        while tokens[-1] != engine.tokenizer.eos_token_id:
            result, _ = await engine.infer_tensor("x", shard, result)
            tokens.append(int(result.item()))
        await engine.close()
        return await engine.decode(shard, tokens)

    node_id, node_port = "rkllm-run-node", _free_port()
    config = tmp_path / "topology.json"
    config.write_text(json.dumps({"peers": {node_id: {
        "address": "127.0.0.1", "port": node_port,
        "device_capabilities": {"model": "t", "chip": "t", "memory": 0, "flops": {"fp32": 0, "fp16": 0, "int8": 0}}}}}))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=cache, EXO_HOME=str(tmp_path / "exo-home"))
    proc = subprocess.run([sys.executable, "-m", "exo_rkllm.cli", "exo", "--simulate", "--disable-tui",
                           "--node-id", node_id, "--node-host", "127.0.0.1", "--node-port", str(node_port),
                           "--chatgpt-api-port", str(_free_port()), "--discovery-module", "manual",
                           "--discovery-config-path", str(config), "--run-model", "sim-instant",
                           "--prompt", "Hello there"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = proc.stdout.split("Generated response:\n", 1)[1]
    assert printed.startswith(asyncio.run(expected()) + "\n")


def test_exo_rkllm_exo_without_an_option_value_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "exo_rkllm.cli", "exo", "--simulate", "--api-host"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--api-host needs a value" in proc.stderr


@needs_exo
def test_exo_rkllm_exo_never_serves_the_simulator_as_the_real_runtime():
    from exo_rkllm.sim import build_simulator

    proc = subprocess.run([sys.executable, "-m", "exo_rkllm.cli", "exo", "--disable-tui", "--lib", str(build_simulator())],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "simulated runtime, not Rockchip's" in proc.stderr and "--simulate" in proc.stderr

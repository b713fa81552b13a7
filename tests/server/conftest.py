"""Real nodes for the API tests: the serving core with simulated models, aiohttp on a real socket.

Each node runs its event loop in a background thread, so tests drive it with real clients (the
`openai` SDK, raw sockets, aiohttp) from the main thread and can still inspect the core's state.
One core may sit behind several servers with different settings (API key, cluster header...).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from typing import Any, Coroutine

import openai
import pytest

from exo_rkllm.catalog import get_card
from exo_rkllm.core import RuntimeSpec, ServingCore
from exo_rkllm.server import NodeServer, ServerConfig


class LiveCore:
    """A started ServingCore on its own event-loop thread, with servers bound to 127.0.0.1:0."""

    def __init__(self, cards: list, *, queue_depth: int = 8, sampling_policy: str = "strict",
                 env: dict[str, str] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-core", daemon=True)
        self.thread.start()
        self.core = ServingCore(RuntimeSpec.simulated(), cards, queue_depth=queue_depth,
                                sampling_policy=sampling_policy)
        self.servers: list[NodeServer] = []
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            self.call(self.core.start(), timeout=120)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def call(self, coro: Coroutine, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, **config: Any) -> str:
        """Start one more server over this core; returns its base URL."""
        server = NodeServer(self.core, ServerConfig(host="127.0.0.1", port=0, simulated=True, **config))
        self.call(server.start())
        self.servers.append(server)
        return server.url

    def service(self, model_id: str) -> Any:
        return self.core.services[model_id]

    def idle(self) -> bool:
        return all(not s.running and s.queue_length == 0 for s in self.core.services.values())

    def tasks(self) -> set[str]:
        """Names of the tasks alive on the node's loop (to spot leaks)."""
        async def names() -> set[str]:
            me = asyncio.current_task()
            return {t.get_name() for t in asyncio.all_tasks() if t is not me}
        return self.call(names())

    def close(self) -> None:
        for server in self.servers:
            self.call(server.close())
        self.call(self.core.close(), timeout=60)

        async def drain() -> None:  # let the core's last bookkeeping tasks finish before the loop stops
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.call(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def client(url: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=kw.pop("api_key", "unused"), max_retries=0,
                         timeout=kw.pop("timeout", 60), **kw)


@pytest.fixture(scope="package")
def instant() -> LiveCore:
    """Zero-delay chat and reasoning models, a deep queue (concurrency tests)."""
    live = LiveCore([get_card("sim-instant"), get_card("sim-reasoning-instant")], queue_depth=64)
    yield live
    live.close()


@pytest.fixture(scope="package")
def instant_url(instant: LiveCore) -> str:
    return instant.serve()


@pytest.fixture(scope="package")
def slow() -> LiveCore:
    """The chat simulator at Rockchip's Qwen2.5-1.5B pace (61 ms/token), queue depth 1: runs last long
    enough to queue behind, disconnect from and time out."""
    card = dataclasses.replace(get_card("sim-qwen2.5-1.5b"), request_timeout_s=30.0)
    hasty = dataclasses.replace(card, id="sim-slow-timeout", request_timeout_s=1.0)  # for the 504 path
    live = LiveCore([card, hasty], queue_depth=1, env={"RKLLM_SIM_LOAD_MS": "0"})
    yield live
    live.close()


@pytest.fixture(scope="package")
def slow_url(slow: LiveCore) -> str:
    return slow.serve()

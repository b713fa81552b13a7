"""The aiohttp application of a node, and its lifecycle on a socket.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /healthcheck, GET /metrics.
``handler_cancellation`` makes aiohttp cancel a handler as soon as its client disconnects, which is how
an abandoned request leaves the queue or aborts its run within a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web

from exo_rkllm import metrics
from exo_rkllm.server import keys
from exo_rkllm.server.config import ServerConfig
from exo_rkllm.server.handlers import chat_completions, completions
from exo_rkllm.server.middleware import make_auth_middleware, make_error_middleware
from exo_rkllm.server.monitoring import get_model, healthcheck, list_models, metrics_route


def create_app(core: Any, config: ServerConfig) -> web.Application:
    """An application serving ``core``'s loaded models (the core is started and closed by the caller)."""
    app = web.Application(client_max_size=config.max_body_bytes,
                          middlewares=[make_error_middleware(), make_auth_middleware(config.api_key)])
    app[keys.CORE] = core
    app[keys.CONFIG] = config
    app[keys.STARTED_AT] = time.time()
    app[keys.ACTIVE] = set()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id}", get_model)
    app.router.add_get("/healthcheck", healthcheck)
    app.router.add_get("/metrics", metrics_route)
    app.cleanup_ctx.append(_client_session)
    metrics.SIMULATED.set(1 if config.simulated else 0)
    return app


async def _client_session(app: web.Application):
    """One outgoing HTTP session (peer /v1/models) per application."""
    app[keys.CLIENT] = aiohttp.ClientSession()
    yield
    await app[keys.CLIENT].close()


class NodeServer:
    """The app bound to host:port (port 0 = OS-assigned, see ``port`` after ``start``)."""

    def __init__(self, core: Any, config: ServerConfig) -> None:
        self.core = core
        self.config = config
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> int:
        app = create_app(self.core, self.config)
        # shutdown_timeout: on SIGTERM the core is closed first, which ends every stream at once; what is
        # left is a few writes, not minute-long generations (systemd's stop timeout is 30 s).
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        return self.port

    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def drain(self, timeout: float = 3.0) -> None:
        """Shutting down: end every generation in flight now, so each client gets its error (a 503 body or
        an error event then ``[DONE]``) instead of a cut connection; nginx retries what had not started."""
        if self.runner is None:
            return
        active = self.runner.app[keys.ACTIVE]
        for gen in list(active):
            gen.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while active and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

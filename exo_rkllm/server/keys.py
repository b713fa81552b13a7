"""Typed aiohttp application keys shared by the route modules."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from exo_rkllm.server.config import ServerConfig

CORE: web.AppKey[Any] = web.AppKey("exo_rkllm_core", object)
CONFIG: web.AppKey[ServerConfig] = web.AppKey("exo_rkllm_config", ServerConfig)
STARTED_AT: web.AppKey[float] = web.AppKey("exo_rkllm_started_at", float)
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("exo_rkllm_client", aiohttp.ClientSession)
ACTIVE: web.AppKey[set] = web.AppKey("exo_rkllm_active", set)  # generations in flight (shutdown drains them)

# Per-request storage (the model a request resolved to, the status a stream ended with), for metrics.
_RequestKey = getattr(web, "RequestKey", None)  # aiohttp >= 3.13; plain strings before
MODEL: Any = _RequestKey("exo_rkllm_model", str) if _RequestKey else "exo_rkllm_model"
STATUS: Any = _RequestKey("exo_rkllm_status", int) if _RequestKey else "exo_rkllm_status"

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

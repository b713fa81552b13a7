"""OpenAI-compatible HTTP API of an exo-rkllm node (aiohttp), over the serving core.

Importing the package is cheap (the CLI reads ``config`` for its defaults); the app loads on use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NodeServer", "create_app", "ServerConfig", "DEFAULT_HOST", "DEFAULT_PORT"]


def __getattr__(name: str) -> Any:
    if name in ("NodeServer", "create_app"):
        from exo_rkllm.server import app

        return getattr(app, name)
    if name in ("ServerConfig", "DEFAULT_HOST", "DEFAULT_PORT"):
        from exo_rkllm.server import config

        return getattr(config, name)
    raise AttributeError(name)

"""The HTTP layer's settings (what `exo-rkllm serve` flags set)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PORT = 52415          # exo's ChatGPT API port: clients and the nginx config expect it
DEFAULT_HOST = "127.0.0.1"    # safe default; a node in a rack is started with --host 0.0.0.0 (and --api-key)
DEFAULT_MAX_BODY = 1 << 20    # 1 MiB: far above any context these models hold (4k-16k tokens)
API_KEY_ENV = "EXO_RKLLM_API_KEY"


@dataclass
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    reasoning_format: str = "separate"          # "separate" | "tags"; a request may override
    reasoning_budget: int | None = None         # default thought budget in tokens (card value wins if set)
    auto_model: str = "auto"                    # model name that picks the quick or the reasoning model
    auto_keywords: tuple[str, ...] = ()         # words in the last user message that select the reasoning model
    cluster_header: bool = False                # honour X-RKLLM-Cluster on /v1/models (peer union)
    cluster_timeout_s: float = 2.0
    simulated: bool = False

    @staticmethod
    def api_key_from_env() -> str | None:
        return os.environ.get(API_KEY_ENV) or None

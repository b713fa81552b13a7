"""/healthcheck, /metrics and /v1/models.

/v1/models lists this node's models; behind the balancer (``--cluster-header`` and a request header
``X-RKLLM-Cluster: host:port,...`` set by the nginx config) it also asks each listed peer (header
``X-RKLLM-Cluster: local``, short timeout, failures skipped) and returns the union, so a client sees
every model of the rack whichever node answered.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from exo_rkllm import metrics
from exo_rkllm.ops.board import read_frequencies, read_npu_load
from exo_rkllm.server import keys
from exo_rkllm.server.errors import bad_request, model_not_found
from exo_rkllm.server.routing import auto_description

CLUSTER_HEADER = "X-RKLLM-Cluster"
MAX_PEERS = 32
_PEER_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$")


async def healthcheck(request: web.Request) -> web.Response:
    core = request.app[keys.CORE]
    config = request.app[keys.CONFIG]
    return web.json_response({"status": "ok", "models": list(core.services), "simulated": config.simulated})


async def metrics_route(request: web.Request) -> web.Response:
    for core_id, load in read_npu_load().items():
        metrics.NPU_LOAD.labels(core=core_id).set(load)
    for unit, hz in read_frequencies().items():
        metrics.FREQUENCY.labels(unit=unit).set(hz)
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def local_models(request: web.Request) -> list[dict[str, Any]]:
    core = request.app[keys.CORE]
    config = request.app[keys.CONFIG]
    created = int(request.app[keys.STARTED_AT])
    data = []
    for model_id, svc in core.services.items():
        card = svc.card
        data.append({"id": model_id, "object": "model", "created": created, "owned_by": "exo-rkllm",
                     "name": getattr(card, "pretty_name", model_id),
                     "context_length": getattr(card, "context_length", None),
                     "reasoning": bool(getattr(card, "reasoning", False)),
                     "simulated": bool(getattr(card, "simulated", False))})
    desc = auto_description(core, config)
    if desc is not None and config.auto_model not in core.services:
        data.append({"id": config.auto_model, "object": "model", "created": created, "owned_by": "exo-rkllm",
                     "name": f"Automatic choice ({desc})"})
    return data


def parse_peers(header: str) -> list[str]:
    peers = [p.strip() for p in header.split(",") if p.strip()]
    if len(peers) > MAX_PEERS:
        raise bad_request(f"{CLUSTER_HEADER} lists {len(peers)} peers; at most {MAX_PEERS}.")
    for p in peers:
        m = _PEER_RE.match(p)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise bad_request(f"{CLUSTER_HEADER} entry {p[:80]!r} is not host:port.")
    return peers


async def _peer_models(session: aiohttp.ClientSession, peer: str, auth: str | None,
                       timeout: float) -> list[dict[str, Any]]:
    headers = {CLUSTER_HEADER: "local"}
    if auth:
        headers["Authorization"] = auth
    try:
        async with session.get(f"http://{peer}/v1/models", headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status != 200:
                return []
            body = await resp.json(content_type=None)
            data = body.get("data") if isinstance(body, dict) else None
            return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)] if data else []
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return []


async def get_model(request: web.Request) -> web.Response:
    """GET /v1/models/{id} (``client.models.retrieve``): this node's models only."""
    model_id = request.match_info["model_id"]
    for m in local_models(request):
        if m["id"] == model_id:
            return web.json_response(m)
    raise model_not_found(model_id, list(request.app[keys.CORE].services))


async def list_models(request: web.Request) -> web.Response:
    config = request.app[keys.CONFIG]
    data = local_models(request)
    header = request.headers.get(CLUSTER_HEADER, "")
    if config.cluster_header and header and header != "local":
        peers = parse_peers(header)
        session: aiohttp.ClientSession = request.app[keys.CLIENT]
        results = await asyncio.gather(*(_peer_models(session, p, request.headers.get("Authorization"),
                                                      config.cluster_timeout_s) for p in peers))
        seen = {m["id"] for m in data}
        for models in results:
            for m in models:
                if m["id"] not in seen:
                    seen.add(m["id"])
                    data.append(m)
    return web.json_response({"object": "list", "data": data})


"""Middlewares: OpenAI error bodies for every failure, API-key check, request metrics.

Any exception becomes ``{"error": {...}}`` with its status (aiohttp's own 404/405/413 included), so
a client never gets an HTML page or a bare 500; unexpected errors are logged with their traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Awaitable, Callable

from aiohttp import web

from exo_rkllm import metrics
from exo_rkllm.server import keys
from exo_rkllm.server.errors import APIError

log = logging.getLogger("exo_rkllm.server")
access_log = logging.getLogger("exo_rkllm.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthcheck"})


def _route_label(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "unmatched"
    return resource.canonical


def _http_exception_error(exc: web.HTTPException, request: web.Request) -> APIError:
    status = exc.status
    if status == 404:
        return APIError(404, f"No route {request.method} {request.path}. Routes: POST /v1/chat/completions, "
                             "POST /v1/completions, GET /v1/models, GET /healthcheck, GET /metrics.",
                        code="not_found")
    if status == 405:
        return APIError(405, f"{request.method} is not allowed on {request.path}; "
                             f"allowed: {exc.headers.get('Allow', '?')}.", code="method_not_allowed")
    if status == 413:
        limit = request.app[keys.CONFIG].max_body_bytes
        return APIError(413, f"The request body is larger than this node's limit of {limit} bytes. Send a "
                             "shorter conversation, or start the node with a larger --max-body-bytes.",
                        code="request_too_large")
    return APIError(status, exc.text or exc.reason, code=None)


def make_error_middleware() -> Callable:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500
        started = time.monotonic()
        try:
            resp = await handler(request)
            status = request.get(keys.STATUS, resp.status)
            return resp
        except APIError as exc:
            status = exc.status
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                status = exc.status
                raise
            err = _http_exception_error(exc, request)
            status = err.status
            return err.response()
        except asyncio.CancelledError:
            status = 499  # client closed the connection
            raise
        except (ConnectionResetError, ConnectionError):
            status = 499
            raise
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            status = 500
            return APIError(500, "Internal error in the exo-rkllm node (logged with its traceback). Retry; "
                                 "if it persists, report the node's log.", code="internal_error").response()
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %s %s %.3fs %s", request.remote, request.method, request.path, status,
                                time.monotonic() - started, request.get(keys.MODEL, "-"))
            route = _route_label(request)
            if route.startswith("/v1/") or route == "unmatched":
                metrics.REQUESTS.labels(model=request.get(keys.MODEL, ""), route=route, status=str(status)).inc()

    return errors


def make_auth_middleware(api_key: str | None) -> Callable:
    """When a key is set, every route but /healthcheck needs ``Authorization: Bearer <key>``."""
    expected = f"Bearer {api_key}".encode() if api_key else b""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if api_key and request.path not in OPEN_PATHS:
            got = request.headers.get("Authorization", "")
            if not got:
                raise APIError(401, "This node requires an API key: send the header "
                                    "`Authorization: Bearer <key>` (the key the node was started with, "
                                    "--api-key or $EXO_RKLLM_API_KEY).", code="missing_api_key")
            if not hmac.compare_digest(got.encode("utf-8", "replace"), expected):
                raise APIError(401, "Incorrect API key. Send `Authorization: Bearer <key>` with the key the node "
                                    "was started with.", code="invalid_api_key")
        return await handler(request)

    return auth

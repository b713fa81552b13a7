"""OpenAI-style API errors: every failure becomes ``{"error": {message, type, param, code}}`` with its status.

SDKs (openai-python, LangChain) pick the exception class from the status and read type/code/param, so
both must be right; the message always says the cause and the fix.
"""

from __future__ import annotations

import json
import math

from aiohttp import web


class APIError(Exception):
    """An error the client should see, with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or default_type(status)
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers, dumps=json.dumps)


def default_type(status: int) -> str:
    """The OpenAI error type for a status: the SDKs and clients branch on it."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str, available: list[str]) -> APIError:
    """404, not 503: a balancer must not mark a healthy node failed because it lacks one model."""
    shown = ", ".join(available) if available else "(none)"
    return APIError(404, f"The model {model!r} is not served by this node; it serves: {shown}. "
                         f"Send one of those ids (GET /v1/models lists them) or start the node with "
                         f"`exo-rkllm serve --model {model}` if it is installed here.",
                    param="model", code="model_not_found")


def from_core_error(exc: Exception) -> APIError:
    """Map a serving-core error (``.message``, ``.fix``, ``.status``) to an API error."""
    from exo_rkllm.core import errors as core_errors

    message = getattr(exc, "message", str(exc))
    fix = getattr(exc, "fix", "")
    text = f"{message} {fix}".strip()
    status = int(getattr(exc, "status", 500))
    if isinstance(exc, core_errors.QueueFullError):
        retry = max(1, math.ceil(float(getattr(exc, "retry_after_s", 1.0) or 1.0)))
        return APIError(503, text, code="queue_full", headers={"Retry-After": str(retry)})
    if isinstance(exc, core_errors.ContextOverflowError):
        return APIError(400, text, param="messages", code="context_length_exceeded")
    if isinstance(exc, core_errors.SamplingMismatchError):
        requested = getattr(exc, "requested", {}) or {}
        param = next(iter(requested), None)
        return APIError(400, text, param=param, code="sampling_not_loaded")
    if isinstance(exc, core_errors.RuntimeUnavailableError):
        return APIError(503, text, code="runtime_unavailable")
    if isinstance(exc, core_errors.WorkerCrashedError):
        return APIError(500, text, code="worker_crashed")
    invalid_cls = getattr(core_errors, "InvalidRequestError", None)
    if invalid_cls is not None and isinstance(exc, invalid_cls):
        return APIError(400, text, code="invalid_request")
    timeout_cls = getattr(core_errors, "RequestTimeoutError", None)
    if timeout_cls is not None and isinstance(exc, timeout_cls):
        return APIError(504, text, code="request_timeout")
    return APIError(status if 400 <= status < 600 else 500, text, code="runtime_error")


def timeout_error(seconds: float | None) -> APIError:
    limit = f" of {seconds:g} s" if seconds else ""
    return APIError(504, f"The request exceeded its timeout{limit} (queue wait included) before it finished. "
                         f"Ask for fewer tokens (max_tokens), a smaller reasoning budget, or retry when the node is "
                         f"less busy.", code="request_timeout")

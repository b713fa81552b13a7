"""Which loaded model serves a request: the name asked for, or the "auto" rule.

Auto model (issue 6): the quick (non-reasoning) model for ordinary chat; the reasoning model when the
request asks for reasoning (``reasoning_effort`` other than "none", a reasoning budget, or one of the
configured keywords in the last user message). A node lacking the needed model answers 404
``model_not_found`` so the balancer tries the next node.
"""

from __future__ import annotations

from typing import Any

from exo_rkllm.server.config import ServerConfig
from exo_rkllm.server.errors import APIError, model_not_found


def wants_reasoning(params: Any, config: ServerConfig) -> bool:
    effort = getattr(params, "reasoning_effort", None)
    if effort is not None and effort not in ("none", "minimal"):
        return True
    if getattr(params, "reasoning_budget", None):
        return True
    if config.auto_keywords:
        messages = getattr(params, "messages", None) or []
        users = [m["content"] for m in messages if m["role"] == "user"]
        text = (users[-1] if users else str(getattr(params, "prompt", ""))).lower()
        return any(k.lower() in text for k in config.auto_keywords)
    return False


def resolve_service(core: Any, params: Any, config: ServerConfig) -> tuple[Any, str]:
    """(ModelService, model id) for the request, or a 404 naming what this node serves."""
    services = core.services
    name = params.model
    if name == config.auto_model:
        reasoning = wants_reasoning(params, config)
        for model_id, svc in services.items():
            if bool(getattr(svc.card, "reasoning", False)) == reasoning:
                return svc, model_id
        kind = "reasoning" if reasoning else "quick (non-reasoning)"
        raise APIError(404, f"Model {name!r} picks a {kind} model for this request, and this node serves none "
                            f"(it serves: {', '.join(services) or '(none)'}). Start a node with such a model, "
                            "or name a model explicitly.", param="model", code="model_not_found")
    svc = services.get(name)
    if svc is None:
        raise model_not_found(name, list(services))
    return svc, name


def auto_description(core: Any, config: ServerConfig) -> str | None:
    """What "auto" resolves to on this node, for /v1/models; None when no model is loaded."""
    quick = next((m for m, s in core.services.items() if not getattr(s.card, "reasoning", False)), None)
    deep = next((m for m, s in core.services.items() if getattr(s.card, "reasoning", False)), None)
    if quick is None and deep is None:
        return None
    return f"quick: {quick or '(none here)'}; reasoning: {deep or '(none here)'}"

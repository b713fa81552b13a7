"""Request bodies -> typed parameters, or a 400 that names the field and the fix.

Everything a client sends is checked here before it reaches the tokenizer or the core: types, ranges,
unsupported features (tools, n > 1, logprobs) and strings that cannot be valid UTF-8.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from exo_rkllm.server.errors import bad_request
from exo_rkllm.server.reasoning import FORMAT_ALIASES

MAX_STOPS = 4
MAX_STOP_LEN = 256
MAX_MODEL_NAME = 128
ROLES = ("system", "developer", "user", "assistant")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")


@dataclass
class CommonParams:
    """Fields shared by chat and text completions."""

    model: str
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    sampling: dict[str, float] | None = None
    seed: int | None = None
    reasoning_format: str | None = None
    reasoning_budget: int | None = None
    reasoning_effort: str | None = None


@dataclass
class ChatParams(CommonParams):
    messages: list[dict[str, str]] = field(default_factory=list)
    template_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompletionParams(CommonParams):
    prompt: str | list[int] = ""


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Strict JSON: valid UTF-8, no NaN/Infinity, an object at the top."""
    if not raw:
        raise bad_request("The request body is empty; send a JSON object such as "
                          '{"model": "...", "messages": [{"role": "user", "content": "hi"}]}.')
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"The request body is not valid UTF-8 (bad byte at offset {exc.start}); "
                          "encode the JSON as UTF-8.") from None

    def _reject_constant(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"The request body is not valid JSON ({exc}); check quoting and commas.") from None
    if not isinstance(body, dict):
        raise bad_request(f"The request body must be a JSON object, not {type(body).__name__}.")
    return body


def _check_text(value: str, param: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{param} contains an unpaired UTF-16 surrogate (for example \\ud800), which is not "
                          "valid Unicode text; send real characters.", param=param) from None
    return value


def _int(body: dict, key: str, *, lo: int, hi: int, param: str | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise bad_request(f"{key} must be an integer, not {json.dumps(v)[:40]}.", param=param or key)
    v = int(v)
    if not lo <= v <= hi:
        raise bad_request(f"{key} must be between {lo} and {hi}, not {v}.", param=param or key)
    return v


def _float(body: dict, key: str, *, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad_request(f"{key} must be a number, not {json.dumps(v)[:40]}.", param=key)
    if not lo <= v <= hi:
        raise bad_request(f"{key} must be between {lo:g} and {hi:g}, not {v:g}.", param=key)
    return float(v)


def _bool(body: dict, key: str) -> bool:
    v = body.get(key)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise bad_request(f"{key} must be true or false, not {json.dumps(v)[:40]}.", param=key)
    return v


def _model(body: dict) -> str:
    model = body.get("model")
    if model is None:
        raise bad_request("model is required; GET /v1/models lists the models this node serves.", param="model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise bad_request(f"model must be a non-empty string of at most {MAX_MODEL_NAME} characters.",
                          param="model")
    if not model.isprintable():
        raise bad_request("model contains control characters; send a model id from GET /v1/models.",
                          param="model")
    return _check_text(model, "model")


def _stop(body: dict) -> list[str]:
    v = body.get("stop")
    if v is None:
        return []
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_request("stop must be a string or a list of strings.", param="stop")
    if len(stops) > MAX_STOPS:
        raise bad_request(f"stop accepts at most {MAX_STOPS} sequences, got {len(stops)}.", param="stop")
    for s in stops:
        if len(s) > MAX_STOP_LEN:
            raise bad_request(f"each stop sequence must be at most {MAX_STOP_LEN} characters.", param="stop")
        _check_text(s, "stop")
    return [s for s in stops if s]


def _unsupported(body: dict) -> None:
    """Features the RKLLM 1.2.3 node cannot honour get a clear 400 instead of being ignored."""
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise bad_request(f"n={json.dumps(n)[:20]} is not supported: this node generates exactly one choice per "
                          "request (one NPU run). Omit n or send n=1, and send several requests for more choices.",
                          param="n")
    for key in ("tools", "functions"):
        if body.get(key):
            raise bad_request(f"{key} (function calling) is not supported yet by exo-rkllm; send the request "
                              f"without {key!r}, or describe the functions in the system prompt.",
                              param=key, code="tools_not_supported")
    tc = body.get("tool_choice", body.get("function_call"))
    if tc not in (None, "none", "auto"):
        raise bad_request("tool_choice is not supported yet by exo-rkllm (no function calling); omit it.",
                          param="tool_choice", code="tools_not_supported")
    if body.get("logprobs") not in (None, False, 0) or body.get("top_logprobs") not in (None, 0):
        raise bad_request("logprobs are not supported: RKLLM 1.2.3 streams tokens without their probabilities. "
                          "Omit logprobs/top_logprobs.", param="logprobs")
    if body.get("logit_bias"):
        raise bad_request("logit_bias is not supported: RKLLM 1.2.3 samples on the NPU without per-request "
                          "biases. Omit logit_bias.", param="logit_bias")
    rf = body.get("response_format")
    if rf is not None and not (isinstance(rf, dict) and rf.get("type") in ("text", None)):
        raise bad_request("response_format other than {\"type\": \"text\"} (JSON mode, JSON schema) is not "
                          "supported: the runtime has no constrained decoding. Ask for JSON in the prompt.",
                          param="response_format")


def _common(body: dict, cls: type, extra: dict[str, Any]) -> Any:
    _unsupported(body)
    stream = _bool(body, "stream")
    so = body.get("stream_options")
    include_usage = False
    if so is not None:
        if not isinstance(so, dict):
            raise bad_request("stream_options must be an object such as {\"include_usage\": true}.",
                              param="stream_options")
        include_usage = _bool(so, "include_usage")
    mt = _int(body, "max_completion_tokens", lo=1, hi=1_000_000)
    if mt is None:
        mt = _int(body, "max_tokens", lo=1, hi=1_000_000)
    sampling: dict[str, float] = {}
    for key, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        v = _float(body, key, lo=lo, hi=hi)
        if v is not None:
            sampling[key] = v
    for key in ("frequency_penalty", "presence_penalty"):
        _float(body, key, lo=-2.0, hi=2.0)
    seed = _int(body, "seed", lo=-(2**63), hi=2**64 - 1)
    rfmt = body.get("reasoning_format")
    if rfmt is not None:
        if not isinstance(rfmt, str) or rfmt not in FORMAT_ALIASES:
            raise bad_request(f"reasoning_format must be \"separate\" (thinking in reasoning_content) or \"tags\" "
                              f"(<think>...</think> kept in content), not {json.dumps(rfmt)[:40]}.",
                              param="reasoning_format")
        rfmt = FORMAT_ALIASES[rfmt]
    budget = _int(body, "reasoning_budget", lo=0, hi=1_000_000)
    if budget is None:
        budget = _int(body, "max_reasoning_tokens", lo=0, hi=1_000_000)
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise bad_request(f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, "
                          f"not {json.dumps(effort)[:40]}.", param="reasoning_effort")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad_request("user must be a string.", param="user")
    return cls(model=_model(body), stream=stream, include_usage=include_usage and stream, max_tokens=mt,
               stop=_stop(body), sampling=sampling or None, seed=seed, reasoning_format=rfmt,
               reasoning_budget=budget, reasoning_effort=effort, **extra)


def _content_text(content: Any, i: int) -> str:
    param = f"messages[{i}].content"
    if content is None:
        return ""
    if isinstance(content, str):
        return _check_text(content, param)
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if isinstance(part, str):
                parts.append(part)
                continue
            if not isinstance(part, dict):
                raise bad_request(f"{param}[{j}] must be an object such as {{\"type\": \"text\", \"text\": \"...\"}}.",
                                  param=param)
            if part.get("type") != "text":
                raise bad_request(f"{param}[{j}] has type {json.dumps(part.get('type'))[:30]}: only text parts are "
                                  "supported (the RKLLM models served here are text-only).", param=param)
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"{param}[{j}].text must be a string.", param=param)
            parts.append(text)
        return _check_text("".join(parts), param)
    raise bad_request(f"{param} must be a string or a list of text parts, not {type(content).__name__}.",
                      param=param)


def parse_messages(messages: Any) -> list[dict[str, str]]:
    """Normalised messages: role and string content; assistant reasoning kept for later stripping."""
    if messages is None:
        raise bad_request("messages is required: a non-empty list such as [{\"role\": \"user\", \"content\": "
                          "\"hi\"}].", param="messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list of {\"role\", \"content\"} objects.", param="messages")
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad_request(f"messages[{i}] must be an object with role and content.", param="messages")
        role = m.get("role")
        if role in ("tool", "function") or m.get("tool_calls") or m.get("function_call"):
            raise bad_request(f"messages[{i}] is a tool message or carries tool_calls: function calling is not "
                              "supported yet by exo-rkllm. Send plain user/assistant/system messages.",
                              param="messages", code="tools_not_supported")
        if role not in ROLES:
            raise bad_request(f"messages[{i}].role must be one of {', '.join(ROLES)}, not "
                              f"{json.dumps(role)[:30]}.", param="messages")
        if "content" not in m and role != "assistant":
            raise bad_request(f"messages[{i}] has no content.", param="messages")
        msg = {"role": "system" if role == "developer" else role, "content": _content_text(m.get("content"), i)}
        out.append(msg)
    if all(m["role"] in ("system",) for m in out):
        raise bad_request("messages holds only system messages; add a user message.", param="messages")
    return out


def _template_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """vLLM-style ``chat_template_kwargs`` (e.g. Qwen3's {"enable_thinking": false}): simple values only."""
    kw = body.get("chat_template_kwargs")
    if kw is None:
        return {}
    if not isinstance(kw, dict) or len(kw) > 16:
        raise bad_request("chat_template_kwargs must be an object of at most 16 entries, such as "
                          '{"enable_thinking": false}.', param="chat_template_kwargs")
    for k, v in kw.items():
        if not k.isidentifier() or k in ("messages", "tokenize", "add_generation_prompt", "tools", "documents"):
            raise bad_request(f"chat_template_kwargs key {k[:40]!r} is not allowed.", param="chat_template_kwargs")
        if not isinstance(v, (bool, int, float, str)) or (isinstance(v, str) and len(v) > 1000):
            raise bad_request(f"chat_template_kwargs[{k!r}] must be a boolean, number or short string.",
                              param="chat_template_kwargs")
    return dict(kw)


def parse_chat(body: dict[str, Any]) -> ChatParams:
    messages = parse_messages(body.get("messages"))
    return _common(body, ChatParams, {"messages": messages, "template_kwargs": _template_kwargs(body)})


def parse_completion(body: dict[str, Any]) -> CompletionParams:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        if not prompt:
            raise bad_request("prompt must not be empty.", param="prompt")
        _check_text(prompt, "prompt")
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                      for t in prompt):
        if any(t < 0 or t >= 2**31 for t in prompt):
            raise bad_request("prompt token ids must be non-negative 32-bit integers.", param="prompt")
    else:
        raise bad_request("prompt must be a non-empty string or a list of token ids (one prompt per request; "
                          "batches of prompts are not supported).", param="prompt")
    for key, fine in (("echo", lambda v: v in (None, False)), ("suffix", lambda v: v in (None, "")),
                      ("best_of", lambda v: v is None or (v == 1 and not isinstance(v, bool)))):
        if not fine(body.get(key)):
            raise bad_request(f"{key} is not supported by this node; omit it.", param=key)
    return _common(body, CompletionParams, {"prompt": prompt})


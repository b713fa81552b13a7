"""The two generation routes: /v1/chat/completions and /v1/completions.

Both: parse -> pick the model -> build the prompt -> submit -> stream SSE or collect one body. The
core's stream is cancelled in every exit path (client gone, error, stop string), so an abandoned
request leaves the queue or has its run aborted at once.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

from aiohttp import web

from exo_rkllm.server import keys
from exo_rkllm.server.config import ServerConfig
from exo_rkllm.server.errors import APIError, bad_request
from exo_rkllm.server.formats import ChatFormat, TextFormat
from exo_rkllm.server.generation import Generation
from exo_rkllm.server.prompt import Prompt, build_chat_prompt, build_text_prompt, check_context
from exo_rkllm.server.reasoning import ReasoningSplitter
from exo_rkllm.server.routing import resolve_service
from exo_rkllm.server.sse import SSEWriter
from exo_rkllm.server.stops import StopMatcher
from exo_rkllm.server.validation import CommonParams, parse_chat, parse_completion, parse_json_body


async def read_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # client_max_size -> 413 (turned into an error body by the middleware)
    return parse_json_body(raw)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    core, config = request.app[keys.CORE], request.app[keys.CONFIG]
    params = parse_chat(await read_body(request))
    svc, model_id = resolve_service(core, params, config)
    request[keys.MODEL] = model_id
    prompt = build_chat_prompt(svc.tokenizer, svc.card, params.messages, params.template_kwargs)
    fmt = _reasoning_format(params, config)
    reasoning_field = bool(getattr(svc.card, "reasoning", False)) and fmt == "separate"
    out = ChatFormat(model_id, params.include_usage, reasoning_field)
    return await _generate(request, svc, params, prompt, out, fmt, config)


async def completions(request: web.Request) -> web.StreamResponse:
    core, config = request.app[keys.CORE], request.app[keys.CONFIG]
    params = parse_completion(await read_body(request))
    svc, model_id = resolve_service(core, params, config)
    request[keys.MODEL] = model_id
    vocab = len(svc.tokenizer) if hasattr(svc.tokenizer, "__len__") else None
    prompt = build_text_prompt(svc.tokenizer, svc.card, params.prompt, vocab)
    out = TextFormat(model_id, params.include_usage)
    return await _generate(request, svc, params, prompt, out, "tags", config, split=False)


def _reasoning_format(params: CommonParams, config: ServerConfig) -> str:
    return params.reasoning_format or config.reasoning_format


def _request_for(svc: Any, params: CommonParams, prompt: Prompt, config: ServerConfig, rid: str) -> Any:
    from exo_rkllm.core import GenerationRequest

    card = svc.card
    check_context(prompt, card)
    room = int(card.context_length) - len(prompt.ids)
    if params.max_tokens is not None and params.max_tokens > int(card.context_length):
        raise bad_request(f"max_tokens={params.max_tokens} exceeds model {card.id!r}'s context of "
                          f"{card.context_length} tokens; ask for at most {room} tokens with this prompt.",
                          param="max_tokens")
    max_new = min(params.max_tokens or int(card.max_new_tokens), room)
    budget = None
    if getattr(card, "reasoning", False):
        budget = params.reasoning_budget
        if budget is None:
            budget = getattr(card, "reasoning_budget", None) or config.reasoning_budget
    return GenerationRequest(request_id=rid, prompt_ids=prompt.ids, max_new_tokens=max_new,
                             timeout_s=float(card.request_timeout_s) if card.request_timeout_s else None,
                             reasoning_budget=budget, sampling=params.sampling)


async def _generate(request: web.Request, svc: Any, params: CommonParams, prompt: Prompt, out: Any,
                    fmt: str, config: ServerConfig, *, split: bool = True) -> web.StreamResponse:
    card = svc.card
    greq = _request_for(svc, params, prompt, config, out.id)
    reasoning = split and bool(getattr(card, "reasoning", False))
    splitter = ReasoningSplitter(card.think_start if reasoning else None, card.think_end if reasoning else None,
                                 opened_by_template=prompt.think_opened, fmt=fmt)
    gen = Generation(svc, greq, splitter, StopMatcher(params.stop))
    gen.submit()
    active = request.app[keys.ACTIVE]
    active.add(gen)
    try:
        if params.stream:
            return await _stream(request, gen, out)
        return await _collect(gen, out)
    finally:
        active.discard(gen)
        gen.cancel()


async def _collect(gen: Generation, out: Any) -> web.Response:
    reasoning: list[str] = []
    content: list[str] = []
    async with aclosing(gen.deltas()) as deltas:
        async for batch in deltas:
            for delta in batch:
                reasoning.append(delta.reasoning)
                content.append(delta.content)
    assert gen.outcome is not None
    return web.json_response(out.full("".join(reasoning), "".join(content), gen.outcome), dumps=json.dumps)


async def _stream(request: web.Request, gen: Generation, out: Any) -> web.StreamResponse:
    sse = SSEWriter(request)
    first = True
    try:
        async with aclosing(gen.deltas()) as deltas:
            async for batch in deltas:
                chunks = [chunk for delta in batch for chunk in out.delta_chunks(delta)]
                if first:
                    chunks = out.first_chunks() + chunks
                    first = False
                if chunks:
                    await sse.send_raw(chunks)
        assert gen.outcome is not None
        await sse.send_raw((out.first_chunks() if first else []) + out.final_chunks(gen.outcome))
        return await sse.done()
    except APIError as exc:
        if not sse.started:
            raise  # nothing sent yet: the real status code (a balancer may retry elsewhere)
        request[keys.STATUS] = exc.status
        try:
            await sse.send_error(exc.body())
        except ConnectionError:
            request[keys.STATUS] = 499
        assert sse.response is not None
        return sse.response
    except (ConnectionResetError, ConnectionError):
        gen.cancel()  # the client went away mid-write
        request[keys.STATUS] = 499
        return sse.response or web.Response(status=499)


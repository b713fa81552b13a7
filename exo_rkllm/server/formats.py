"""Response shapes of /v1/chat/completions and /v1/completions (streamed chunks and whole bodies).

Chunks are pre-serialised from a fixed prefix so a token costs one ``json.dumps`` of its text: the
per-token overhead budget of the node is a few hundred microseconds.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from exo_rkllm.server.generation import Delta, Outcome


def usage_body(outcome: Outcome) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt_tokens": outcome.prompt_tokens,
                            "completion_tokens": outcome.completion_tokens,
                            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}
    if outcome.reasoning_tokens:
        body["completion_tokens_details"] = {"reasoning_tokens": outcome.reasoning_tokens}
    return body


class ChatFormat:
    """chat.completion / chat.completion.chunk; one id and created per response, role-first delta."""

    object_full = "chat.completion"

    def __init__(self, model: str, include_usage: bool, reasoning_field: bool) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.reasoning_field = reasoning_field
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model}
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        self._usage_tail = ',"usage":null}' if include_usage else "}"

    def _chunk(self, delta_json: str, finish: str | None = None) -> str:
        fin = "null" if finish is None else json.dumps(finish)
        return (f'{self._head},"choices":[{{"index":0,"delta":{delta_json},"logprobs":null,'
                f'"finish_reason":{fin}}}]{self._usage_tail}')

    def first_chunks(self) -> list[str]:
        return [self._chunk('{"role":"assistant","content":""}')]

    def delta_chunks(self, delta: Delta) -> list[str]:
        out = []
        if delta.reasoning:
            out.append(self._chunk('{"reasoning_content":' + json.dumps(delta.reasoning) + "}"))
        if delta.content:
            out.append(self._chunk('{"content":' + json.dumps(delta.content) + "}"))
        return out

    def final_chunks(self, outcome: Outcome) -> list[str]:
        out = [self._chunk("{}", outcome.finish_reason)]
        if self.include_usage:
            out.append(f'{self._head},"choices":[],"usage":{json.dumps(usage_body(outcome))}}}')
        return out

    def full(self, reasoning: str, content: str, outcome: Outcome) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if self.reasoning_field:
            message["reasoning_content"] = reasoning or None
        return {"id": self.id, "object": self.object_full, "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": outcome.finish_reason}],
                "usage": usage_body(outcome)}


class TextFormat:
    """text_completion for /v1/completions (both streamed and whole)."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        head = {"id": self.id, "object": "text_completion", "created": self.created, "model": model}
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        self._usage_tail = ',"usage":null}' if include_usage else "}"

    def _chunk(self, text: str, finish: str | None = None) -> str:
        fin = "null" if finish is None else json.dumps(finish)
        return (f'{self._head},"choices":[{{"index":0,"text":{json.dumps(text)},"logprobs":null,'
                f'"finish_reason":{fin}}}]{self._usage_tail}')

    def first_chunks(self) -> list[str]:
        return []

    def delta_chunks(self, delta: Delta) -> list[str]:
        text = delta.reasoning + delta.content
        return [self._chunk(text)] if text else []

    def final_chunks(self, outcome: Outcome) -> list[str]:
        out = [self._chunk("", outcome.finish_reason)]
        if self.include_usage:
            out.append(f'{self._head},"choices":[],"usage":{json.dumps(usage_body(outcome))}}}')
        return out

    def full(self, reasoning: str, content: str, outcome: Outcome) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "text": reasoning + content, "logprobs": None,
                             "finish_reason": outcome.finish_reason}],
                "usage": usage_body(outcome)}

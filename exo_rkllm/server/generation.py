"""One generation as the HTTP layer sees it: submit to the core, then text deltas per channel.

Pieces go through the reasoning splitter, then the stop matcher (answer text only); a matched stop
aborts the run at once so the NPU is free for the next request. Whatever ends the iteration (normal
end, error, client gone) cancels the core's stream, so nothing is left running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

from exo_rkllm.server.errors import APIError, from_core_error, timeout_error
from exo_rkllm.server.reasoning import ReasoningSplitter
from exo_rkllm.server.stops import StopMatcher


@dataclass
class Delta:
    reasoning: str = ""
    content: str = ""

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content)


@dataclass
class Outcome:
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


class Generation:
    """Drive one core request; iterate ``deltas()`` once, then read ``outcome``."""

    def __init__(self, service: Any, request: Any, splitter: ReasoningSplitter, stops: StopMatcher) -> None:
        self.service = service
        self.request = request
        self.splitter = splitter
        self.stops = stops
        self.tags = splitter.fmt == "tags"
        self.stream: Any = None
        self.outcome: Outcome | None = None
        self._tokens = 0
        self._reasoning_tokens = 0
        self._stopped = False

    def submit(self) -> None:
        """Queue the request; QueueFull/SamplingMismatch/... become API errors before any byte is sent."""
        from exo_rkllm.core.errors import CoreError

        try:
            self.stream = self.service.submit(self.request)
        except CoreError as exc:
            raise from_core_error(exc) from None

    def cancel(self) -> None:
        if self.stream is not None:
            self.stream.cancel()

    async def deltas(self) -> AsyncIterator[list[Delta]]:
        """Per batch of pieces the core had ready: one non-empty Delta per piece that completed text.

        Every token stays its own delta (its own SSE event: clients and proxies see a stream), while
        the caller writes a whole batch in one socket write.
        """
        from exo_rkllm.core.errors import CoreError

        stream = self.stream
        try:
            while True:
                try:
                    batch = await stream.next_batch()
                except CoreError as exc:
                    raise from_core_error(exc) from None
                if not batch:
                    break
                out: list[Delta] = []
                for piece in batch:
                    self._tokens += 1
                    if self.splitter.in_reasoning:
                        self._reasoning_tokens += 1
                    delta = Delta()
                    self._route(self.splitter.feed(piece.text), delta)
                    if delta:
                        out.append(delta)
                    if self.stops.matched is not None:
                        break
                if out:
                    yield out
                if self.stops.matched is not None:
                    self._stopped = True
                    stream.cancel()  # free the NPU now: the rest would be thrown away
                    break
            tail = Delta()
            if not self._stopped:
                self._route(self.splitter.flush(), tail)
                tail.content += self.stops.flush()
            if tail:
                yield [tail]
            self.outcome = self._finish()
        finally:
            stream.cancel()  # no-op when finished; aborts the run when the consumer went away

    def _route(self, parts: list[tuple[str, str]], delta: Delta) -> None:
        for channel, text in parts:
            if self.stops.matched is not None:
                return
            if channel == "reasoning":
                if self.tags:
                    delta.content += text
                else:
                    delta.reasoning += text
            else:
                delta.content += self.stops.feed(text)

    def _finish(self) -> Outcome:
        info = self.stream.finish
        prompt_tokens = len(self.request.prompt_ids)
        if self._stopped:
            return Outcome("stop", prompt_tokens, self._tokens, self._reasoning_tokens)
        reason = getattr(info, "reason", "stop")
        if reason == "timeout":
            err = getattr(info, "error", None)
            raise from_core_error(err) if hasattr(err, "message") else timeout_error(self.request.timeout_s)
        if reason == "error":
            err = getattr(info, "error", None)
            if err is not None and hasattr(err, "message"):
                raise from_core_error(err)
            raise APIError(500, f"The generation failed: {err or 'unknown runtime error'}. Retry; if it "
                                "persists, check the node's log and `exo-rkllm doctor`.", code="runtime_error")
        if reason == "abort":  # not ours (a stop string sets _stopped): the node is shutting down
            raise APIError(503, "The node stopped this generation: it is shutting down. Retry the request "
                                "(on another node behind a balancer).", code="shutting_down")
        completion = max(int(getattr(info, "completion_tokens", 0) or 0), self._tokens)
        prompt_tokens = int(getattr(info, "prompt_tokens", 0) or prompt_tokens)
        return Outcome("length" if reason == "length" else "stop", prompt_tokens, completion,
                       self._reasoning_tokens)

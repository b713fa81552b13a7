"""The per-request buffer between the runtime worker and one consumer (an HTTP handler or exo).

The worker side pushes pieces as they arrive and never waits; the consumer awaits without polling.
Both sides run on the event loop thread, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Literal

FinishReason = Literal["stop", "length", "abort", "timeout", "error"]


@dataclass(frozen=True, slots=True)
class TokenPiece:
    """One generated token: its id and the text it completes ('' for special or out-of-vocabulary ids)."""

    token_id: int
    text: str


@dataclass(slots=True)
class GenerationRequest:
    """What a caller asks of a model: the prompt as token ids (already chat-templated)."""

    request_id: str
    prompt_ids: list[int]
    max_new_tokens: int | None = None
    timeout_s: float | None = None
    reasoning_budget: int | None = None
    sampling: dict | None = None


@dataclass(slots=True)
class FinishInfo:
    """How a request ended, with its accounting."""

    reason: FinishReason
    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    completion_tokens: int = 0
    prefill_ms: float = 0.0
    generate_ms: float = 0.0
    ttft_s: float | None = None
    oov_tokens: int = 0
    error: Exception | None = None


@dataclass(eq=False)
class RequestStream:
    """Buffer of one request's generated tokens; async-iterable by exactly one consumer."""

    request: GenerationRequest
    _cancel: Callable[["RequestStream"], None]
    submitted_at: float = field(default_factory=time.monotonic)
    finish: FinishInfo | None = None
    first_token_at: float | None = None
    last_pull_at: float = field(default_factory=time.monotonic)
    _pieces: deque = field(default_factory=deque)
    _waiter: asyncio.Future | None = None
    cancelled: bool = False

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def done(self) -> bool:
        """True once the request has ended and every piece has been consumed."""
        return self.finish is not None and not self._pieces

    # -- producer side (the service) ---------------------------------------------------------------
    def _push(self, piece: TokenPiece) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self._pieces.append(piece)
        self._wake()

    def _finish(self, info: FinishInfo) -> None:
        if self.finish is None:
            if info.ttft_s is None and self.first_token_at is not None:
                info.ttft_s = self.first_token_at - self.submitted_at
            self.finish = info
            self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- consumer side -----------------------------------------------------------------------------
    def cancel(self) -> None:
        """The consumer is gone: leave the queue, or abort the run. Idempotent."""
        if not self.cancelled and self.finish is None:
            self.cancelled = True
            self._cancel(self)

    async def wait(self) -> None:
        """Until a piece is buffered or the request ended."""
        while not self._pieces and self.finish is None:
            await self._sleep()

    async def wait_finished(self) -> None:
        """Until the request ended, leaving its pieces buffered (cached replay)."""
        while self.finish is None:
            await self._sleep()

    async def _sleep(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> list[TokenPiece]:
        """Every piece buffered now (possibly none). Raises the request's error once drained."""
        self.last_pull_at = time.monotonic()
        if self._pieces:
            out = list(self._pieces)
            self._pieces.clear()
            return out
        self._raise_if_failed()
        return []

    async def next_batch(self) -> list[TokenPiece]:
        """The next pieces (at least one), or [] once the request has ended."""
        await self.wait()
        return self.take()

    def _raise_if_failed(self) -> None:
        f = self.finish
        if f is not None and f.reason == "error" and f.error is not None:
            raise f.error

    def __aiter__(self) -> "RequestStream":
        return self

    async def __anext__(self) -> TokenPiece:
        if not self._pieces:
            await self.wait()
        self.last_pull_at = time.monotonic()
        if self._pieces:
            return self._pieces.popleft()
        self._raise_if_failed()
        raise StopAsyncIteration

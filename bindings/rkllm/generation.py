"""``Generation``: a run on a background thread, consumed as a sync or async stream of Events.

Why: ``rkllm_run`` blocks its thread for the whole generation. The thread pushes events into a
deque; a sync consumer waits on a Condition, an asyncio consumer is woken with
``loop.call_soon_threadsafe`` only when it is actually waiting (no polling, one wake-up per
burst of tokens).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from ._capi import LLMCallState, RKLLMInferMode
from .runtime import Event, RunResult, _Run

if TYPE_CHECKING:
    from .runtime import RKLLMRuntime

_FINISH = LLMCallState.RKLLM_RUN_FINISH


class Generation:
    """Iterate (``for ev in gen`` or ``async for ev in gen``) to get Events; the last one has
    state RKLLM_RUN_FINISH (token_id -1). Errors of the run are raised by the iteration after
    the events that came before them. ``abort()`` stops it; ``result`` is the RunResult."""

    def __init__(self, runtime: "RKLLMRuntime", tokens: Any, prompt: str | None,
                 kwargs: dict[str, Any]) -> None:
        self._rt = runtime
        self._items: collections.deque[Event] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._done = False
        self._result: RunResult | None = None
        self._exc: BaseException | None = None
        self._failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aevent: asyncio.Event | None = None
        self._async_waiting = False
        self._sync_waiting = False
        mode = int(kwargs.get("mode", RKLLMInferMode.RKLLM_INFER_GENERATE))
        self._run = _Run(None, mode)
        self._thread = threading.Thread(target=self._work, args=(tokens, prompt, kwargs),
                                        name="rkllm-generate", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- producer side
    def _push(self, ev: Event) -> None:
        with self._cond:
            self._items.append(ev)
            if self._sync_waiting:
                self._sync_waiting = False
                self._cond.notify()
            loop = self._take_async_waiter()
        self._poke(loop)

    def _take_async_waiter(self) -> asyncio.AbstractEventLoop | None:
        """(Lock held.) The loop of an asyncio consumer waiting for news, if any; clears the flag."""
        wake, self._async_waiting = self._async_waiting, False
        return self._loop if wake else None

    def _poke(self, loop: asyncio.AbstractEventLoop | None) -> None:
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # loop closed: the consumer is gone
                pass

    def _wake(self) -> None:
        if self._aevent is not None:
            self._aevent.set()

    def _work(self, tokens: Any, prompt: str | None, kwargs: dict[str, Any]) -> None:
        push = self._push
        run = self._run
        states = {int(s): s for s in LLMCallState}

        def on_token(token_id: int, text: str) -> None:
            # WAITING: the runtime says the bytes end inside a character (text is then '').
            push(Event(states[run.state], token_id, text))

        try:
            if tokens is not None:
                res = self._rt.run_tokens(tokens, on_token, _run=self._run, **kwargs)
            else:
                res = self._rt.run_prompt(prompt, on_token, _run=self._run, **kwargs)  # type: ignore[arg-type]
            self._result = res
            self._push(Event(_FINISH, -1, res.text_tail, res.perf))
        except BaseException as e:  # handed to the consumer
            self._exc = e
            self._push_end()
        else:
            self._push_end()

    def _push_end(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()
            loop = self._take_async_waiter()
        self._poke(loop)

    # ---------------------------------------------------------------- consumer side
    def __iter__(self) -> Iterator[Event]:
        items = self._items
        while True:
            with self._cond:
                while not items and not self._done:
                    self._sync_waiting = True
                    self._cond.wait()
                if not items:
                    self._raise_if_failed()
                    return
                batch = list(items)  # take every ready event at once: one lock per burst
                items.clear()
            yield from batch

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            with self._cond:
                if self._items:
                    return self._items.popleft()
                if self._done:
                    self._raise_if_failed()
                    raise StopAsyncIteration
                if self._loop is None:
                    self._loop = asyncio.get_running_loop()
                    self._aevent = asyncio.Event()
                assert self._aevent is not None
                self._aevent.clear()
                self._async_waiting = True
            await self._aevent.wait()

    def _raise_if_failed(self) -> None:
        if self._exc is not None:
            exc, self._exc = self._exc, None
            self._failed = exc
            raise exc

    # ---------------------------------------------------------------- control
    def abort(self) -> None:
        """Stop the run (also before it started); the stream then ends with status "aborted"."""
        self._rt._abort_run(self._run)

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Block until the run ended; returns the RunResult (None on timeout or failure)."""
        self._thread.join(timeout)
        return self._result

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def result(self) -> RunResult | None:
        """The RunResult once the run finished (None before, or if it raised)."""
        return self._result

    @property
    def exception(self) -> BaseException | None:
        """The error the run raised, if any (also raised by iteration)."""
        return self._exc if self._exc is not None else self._failed

    def close(self) -> None:
        """Abort if still running and wait for the thread to end."""
        if not self.done:
            self.abort()
        self._thread.join()

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

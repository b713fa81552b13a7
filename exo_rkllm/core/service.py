"""One loaded model: its worker process, its FIFO queue, and what sits in its KV cache.

Requests for one NPU run one at a time in arrival order. The runtime never waits for a consumer:
tokens go into the request's RequestStream as they arrive. The service remembers which token ids
are in the runtime's KV cache, so the next turn of a conversation prefills only its new tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from exo_rkllm import metrics
from exo_rkllm.catalog import SAMPLING_KEYS
from exo_rkllm.core.errors import (ContextOverflowError, CoreError, InvalidRequestError, QueueFullError, RequestTimeoutError,
                                   RuntimeUnavailableError, SamplingMismatchError, WorkerCrashedError)
from exo_rkllm.core.stream import FinishInfo, GenerationRequest, RequestStream, TokenPiece
from exo_rkllm.core.diagnose import diagnose
from exo_rkllm.core.worker import WorkerProcess

log = logging.getLogger("exo_rkllm.service")

ABORT_GRACE_S = 10.0  # a worker that does not confirm an abort by then is killed and restarted


@dataclass(eq=False)
class _Run:
    stream: RequestStream
    run_id: int
    base_kv: list[int]
    new_ids: list[int]
    started: float = field(default_factory=time.monotonic)
    generated: list[int] = field(default_factory=list)
    last_token_at: float | None = None
    oov: int = 0
    done: asyncio.Future | None = None
    abort_timer: asyncio.TimerHandle | None = None


class ModelService:
    """Serves one model card on one worker process."""

    def __init__(self, card, worker_config: dict, *, queue_depth: int = 8, sampling_policy: str = "strict",
                 sampling: dict | None = None, load_timeout_s: float = 900.0, tokenizer=None) -> None:
        if sampling_policy not in ("strict", "reload"):
            raise ValueError(f"sampling_policy must be 'strict' or 'reload', not {sampling_policy!r}")
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be at least 1, not {queue_depth}")
        self.card = card
        self.model_id: str = card.id
        self.queue_depth = queue_depth
        self.sampling_policy = sampling_policy
        self.loaded_sampling: dict = {k: v for k, v in (sampling or {}).items() if v is not None}
        self.load_timeout_s = load_timeout_s
        self.tokenizer = tokenizer
        self._worker_config = worker_config
        self._worker: WorkerProcess | None = None
        self._queue: deque[RequestStream] = deque()
        self._wakeup = asyncio.Event()
        self._current: _Run | None = None
        self._run_counter = 0
        self._kv: list[int] | None = []  # token ids in the runtime's KV cache; None = unknown
        self._scheduler: asyncio.Task | None = None
        self._closed = False
        self._timers: dict[RequestStream, asyncio.TimerHandle] = {}
        self.vocab_size = 0
        self.eos_id: int | None = None
        self.think_start_id: int | None = None
        self.think_end_id: int | None = None
        self.close_think: list[tuple[int, str]] = []
        self.restarts = 0
        self._typical_run_s = 1.0  # moving average of how long a run holds the NPU
        self.load_seconds: float | None = None
        self._m = {name: getattr(metrics, name).labels(model=self.model_id) for name in (
            "QUEUE_DEPTH", "QUEUE_LIMIT", "RUNNING", "TTFT", "TOKEN_LATENCY", "TOKENS_PER_SECOND",
            "PROMPT_TOKENS", "PREFILLED_TOKENS", "COMPLETION_TOKENS", "MODEL_LOAD_SECONDS",
            "WORKER_RESTARTS", "OOV_TOKENS")}
        self._m["QUEUE_LIMIT"].set(queue_depth)

    # -- public state ----------------------------------------------------------------------------
    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._current is not None

    @property
    def worker_pid(self) -> int | None:
        w = self._worker
        return w.proc.pid if w is not None and w.alive and w.proc is not None else None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the tokenizer and the model; raises RuntimeUnavailableError with the cause and fix."""
        loop = asyncio.get_running_loop()
        if self.tokenizer is None:
            from exo_rkllm.catalog import load_tokenizer

            self.tokenizer = await loop.run_in_executor(None, load_tokenizer, self.card)
        self._read_tokenizer()
        await self._spawn()
        self._scheduler = asyncio.create_task(self._schedule(), name=f"rkllm-scheduler-{self.model_id}")

    def _read_tokenizer(self) -> None:
        tok = self.tokenizer
        self.vocab_size = len(tok)
        self.eos_id = tok.eos_token_id
        if getattr(self.card, "reasoning", False):
            start, end = self.card.think_start, self.card.think_end
            self.think_start_id = _single_id(tok, start)
            self.think_end_id = _single_id(tok, end)
            ids = tok.encode(f"\n{end}\n\n", add_special_tokens=False)
            self.close_think = [(i, tok.decode([i])) for i in ids]

    async def close(self) -> None:
        self._closed = True
        run = self._current  # cancelling the scheduler clears _current: keep the run to end its stream
        if self._scheduler is not None:
            self._scheduler.cancel()
            try:
                await self._scheduler
            except (asyncio.CancelledError, Exception):
                pass
        closing = RuntimeUnavailableError(f"Model '{self.model_id}' is shutting down.", "Retry on another node.")
        for stream in list(self._queue):
            stream._finish(FinishInfo("error", error=closing))
        self._queue.clear()
        if run is not None and run.stream.finish is None:
            if self._worker is not None and self._worker.alive:
                try:
                    self._worker.send(("abort", run.run_id))
                except OSError:
                    pass
            self._end_run(run, FinishInfo("abort", prompt_tokens=len(run.stream.request.prompt_ids),
                                          completion_tokens=len(run.generated), error=closing))
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None

    # -- submitting ----------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> RequestStream:
        """Queue a request; returns its stream at once. Raises CoreError subclasses on refusal."""
        if self._closed:
            raise RuntimeUnavailableError(f"Model '{self.model_id}' is shutting down.", "Retry on another node.")
        ids = request.prompt_ids
        if not ids:
            raise InvalidRequestError("The prompt is empty.", "Send at least one message with content.")
        if len(ids) >= self.card.context_length:
            raise ContextOverflowError(self.model_id, len(ids), self.card.context_length)
        self._check_sampling(request.sampling)
        if len(self._queue) >= self.queue_depth:
            raise QueueFullError(self.model_id, self.queue_depth, self._retry_after())
        stream = RequestStream(request, self._cancel_stream)
        self._queue.append(stream)
        self._m["QUEUE_DEPTH"].set(len(self._queue))
        timeout = request.timeout_s if request.timeout_s is not None else self.card.request_timeout_s
        if timeout:
            loop = asyncio.get_running_loop()
            self._timers[stream] = loop.call_later(timeout, self._expire, stream, timeout)
        self._wakeup.set()
        return stream

    def _check_sampling(self, sampling: dict | None) -> None:
        if not sampling:
            return
        asked = {k: v for k, v in sampling.items() if v is not None}
        differs = {k: v for k, v in asked.items()
                   if k not in self.loaded_sampling or abs(float(self.loaded_sampling[k]) - float(v)) > 1e-6}
        if differs and self.sampling_policy == "strict":
            raise SamplingMismatchError(self.model_id, differs, self.loaded_sampling)

    def _retry_after(self) -> float:
        """A wait worth suggesting: the queue's length times the recent request duration (at least 1 s)."""
        return max(1.0, min(60.0, self._typical_run_s * (len(self._queue) + 1)))

    # -- cancel and timeout --------------------------------------------------------------------------
    def _cancel_stream(self, stream: RequestStream) -> None:
        self._stop_stream(stream, FinishInfo("abort", prompt_tokens=len(stream.request.prompt_ids)))

    def _expire(self, stream: RequestStream, timeout: float) -> None:
        err = RequestTimeoutError(
            f"The request to '{self.model_id}' did not finish within {timeout:g} s (queue wait included).",
            "Ask for fewer tokens (max_tokens), lower the reasoning budget, or raise the model's request timeout.")
        self._stop_stream(stream, FinishInfo("timeout", prompt_tokens=len(stream.request.prompt_ids), error=err))

    def _stop_stream(self, stream: RequestStream, info: FinishInfo) -> None:
        if stream.finish is not None:
            return
        run = self._current
        if run is not None and run.stream is stream:
            info.completion_tokens = len(run.generated)
            self._abort_run(run, info.reason)
            stream._finish(info)  # the consumer learns now; the NPU is free once the worker confirms
        else:
            try:
                self._queue.remove(stream)
            except ValueError:
                pass
            self._m["QUEUE_DEPTH"].set(len(self._queue))
            stream._finish(info)
        self._drop_timer(stream)

    def _abort_run(self, run: _Run, why: str) -> None:
        w = self._worker
        if w is None or not w.alive or run.abort_timer is not None:
            return
        try:
            w.send(("abort", run.run_id))
        except OSError:
            return
        loop = asyncio.get_running_loop()
        run.abort_timer = loop.call_later(ABORT_GRACE_S, self._abort_overdue, run)
        log.info("%s: aborting run %d (%s)", self.model_id, run.run_id, why)

    def _abort_overdue(self, run: _Run) -> None:
        if self._current is run and self._worker is not None:
            log.warning("%s: the runtime did not stop within %.0f s of an abort; restarting its worker",
                        self.model_id, ABORT_GRACE_S)
            self._worker.kill()

    def _drop_timer(self, stream: RequestStream) -> None:
        timer = self._timers.pop(stream, None)
        if timer is not None:
            timer.cancel()

    # -- the scheduler -------------------------------------------------------------------------------
    async def _schedule(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            stream = self._queue.popleft()
            self._m["QUEUE_DEPTH"].set(len(self._queue))
            if stream.finish is not None:
                continue
            try:
                await self._serve(stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one request kill the scheduler
                log.exception("%s: request %s failed", self.model_id, stream.request_id)
                err = exc if isinstance(exc, CoreError) else CoreError(f"Internal error: {exc!r}",
                                                                      "Report this with the server log.")
                stream._finish(FinishInfo("error", prompt_tokens=len(stream.request.prompt_ids), error=err))
                self._drop_timer(stream)

    async def _serve(self, stream: RequestStream) -> None:
        req = stream.request
        try:
            await self._ensure_worker(req.sampling)
        except CoreError as exc:
            stream._finish(FinishInfo("error", prompt_tokens=len(req.prompt_ids), error=exc))
            self._drop_timer(stream)
            return
        if stream.finish is not None:  # cancelled or expired while the worker (re)loaded
            return
        prompt = req.prompt_ids
        kv = self._kv
        if kv and len(prompt) > len(kv) and prompt[:len(kv)] == kv:
            base, new_ids, clear = kv, prompt[len(kv):], False
        else:
            base, new_ids, clear = [], list(prompt), kv != []
        room = self.card.context_length - len(prompt)
        cap = min(req.max_new_tokens or self.card.max_new_tokens, room)
        in_think = bool(self.card.reasoning and self.think_start_id is not None
                        and _opens_think(prompt, self.think_start_id, self.think_end_id))
        budget = req.reasoning_budget if self.card.reasoning else None
        opts = {"clear": clear, "max_new_tokens": cap, "reasoning_budget": budget,
                "think_start_id": self.think_start_id, "think_end_id": self.think_end_id,
                "in_think": in_think, "close_think": self.close_think}
        self._run_counter += 1
        run = _Run(stream, self._run_counter, list(base), new_ids)
        run.done = asyncio.get_running_loop().create_future()
        self._current = run
        self._kv = None  # unknown while a run changes it
        self._m["RUNNING"].set(1)
        self._m["PROMPT_TOKENS"].inc(len(prompt))
        self._m["PREFILLED_TOKENS"].inc(len(new_ids))
        try:
            self._worker.send(("run", run.run_id, new_ids, opts))
            await run.done
        finally:
            self._m["RUNNING"].set(0)
            if run.abort_timer is not None:
                run.abort_timer.cancel()
            self._current = None

    async def _ensure_worker(self, sampling: dict | None) -> None:
        asked = {k: v for k, v in (sampling or {}).items() if v is not None}
        wants_reload = self.sampling_policy == "reload" and any(
            abs(float(self.loaded_sampling.get(k, float("nan"))) - float(v)) > 1e-6
            or k not in self.loaded_sampling for k, v in asked.items())
        if wants_reload:
            log.info("%s: reloading with sampling %s (policy reload)", self.model_id, asked)
            self.loaded_sampling.update(asked)
            if self._worker is not None:
                await self._worker.stop()
                self._worker = None
        if self._worker is None or not self._worker.alive:
            restarting = self._worker is not None
            self._worker = None
            await self._spawn()
            if restarting:
                self.restarts += 1
                self._m["WORKER_RESTARTS"].inc()

    async def _spawn(self) -> None:
        config = dict(self._worker_config)
        runtime = dict(config["runtime"])
        runtime.update({k: v for k, v in self.loaded_sampling.items() if k in SAMPLING_KEYS})
        if runtime.get("temperature") == 0:  # greedy: RKLLM expresses it as top_k 1
            runtime["top_k"] = 1
            runtime["temperature"] = 1.0
        config["runtime"] = runtime
        worker = WorkerProcess(self.model_id, config, self._on_message, self._on_worker_exit)
        started = time.monotonic()
        await worker.start(self.load_timeout_s)
        self.load_seconds = time.monotonic() - started
        self._m["MODEL_LOAD_SECONDS"].set(self.load_seconds)
        self._worker = worker
        self._kv = []
        log.info("%s: model loaded in %.2f s (worker pid %s)", self.model_id, self.load_seconds, worker.proc.pid)

    # -- messages from the worker ------------------------------------------------------------------
    def _on_message(self, msg: tuple) -> None:
        run = self._current
        if run is None or msg[1] != run.run_id:
            return  # late frames of an aborted run
        kind = msg[0]
        if kind == "t":
            self._on_token(run, msg[2], msg[3])
        elif kind == "done":
            self._on_done(run, msg[2], msg[3], msg[4])
        elif kind == "run_error":
            err = CoreError(f"The runtime failed while generating for '{self.model_id}': {msg[3]} ({msg[2]})."
                            + self._runtime_said(),
                            "The worker stays up; retry the request. `exo-rkllm doctor` checks the board.")
            self._kv = None
            self._end_run(run, FinishInfo("error", prompt_tokens=len(run.stream.request.prompt_ids),
                                          completion_tokens=len(run.generated), error=err))

    def _runtime_said(self) -> str:
        """The runtime's latest error line and what it most likely means (best effort: the log is a pipe)."""
        tail = list(self._worker.log_tail) if self._worker is not None else []
        line, hint = _last_error_line(tail), diagnose(tail)
        return (f" The runtime said: {line}" if line else "") + (f" {hint}" if hint else "")

    def _on_token(self, run: _Run, token_id: int, text: str) -> None:
        now = time.monotonic()
        run.generated.append(token_id)
        if run.last_token_at is None:
            self._m["TTFT"].observe(now - run.stream.submitted_at)
        else:
            self._m["TOKEN_LATENCY"].observe(now - run.last_token_at)
        run.last_token_at = now
        if token_id >= self.vocab_size or token_id < 0:
            if run.oov == 0:
                log.warning("%s: request %s: the runtime produced id %d, outside the tokenizer's %d-token "
                            "vocabulary; such ids are dropped from the text (counted per request)",
                            self.model_id, run.stream.request_id, token_id, self.vocab_size)
            run.oov += 1
            text = ""
        if run.stream.finish is None:
            run.stream._push(TokenPiece(token_id, text))

    def _on_done(self, run: _Run, status: str, perf: dict, kv_size: int) -> None:
        expected = run.base_kv + run.new_ids + run.generated
        if status == "stop" and self.eos_id is not None:
            expected.append(self.eos_id)
        floor = len(run.base_kv) + len(run.new_ids)
        # Trust our record only as far as the runtime's own count agrees with it.
        self._kv = expected[:kv_size] if floor <= kv_size <= len(expected) else None
        n = len(run.generated)
        if perf.get("generate_ms"):
            self._m["TOKENS_PER_SECOND"].set(perf["generate_tokens"] / (perf["generate_ms"] / 1000.0))
        self._end_run(run, FinishInfo(status, prompt_tokens=len(run.stream.request.prompt_ids),
                                      prefilled_tokens=len(run.new_ids), completion_tokens=n,
                                      prefill_ms=perf.get("prefill_ms", 0.0),
                                      generate_ms=perf.get("generate_ms", 0.0), oov_tokens=run.oov))

    def _end_run(self, run: _Run, info: FinishInfo) -> None:
        self._typical_run_s = 0.8 * self._typical_run_s + 0.2 * (time.monotonic() - run.started)
        self._m["COMPLETION_TOKENS"].inc(len(run.generated))
        if run.oov:
            self._m["OOV_TOKENS"].inc(run.oov)
            log.info("%s: request %s: %d out-of-vocabulary ids dropped", self.model_id,
                     run.stream.request_id, run.oov)
        run.stream._finish(info)
        self._drop_timer(run.stream)
        if run.done is not None and not run.done.done():
            run.done.set_result(None)

    def _on_worker_exit(self, worker: WorkerProcess, cause: str) -> None:
        if worker is not self._worker:
            return
        log.error("%s", cause)
        self._kv = None
        run = self._current
        if run is not None:
            err = WorkerCrashedError(cause, "The request is lost; the next request restarts the worker with "
                                     "its model. If it repeats, run `exo-rkllm doctor`.")
            self._end_run(run, FinishInfo("error", prompt_tokens=len(run.stream.request.prompt_ids),
                                          completion_tokens=len(run.generated), error=err))


def _last_error_line(lines) -> str | None:
    for line in reversed(lines):
        if line.startswith("E ") or " E " in line[:24]:
            return line
    return None


def _single_id(tokenizer, token: str) -> int | None:
    ids = tokenizer.encode(token, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def _opens_think(prompt: list[int], start_id: int, end_id: int | None) -> bool:
    """True when the template already opened a think block at the end of the prompt (R1-style)."""
    tail = prompt[-8:]
    if start_id not in tail:
        return False
    last_start = len(tail) - 1 - tail[::-1].index(start_id)
    return end_id not in tail[last_start:]

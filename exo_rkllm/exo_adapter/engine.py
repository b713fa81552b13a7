"""RKLLMInferenceEngine: exo's engine contract over the serving core. Thin on purpose.

How exo drives it (exo/orchestration/node.py, v0.0.15-alpha): ``infer_prompt`` once per request (the
prompt already chat-templated), then ``sample`` on what it returned, then ``infer_tensor`` with that token
fed back, once per generated token, until the token equals ``tokenizer.eos_token_id`` or exo's cap.
exo never says when a request ended, so this engine ends runs itself.

The runtime generates on its own (RKLLM samples inside the runtime): ``infer_tensor`` hands out the
next token the runtime produced, as a (1, 1) array; ``sample`` just unwraps it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from exo_rkllm.exo_adapter.base import InferenceEngine, Shard

log = logging.getLogger("exo_rkllm.exo")

SIMULATE_ENV = "EXO_RKLLM_SIMULATE"  # set by `exo-rkllm exo --simulate`: exo builds engines as cls(shard_downloader)
MAX_TOKENS_ENV = "EXO_RKLLM_MAX_GENERATE_TOKENS"  # exo's --max-generate-tokens, passed on by the launcher
PREEMPT_IDLE_S = 2.0  # a request exo has not pulled from for this long yields the NPU to a new one


class PartialShardError(RuntimeError):
    """exo assigned this node only some layers; an RKLLM model is one compiled file and cannot be split."""


@dataclass(eq=False)
class _ExoRequest:
    stream: object  # exo_rkllm.core.RequestStream
    cached: bool
    pending: list[int] = field(default_factory=list)
    pulling: bool = False
    last_pull: float = field(default_factory=time.monotonic)
    ended: bool = False


class RKLLMInferenceEngine(InferenceEngine):
    """exo inference engine running whole models on the RK3588 NPU through RKLLM 1.2.3."""

    def __init__(self, shard_downloader=None, *, simulate: bool | None = None, queue_depth: int = 8) -> None:
        self.shard_downloader = shard_downloader
        self.shard: Shard | None = None
        self.tokenizer = None
        self.session: dict = {}  # per instance; exo's base class shares one dict across all engines
        self.simulate = os.environ.get(SIMULATE_ENV) == "1" if simulate is None else simulate
        self.queue_depth = queue_depth
        self._lock: asyncio.Lock | None = None
        self._core = None
        self._service = None
        self._card = None
        self._requests: dict[str, _ExoRequest] = {}
        self._finished: dict[str, None] = {}  # ids that ended recently (insertion-ordered, bounded)
        self._reaper: asyncio.Task | None = None
        self._switches_waiting = 0  # callers waiting to load another model
        self._tokenizers: dict = {}  # model id -> tokenizer, for models not loaded right now
        cap = os.environ.get(MAX_TOKENS_ENV)
        self.max_generate_tokens = int(cap) if cap and cap.isdigit() else None

    # -- model -------------------------------------------------------------------------------------
    # One model is loaded at a time. A request for another model waits until the running requests of the
    # loaded one have ended, then the switch happens; new requests for the old model queue behind it.
    # (exo calls ensure_shard for every token of a running request: that must never switch or block.)

    def _serving(self, shard: Shard) -> bool:
        return self.shard == shard and self._service is not None

    @staticmethod
    def _check_whole(shard: Shard) -> None:
        if not (shard.is_first_layer() and shard.is_last_layer()):
            raise PartialShardError(
                f"exo assigned this RKLLM node layers {shard.start_layer}-{shard.end_layer} of "
                f"{shard.n_layers} for '{shard.model_id}'. RKLLM models are compiled whole and cannot be "
                "split by layer across boards. Run each board as its own exo node (or `exo-rkllm serve` "
                "behind the nginx balancer from `exo-rkllm nginx-config`) so whole requests spread "
                "across boards.")

    async def ensure_shard(self, shard: Shard) -> None:
        """Load the shard's model once; concurrent callers (exo's background preload) wait for it."""
        self._check_whole(shard)
        if not self._serving(shard):
            await self._switch_to(shard)

    async def _switch_to(self, shard: Shard) -> None:
        from exo_rkllm.catalog import get_card

        card = get_card(shard.model_id)  # unknown ids fail here, naming the known ones
        if self._lock is None:
            self._lock = asyncio.Lock()
        switching = not self._serving(shard)
        self._switches_waiting += switching
        try:
            async with self._lock:
                if self._serving(shard):
                    return
                if self._requests:
                    log.info("model %s requested: waiting for %d running request(s) of %s to end",
                             shard.model_id, len(self._requests), self._card.id if self._card else "?")
                    while self._requests:
                        self._preempt_abandoned()
                        await asyncio.sleep(0.05)
                await self._load(card)
                self.shard = shard
        finally:
            self._switches_waiting -= switching

    def _tokenizer_for(self, shard: Shard):
        """The model's tokenizer, without loading the model (exo tokenizes before it may switch models)."""
        if self._card is not None and self._card.id == shard.model_id and self.tokenizer is not None:
            return self.tokenizer
        tok = self._tokenizers.get(shard.model_id)
        if tok is None:
            from exo_rkllm.catalog import get_card, load_tokenizer

            tok = self._tokenizers[shard.model_id] = load_tokenizer(get_card(shard.model_id))
        return tok

    async def _load(self, card) -> None:
        from exo_rkllm.core import RuntimeSpec, ServingCore

        if self._core is not None:
            await self.close()
        spec = RuntimeSpec.simulated() if self.simulate else RuntimeSpec.board()
        core = ServingCore(spec, [card], queue_depth=self.queue_depth,
                           on_load_progress=lambda m, what: log.info("%s: %s", m, what))
        await core.start()
        self._core, self._card = core, card
        self._service = core.service(card.id)
        self.tokenizer = self._service.tokenizer
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle_loop())

    async def load_checkpoint(self, shard: Shard, path: str) -> None:
        """Serve a specific .rkllm file for this shard's model (RKLLM has no other checkpoint format)."""
        await self.ensure_shard(shard)
        if not str(path).endswith(".rkllm") or not os.path.isfile(path):
            raise ValueError(f"{path} is not an .rkllm model file; RKLLM can only load compiled .rkllm files "
                             "(convert with rkllm-toolkit 1.2.3).")
        import dataclasses

        async with self._lock:
            # model_path: the catalog's field for a file used in place (the simulator ignores it)
            await self._load(dataclasses.replace(self._card, model_path=os.path.abspath(path)))

    async def close(self, reason: str | None = None) -> None:
        """Abort every run, stop the worker, forget requests.

        With a reason (shutdown), a reply already streaming ends with "[exo-rkllm error: <reason>]" rather
        than looking complete: exo may still pull those last tokens while the worker stops.
        """
        for rid, req in list(self._requests.items()):
            if reason and req.stream.first_token_at is not None and not req.ended:
                req.stream.cancel()
                req.ended = True
                req.pending.extend(self.tokenizer.encode(f"\n\n[exo-rkllm error: {reason}]",
                                                         add_special_tokens=False))
            else:
                self._forget(rid)  # exo's later calls for these get EOS, never a new run
        if self._reaper is not None and self._reaper is not asyncio.current_task():
            self._reaper.cancel()
        self._reaper = None
        if self._core is not None:
            await self._core.close()
        self._core = self._service = None

    # -- tokens ------------------------------------------------------------------------------------
    async def encode(self, shard: Shard, prompt: str) -> np.ndarray:
        tok = self._tokenizer_for(shard)
        ids = tok.encode(prompt, add_special_tokens=False)  # exo already applied the chat template
        bos = getattr(tok, "bos_token_id", None)
        if bos is not None and getattr(tok, "add_bos_token", False) and (not ids or ids[0] != bos):
            ids = [bos] + ids
        return np.asarray(ids, dtype=np.int64)

    async def decode(self, shard: Shard, tokens: np.ndarray) -> str:
        tok = self._tokenizer_for(shard)
        n = len(tok)
        ids = [int(t) for t in np.asarray(tokens).reshape(-1) if 0 <= int(t) < n]
        return tok.decode(ids, skip_special_tokens=True)

    async def sample(self, x: np.ndarray, temp: float = 0.0, top_p: float = 1.0) -> np.ndarray:
        """The runtime already sampled (with the model's loaded profile): unwrap the token it produced."""
        return np.asarray(x, dtype=np.int64).reshape(-1)[-1:]

    # -- generation --------------------------------------------------------------------------------
    async def infer_prompt(self, request_id: str, shard: Shard, prompt: str,
                           inference_state: Optional[dict] = None) -> tuple[np.ndarray, Optional[dict]]:
        """A new request: the whole templated prompt goes to the runtime; the first token comes back."""
        self._check_whole(shard)
        ids = await self.encode(shard, prompt)
        if not self._serving(shard) or self._switches_waiting:
            await self._switch_to(shard)  # queue behind a pending model switch instead of starving it
        if request_id in self._requests:  # the same id again: the old run is over for exo
            self._forget(request_id)
        self._finished.pop(request_id, None)
        req = await self._start(request_id, ids)
        token = await self._next_token(request_id, req)
        return np.array([[token]], dtype=np.int64), inference_state

    async def infer_tensor(self, request_id: str, shard: Shard, input_data: np.ndarray,
                           inference_state: Optional[dict] = None) -> tuple[np.ndarray, Optional[dict]]:
        """The next token of a running request (input_data is the token exo sampled and fed back)."""
        self._check_whole(shard)  # a ring's hidden states from another node land here
        req = self._requests.get(request_id)
        if req is None:  # ended (or never started here): never start a run from a fed-back token
            if request_id not in self._finished:
                log.warning("request %s: exo asked for a token of a request this engine is not running",
                            request_id)
            return np.array([[self._tokenizer_for(shard).eos_token_id]], dtype=np.int64), inference_state
        token = await self._next_token(request_id, req)
        return np.array([[token]], dtype=np.int64), inference_state

    async def _start(self, request_id: str, input_data: np.ndarray) -> _ExoRequest:
        from exo_rkllm.core import GenerationRequest

        self._preempt_abandoned()
        ids = [int(t) for t in np.asarray(input_data).reshape(-1)]
        card = self._card
        stream = self._service.submit(GenerationRequest(request_id, ids, max_new_tokens=self.max_generate_tokens,
                                                        reasoning_budget=card.reasoning_budget))
        req = _ExoRequest(stream, cached=card.delivery == "cached" and not card.reasoning)
        self._requests[request_id] = req
        if req.cached:  # short replies: let the run finish into the buffer, then replay one per call
            req.pulling = True
            try:
                await stream.wait_finished()
            finally:
                req.pulling = False
        return req

    async def _next_token(self, request_id: str, req: _ExoRequest) -> int:
        """The next token for exo; EOS once the run ended and everything was handed out."""
        if not req.pending and not req.ended:
            await self._pull(req)
        if req.pending:
            return req.pending.pop(0)
        self._forget(request_id)
        return self.tokenizer.eos_token_id

    async def _pull(self, req: _ExoRequest) -> None:
        n_vocab, eos = len(self.tokenizer), self.tokenizer.eos_token_id
        stream = req.stream
        req.pulling = True
        try:
            while not req.pending and not stream.done:
                await stream.wait()
                try:
                    pieces = stream.take()
                except Exception as exc:  # the run failed mid-stream
                    self._fail(req, exc)
                    return
                if req.ended:  # closed meanwhile: its last words are already queued
                    return
                # Ids outside the tokenizer's vocabulary never reach exo (it would render them as text).
                req.pending.extend(p.token_id for p in pieces if 0 <= p.token_id < n_vocab and p.token_id != eos)
        finally:
            req.pulling = False
            req.last_pull = time.monotonic()
        if stream.done:
            req.ended = True
            fin = stream.finish
            if not req.pending and fin.error is not None and fin.reason in ("error", "timeout"):
                self._fail(req, fin.error)

    def _fail(self, req: _ExoRequest, exc: Exception) -> None:
        """exo's API has no error channel mid-stream: the error becomes the reply's last words."""
        log.error("request failed: %s", exc)
        req.ended = True
        req.stream.cancel()
        if req.stream.first_token_at is None:  # nothing streamed yet: exo's API answers with an error
            raise exc
        req.pending = list(self.tokenizer.encode(f"\n\n[exo-rkllm error: {exc}]", add_special_tokens=False))

    def _forget(self, request_id: str) -> None:
        req = self._requests.pop(request_id, None)
        if req is not None:
            req.stream.cancel()
            self._finished[request_id] = None
            while len(self._finished) > 1024:
                self._finished.pop(next(iter(self._finished)))

    # -- lifecycle: exo never says a request ended ---------------------------------------------------
    def _preempt_abandoned(self) -> None:
        """A new request needs the NPU: end runs whose consumer (exo) stopped pulling tokens."""
        now = time.monotonic()
        for rid, req in list(self._requests.items()):
            if not req.pulling and now - req.last_pull > PREEMPT_IDLE_S:
                log.info("request %s: exo stopped asking for tokens; ending its run for a new request", rid)
                self._forget(rid)

    async def _reap_idle_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            card = self._card
            if card is None:
                continue
            now = time.monotonic()
            for rid, req in list(self._requests.items()):
                if not req.pulling and now - req.last_pull > card.idle_timeout_s:
                    log.info("request %s: idle for %.0f s; ending its run", rid, card.idle_timeout_s)
                    self._forget(rid)


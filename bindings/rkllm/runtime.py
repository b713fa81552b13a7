"""``RKLLMRuntime``: one RKLLM handle, thread-safe, with a Pythonic run API.

Why this shape: the runtime supports one run at a time per handle (two threads running one
handle produce garbage), calls back once per token from the thread that called ``rkllm_run``,
and hands out pointers valid only during that callback. So a lock serialises every call, the
callback copies what it needs before returning, every buffer handed to C lives on this object
(or on the run's state) for as long as C may read it, and a Python exception in user code is
turned into a pause of the run, then re-raised once ``rkllm_run`` has returned.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import sys
import threading
import time
from ctypes import byref, c_int, c_int32
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from . import _capi
from ._capi import LLMCallState, RKLLMInferMode, RKLLMInputType
from .config import RuntimeConfig
from .errors import (
    ContextOverflowError,
    InvalidConfigError,
    ModelLoadError,
    RKLLMCallError,
    RKLLMRunError,
    RuntimeClosedError,
)
from .library import load_library

OnToken = Callable[[int, str], Any]

_NORMAL = int(LLMCallState.RKLLM_RUN_NORMAL)
_WAITING = int(LLMCallState.RKLLM_RUN_WAITING)
_FINISH = int(LLMCallState.RKLLM_RUN_FINISH)
_ERROR = int(LLMCallState.RKLLM_RUN_ERROR)
_GENERATE = int(RKLLMInferMode.RKLLM_INFER_GENERATE)
_ROLES = ("user", "tool")  # what RKLLMInput.role accepts in 1.2.3
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_REABORT_S = 0.05


@dataclass(frozen=True)
class PerfStat:
    """RKLLMPerfStat copied at FINISH (the only state where the runtime fills it)."""

    prefill_time_ms: float
    prefill_tokens: int
    generate_time_ms: float
    generate_tokens: int
    memory_usage_mb: float


@dataclass
class RunResult:
    """How a run ended. ``status``: "finished" | "paused" | "aborted"."""

    status: str
    n_tokens: int
    perf: PerfStat | None = None
    logits: np.ndarray | None = None          # (num_tokens, vocab_size) float32 copy
    hidden_states: np.ndarray | None = None   # (num_tokens, embd_size) float32 copy
    text_tail: str = ""                       # undecodable bytes left at the end ('\ufffd'), usually ''


class Event(NamedTuple):
    """One item of a Generation stream: a token, or the final FINISH marker (token_id -1).
    (A NamedTuple: made once per token, it must be cheap.)"""

    state: LLMCallState
    token_id: int
    text: str
    perf: PerfStat | None = None


class _Run:
    """Per-run state the C callback reads; also keeps the run's C buffers alive."""

    __slots__ = ("on_token", "decode", "n_tokens", "stop", "abort_requested", "paused",
                 "finished", "error", "exc", "perf", "want_arrays", "logits", "hidden",
                 "keep", "state")

    def __init__(self, on_token: OnToken | None, mode: int) -> None:
        self.on_token = on_token
        self.decode = _utf8_decoder("replace").decode
        self.n_tokens = 0
        self.stop = False             # callback answers 1 (pause) without calling user code
        self.abort_requested = False
        self.paused = False
        self.finished = False
        self.error = False
        self.exc: BaseException | None = None
        self.perf: PerfStat | None = None
        self.want_arrays = mode != _GENERATE
        self.logits: list[np.ndarray] = []
        self.hidden: list[np.ndarray] = []
        self.keep: list[Any] = []     # C buffers of this run (input, ids, params, strings)
        self.state = _NORMAL          # C state of the token being delivered


def _copy_arrays(run: _Run, r: _capi.RKLLMResult) -> None:
    """Copy hidden states / logits out of runtime memory (valid only during the callback)."""
    h = r.last_hidden_layer
    if h.hidden_states and h.embd_size > 0 and h.num_tokens > 0:
        run.hidden.append(np.ctypeslib.as_array(h.hidden_states,
                                                shape=(h.num_tokens, h.embd_size)).copy())
    lg = r.logits
    if lg.logits and lg.vocab_size > 0 and lg.num_tokens > 0:
        run.logits.append(np.ctypeslib.as_array(lg.logits,
                                                shape=(lg.num_tokens, lg.vocab_size)).copy())


def _stack(arrays: list[np.ndarray]) -> np.ndarray | None:
    if not arrays:
        return None
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)


_stderr_lock = threading.Lock()


def _call_capturing_stderr(fn: Callable[[], int]) -> tuple[int, str]:
    """Call ``fn`` with fd 2 teed into a buffer, so the runtime's own error line (e.g. "invalid
    rknn llm model magic") can go into the exception. Output still reaches the real stderr live."""
    with _stderr_lock:
        try:
            sys.stderr.flush()
        except Exception:
            pass
        try:
            saved = os.dup(2)
            r, w = os.pipe()
        except OSError:
            return fn(), ""
        chunks: list[bytes] = []

        def pump() -> None:
            while True:
                try:
                    data = os.read(r, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
                try:
                    os.write(saved, data)
                except OSError:
                    pass

        t = threading.Thread(target=pump, name="rkllm-stderr-tee", daemon=True)
        t.start()
        os.dup2(w, 2)
        os.close(w)
        try:
            rc = fn()
        finally:
            os.dup2(saved, 2)  # closes the last write end: the pump sees EOF
            t.join(5.0)
            os.close(saved)
            os.close(r)
        return rc, b"".join(chunks).decode("utf-8", "replace")


class RKLLMRuntime:
    """One loaded model (one RKLLM handle). All methods are thread-safe; runs are serialised.

    ``abort()`` may be called from any thread while a run is going. Use as a context manager
    or call ``close()`` to destroy the handle.
    """

    def __init__(self, config: RuntimeConfig, library: ctypes.CDLL | str | os.PathLike[str] | None = None,
                 *, capture_init_log: bool = True) -> None:
        self._handle: int | None = None
        self._lock = threading.RLock()          # serialises runs and calls on the handle
        self._abort_lock = threading.Lock()     # guards the handle against destroy during abort
        self._run: _Run | None = None
        self._slot: list[_Run | None] = [None]  # what the C callback reads
        self._keep: list[Any] = []              # strings/structs C may still point at
        self._loras: dict[str, tuple[Any, ...]] = {}
        if not isinstance(config, RuntimeConfig):
            raise InvalidConfigError(f"config must be a RuntimeConfig, got {type(config).__name__}",
                                     field="config")
        config.validate()
        self.config = config
        if library is None or isinstance(library, (str, os.PathLike)):
            library = load_library(library)
        self.library = library
        model_path = Path(os.fspath(config.model_path)).expanduser()
        _check_readable(model_path)
        self._model_path_b = os.fsencode(str(model_path))

        param = library.rkllm_createDefaultParam()
        config.apply(param, self._model_path_b)
        self.param = param  # kept for the handle's lifetime
        self.max_context_len: int | None = param.max_context_len if param.max_context_len > 0 else None
        self.n_batch = max(1, int(param.extend_param.n_batch))

        # The callback object lives until destroy: the runtime keeps its pointer.
        self._c_callback = _capi.LLMResultCallback(self._make_callback())
        handle = _capi.LLMHandle()

        def init() -> int:
            return int(library.rkllm_init(byref(handle), byref(param), self._c_callback))

        if capture_init_log:
            rc, log = _call_capturing_stderr(init)
        else:
            rc, log = init(), ""
        if rc != 0 or not handle.value:
            lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
            errs = [ln for ln in lines if ln.startswith("E ") or "error" in ln.lower()
                    or "invalid" in ln.lower() or "fail" in ln.lower()]
            said = f" The runtime said: {' | '.join((errs or lines)[-3:])}." if lines else ""
            raise ModelLoadError(
                f"rkllm_init returned {rc} for {model_path}.{said} Fix: use a model converted by "
                f"rkllm-toolkit {_capi.RKLLM_ABI_VERSION} for this platform (on the simulator: a "
                "file starting 'RKLLM-SIM 1'), and check the NPU driver (>= 0.9.8) and free memory.")
        self._handle = handle.value

    # ----------------------------------------------------------------- C callback (hot path)
    def _make_callback(self) -> Callable[[Any, Any, int], int]:
        slot = self._slot
        copy_arrays = _copy_arrays

        def callback(result_p: Any, userdata: Any, state: int) -> int:
            run = slot[0]
            if run is None:
                return 0
            try:
                if state <= _WAITING:  # NORMAL or WAITING: one generated token
                    if run.stop:
                        return 1
                    r = result_p[0]
                    if run.want_arrays:
                        copy_arrays(run, r)
                    token_id = r.token_id
                    if token_id < 0:  # no token: a logits/hidden-layer result or a finished batch row
                        return 0
                    raw = r.text
                    text = run.decode(raw) if raw else ""
                    run.n_tokens += 1
                    run.state = state
                    cb = run.on_token
                    if cb is not None and cb(token_id, text):
                        run.paused = True
                        run.stop = True
                        return 1
                    return 0
                if state == _FINISH:
                    r = result_p[0]
                    if run.want_arrays:
                        copy_arrays(run, r)
                    p = r.perf
                    run.perf = PerfStat(p.prefill_time_ms, p.prefill_tokens, p.generate_time_ms,
                                        p.generate_tokens, p.memory_usage_mb)
                    run.finished = True
                    return 0
                if state == _ERROR:
                    run.error = True
                    return 0
                return 0
            except BaseException as e:  # never unwind into C: pause the run, re-raise after
                if run.exc is None:
                    run.exc = e
                run.stop = True
                return 1

        return callback

    # ----------------------------------------------------------------- runs
    def run_tokens(self, tokens: Sequence[int] | np.ndarray, on_token: OnToken | None = None, *,
                   keep_history: bool = False, mode: int = RKLLMInferMode.RKLLM_INFER_GENERATE,
                   lora_name: str | None = None, save_prompt_cache: str | os.PathLike[str] | None = None,
                   role: str = "user", enable_thinking: bool = False,
                   _run: _Run | None = None) -> RunResult:
        """Run from token ids (the caller owns templating). Blocks until the run ends."""
        raw = np.asarray(tokens)
        if raw.ndim != 1 or raw.size == 0:
            raise InvalidConfigError("tokens must be a non-empty 1-D sequence of token ids",
                                     field="tokens")
        if raw.dtype.kind not in "iu":
            raise InvalidConfigError(f"token ids must be integers, got dtype {raw.dtype}",
                                     field="tokens")
        if int(raw.min()) < 0 or int(raw.max()) > 0x7FFFFFFF:
            raise InvalidConfigError("token ids must be in 0..2**31-1", field="tokens")
        ids = np.ascontiguousarray(raw, dtype=np.int32)
        inp = self._new_input(role, enable_thinking)
        inp.input_type = RKLLMInputType.RKLLM_INPUT_TOKEN
        inp.token_input.input_ids = ids.ctypes.data_as(ctypes.POINTER(c_int32))
        inp.token_input.n_tokens = ids.size
        return self._run_input(inp, [ids], on_token, keep_history, mode, lora_name,
                               save_prompt_cache, n_input_tokens=int(ids.size), run=_run)

    def run_prompt(self, prompt: str, on_token: OnToken | None = None, *, role: str = "user",
                   enable_thinking: bool = False, keep_history: bool = False,
                   mode: int = RKLLMInferMode.RKLLM_INFER_GENERATE, lora_name: str | None = None,
                   save_prompt_cache: str | os.PathLike[str] | None = None,
                   _run: _Run | None = None) -> RunResult:
        """Run from prompt text; the runtime applies the model's (or set_chat_template's) template."""
        if not isinstance(prompt, str):
            raise InvalidConfigError(f"prompt must be a str, got {type(prompt).__name__}",
                                     field="prompt")
        text = prompt.encode("utf-8")
        if b"\x00" in text:
            raise InvalidConfigError("prompt must not contain NUL characters", field="prompt")
        inp = self._new_input(role, enable_thinking)
        inp.input_type = RKLLMInputType.RKLLM_INPUT_PROMPT
        inp.prompt_input = text
        return self._run_input(inp, [text], on_token, keep_history, mode, lora_name,
                               save_prompt_cache, n_input_tokens=None, run=_run)

    def run_embeddings(self, embeds: np.ndarray, on_token: OnToken | None = None, *,
                       keep_history: bool = False, mode: int = RKLLMInferMode.RKLLM_INFER_GENERATE,
                       lora_name: str | None = None, role: str = "user",
                       enable_thinking: bool = False) -> RunResult:
        """Run from input embeddings, shape (n_tokens, embd_size) float32."""
        arr = np.ascontiguousarray(embeds, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise InvalidConfigError("embeds must be a non-empty 2-D array (n_tokens, embd_size)",
                                     field="embeds")
        inp = self._new_input(role, enable_thinking)
        inp.input_type = RKLLMInputType.RKLLM_INPUT_EMBED
        inp.embed_input.embed = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        inp.embed_input.n_tokens = arr.shape[0]
        return self._run_input(inp, [arr], on_token, keep_history, mode, lora_name, None,
                               n_input_tokens=int(arr.shape[0]))

    def generate(self, tokens: Sequence[int] | np.ndarray | None = None, prompt: str | None = None,
                 **kwargs: Any) -> "Generation":
        """Start a run on a background thread; iterate the returned Generation (sync or async)."""
        from .generation import Generation

        if (tokens is None) == (prompt is None):
            raise InvalidConfigError("generate() needs exactly one of tokens= or prompt=",
                                     field="tokens")
        if "on_token" in kwargs:
            raise InvalidConfigError("generate() streams events itself; use run_*() for on_token",
                                     field="on_token")
        self._check_open()
        return Generation(self, tokens, prompt, kwargs)

    def _new_input(self, role: str, enable_thinking: bool) -> _capi.RKLLMInput:
        if role not in _ROLES:
            raise InvalidConfigError(f"role must be one of {', '.join(_ROLES)}, got {role!r}",
                                     field="role")
        inp = _capi.RKLLMInput()
        inp.role = _ROLE_BYTES[role]
        inp.enable_thinking = bool(enable_thinking)
        return inp

    def _run_input(self, inp: _capi.RKLLMInput, buffers: list[Any], on_token: OnToken | None,
                   keep_history: bool, mode: int, lora_name: str | None,
                   save_prompt_cache: str | os.PathLike[str] | None, n_input_tokens: int | None,
                   run: _Run | None = None) -> RunResult:
        mode = int(mode)
        if mode not in (0, 1, 2):
            raise InvalidConfigError(f"mode must be an RKLLMInferMode (0, 1, 2), got {mode}",
                                     field="mode")
        if on_token is not None and not callable(on_token):
            raise InvalidConfigError("on_token must be callable(token_id, text)", field="on_token")
        if run is None:
            run = _Run(on_token, mode)
        else:
            run.on_token = on_token
            run.want_arrays = mode != _GENERATE
        infer = _capi.RKLLMInferParam()
        infer.mode = mode
        infer.keep_history = 1 if keep_history else 0
        run.keep.extend(buffers)
        run.keep.append(inp)
        run.keep.append(infer)
        if lora_name is not None:
            if lora_name not in self._loras:
                raise InvalidConfigError(
                    f"lora_name={lora_name!r} is not loaded; loaded: {sorted(self._loras) or 'none'}"
                    " (call load_lora(path, name) first)", field="lora_name")
            lp = _capi.RKLLMLoraParam(self._loras[lora_name][1])
            infer.lora_params = ctypes.pointer(lp)
            run.keep.append(lp)
        if save_prompt_cache is not None:
            path_b = os.fsencode(os.fspath(save_prompt_cache))
            parent = os.path.dirname(os.path.abspath(path_b))
            if not os.path.isdir(parent):
                raise InvalidConfigError(
                    f"save_prompt_cache: directory {os.fsdecode(parent)} does not exist",
                    field="save_prompt_cache")
            pc = _capi.RKLLMPromptCacheParam(1, path_b)
            infer.prompt_cache_params = ctypes.pointer(pc)
            run.keep.extend((pc, path_b))
        if self.n_batch > 1:  # the runtime reads n_batch inputs: the same input in every row
            arr = (_capi.RKLLMInput * self.n_batch)(*([inp] * self.n_batch))
            run.keep.append(arr)
            inp_ptr = ctypes.cast(arr, ctypes.POINTER(_capi.RKLLMInput))
        else:
            inp_ptr = ctypes.pointer(inp)
        run.keep.append(inp_ptr)

        with self._lock:
            handle = self._check_open()
            if n_input_tokens is not None and self.max_context_len is not None:
                used = self._kv_used() if keep_history else 0
                if used + n_input_tokens >= self.max_context_len:
                    raise ContextOverflowError(
                        f"{n_input_tokens} input tokens" + (f" + {used} already in the KV cache"
                                                            if used else "")
                        + f" do not fit max_context_len={self.max_context_len} (no room for a new "
                        "token). Fix: shorten the input, clear_kv_cache(), or load the model with "
                        "a larger max_context_len.",
                        n_tokens=used + n_input_tokens, max_context_len=self.max_context_len)
            with self._abort_lock:  # so an abort() racing with the start is never lost
                if run.abort_requested:
                    return RunResult("aborted", 0)
                self._run = run
                self._slot[0] = run
            try:
                rc = int(self.library.rkllm_run(handle, inp_ptr, byref(infer), None))
            finally:
                with self._abort_lock:  # no abort/re-abort may target this run any more
                    self._slot[0] = None
                    self._run = None
                run.keep.clear()  # rkllm_run returned: C no longer reads this run's buffers
            if run.stop and not run.paused and not keep_history:
                # We stopped it by answering "pause" (user exception, early abort); the runtime
                # then keeps the KV cache, but this run asked for none: drop it as a finished
                # run would.
                try:
                    self.clear_kv_cache()
                except RKLLMCallError:
                    pass
        tail = run.decode(b"", True)
        if run.exc is not None:
            exc = run.exc
            run.exc = None
            raise exc
        if run.error:
            raise RKLLMRunError(
                f"the runtime reported RKLLM_RUN_ERROR after {run.n_tokens} tokens (rkllm_run "
                f"returned {rc}); the handle is still usable. Check the runtime's log above; a "
                "context overflow or an NPU fault are the usual causes.", n_tokens=run.n_tokens)
        if run.paused:
            status = "paused"
        elif run.abort_requested:
            status = "aborted"
        elif run.finished:
            status = "finished"
        elif rc != 0:
            raise RKLLMCallError("rkllm_run", rc, "the run failed before finishing")
        else:
            status = "aborted"
        if rc != 0 and status == "finished":
            raise RKLLMCallError("rkllm_run", rc, "the run reached FINISH but returned an error")
        return RunResult(status, run.n_tokens, run.perf, _stack(run.logits), _stack(run.hidden),
                         tail)

    # ----------------------------------------------------------------- control
    def abort(self) -> bool:
        """Interrupt the current run from any thread. Returns False when nothing was running."""
        run = self._run
        return False if run is None else self._abort_run(run)

    def _abort_run(self, run: _Run) -> bool:
        """Abort ``run`` (started or not yet started); True if the runtime was asked to stop."""
        with self._abort_lock:
            first = not run.abort_requested
            run.abort_requested = True
            run.stop = True
            if self._run is not run or self._handle is None:
                return False
            rc = int(self.library.rkllm_abort(self._handle))
        if rc != 0:
            raise RKLLMCallError("rkllm_abort", rc)
        if first:
            threading.Thread(target=self._reabort, args=(run,), name="rkllm-abort",
                             daemon=True).start()
        return True

    def _reabort(self, run: _Run) -> None:
        """Repeat rkllm_abort until the run has returned: a runtime may clear its abort flag as
        rkllm_run starts, so an abort landing just before that would otherwise be lost (and a
        prefill that never calls back would never stop)."""
        while True:
            time.sleep(_REABORT_S)
            with self._abort_lock:
                if self._run is not run or self._handle is None:
                    return
                self.library.rkllm_abort(self._handle)

    def is_running(self) -> bool:
        """True while a run of this object is in progress (tracked here: the C function's
        meaning flips between versions, see reference)."""
        return self._run is not None

    def clear_kv_cache(self, keep_system_prompt: bool = False, start_pos: Sequence[int] | None = None,
                       end_pos: Sequence[int] | None = None) -> None:
        """Drop the KV cache (all of it, or [start, end) per batch row when given)."""
        with self._lock:
            handle = self._check_open()
            sp = ep = None
            if start_pos is not None or end_pos is not None:
                if start_pos is None or end_pos is None or len(start_pos) != self.n_batch \
                        or len(end_pos) != self.n_batch:
                    raise InvalidConfigError(
                        f"start_pos and end_pos must both be given with n_batch={self.n_batch} "
                        "entries", field="start_pos")
                sp = (c_int * self.n_batch)(*start_pos)
                ep = (c_int * self.n_batch)(*end_pos)
            self._check("rkllm_clear_kv_cache",
                        self.library.rkllm_clear_kv_cache(handle, 1 if keep_system_prompt else 0,
                                                          sp, ep))

    def kv_cache_size(self) -> list[int]:
        """Tokens held in the KV cache, one entry per batch row."""
        with self._lock:
            handle = self._check_open()
            sizes = (c_int * self.n_batch)()
            self._check("rkllm_get_kv_cache_size", self.library.rkllm_get_kv_cache_size(handle, sizes))
            return list(sizes)

    def _kv_used(self) -> int:
        try:
            return max(self.kv_cache_size())
        except RKLLMCallError:
            return 0

    def set_chat_template(self, system_prompt: str, prompt_prefix: str, prompt_postfix: str) -> None:
        """Override the model's chat template for prompt input (disables enable_thinking)."""
        args = [_cstr(v, n) for v, n in ((system_prompt, "system_prompt"),
                                          (prompt_prefix, "prompt_prefix"),
                                          (prompt_postfix, "prompt_postfix"))]
        with self._lock:
            handle = self._check_open()
            self._keep.append(args)
            self._check("rkllm_set_chat_template", self.library.rkllm_set_chat_template(handle, *args))

    def set_function_tools(self, system_prompt: str, tools: str, tool_response_str: str) -> None:
        """Declare function tools (a JSON string); the model then emits <tool_call>...</tool_call>."""
        args = [_cstr(v, n) for v, n in ((system_prompt, "system_prompt"), (tools, "tools"),
                                          (tool_response_str, "tool_response_str"))]
        with self._lock:
            handle = self._check_open()
            self._keep.append(args)
            self._check("rkllm_set_function_tools", self.library.rkllm_set_function_tools(handle, *args))

    def set_cross_attn_params(self, k_cache: np.ndarray, v_cache: np.ndarray, mask: np.ndarray,
                              pos: np.ndarray, num_tokens: int) -> None:
        """Cross-attention inputs (custom encoder-decoder models only); arrays kept alive here."""
        k = np.ascontiguousarray(k_cache, dtype=np.float32)
        v = np.ascontiguousarray(v_cache, dtype=np.float32)
        m = np.ascontiguousarray(mask, dtype=np.float32)
        p = np.ascontiguousarray(pos, dtype=np.int32)
        fp = ctypes.POINTER(ctypes.c_float)
        param = _capi.RKLLMCrossAttnParam(k.ctypes.data_as(fp), v.ctypes.data_as(fp),
                                          m.ctypes.data_as(fp),
                                          p.ctypes.data_as(ctypes.POINTER(c_int32)), int(num_tokens))
        with self._lock:
            handle = self._check_open()
            self._keep.append((k, v, m, p, param))
            self._check("rkllm_set_cross_attn_params",
                        self.library.rkllm_set_cross_attn_params(handle, byref(param)))

    def load_lora(self, path: str | os.PathLike[str], name: str, scale: float = 1.0) -> None:
        """Load a LoRA adapter under ``name``; select it per run with ``lora_name=name``."""
        p = Path(os.fspath(path)).expanduser()
        _check_readable(p, what="LoRA adapter")
        if not name or not isinstance(name, str):
            raise InvalidConfigError("LoRA name must be a non-empty str", field="name")
        if name in self._loras:
            raise InvalidConfigError(f"a LoRA named {name!r} is already loaded", field="name")
        path_b, name_b = os.fsencode(str(p)), _cstr(name, "name")
        adapter = _capi.RKLLMLoraAdapter(path_b, name_b, float(scale))
        with self._lock:
            handle = self._check_open()
            self._check("rkllm_load_lora", self.library.rkllm_load_lora(handle, byref(adapter)))
            self._loras[name] = (adapter, name_b, path_b)

    def load_prompt_cache(self, path: str | os.PathLike[str]) -> None:
        """Load a prompt cache saved by a run with save_prompt_cache=path."""
        p = Path(os.fspath(path)).expanduser()
        _check_readable(p, what="prompt cache")
        path_b = os.fsencode(str(p))
        with self._lock:
            handle = self._check_open()
            self._keep.append(path_b)
            self._check("rkllm_load_prompt_cache", self.library.rkllm_load_prompt_cache(handle, path_b))

    def release_prompt_cache(self) -> None:
        with self._lock:
            handle = self._check_open()
            self._check("rkllm_release_prompt_cache", self.library.rkllm_release_prompt_cache(handle))

    # ----------------------------------------------------------------- lifetime
    @property
    def handle(self) -> int | None:
        return self._handle

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Abort any run, then destroy the handle. Idempotent."""
        if self._handle is None:
            return
        try:
            self.abort()
        except RKLLMCallError:
            pass
        with self._lock:
            if self._handle is None:
                return
            with self._abort_lock:
                handle, self._handle = self._handle, None
            rc = int(self.library.rkllm_destroy(handle))
            # Only now may the callback and the param strings go.
            self._keep.clear()
            self._loras.clear()
            if rc != 0:
                raise RKLLMCallError("rkllm_destroy", rc)

    def __enter__(self) -> "RKLLMRuntime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None and not sys.is_finalizing():
            try:
                self.close()
            except Exception:
                pass

    def _check_open(self) -> int:
        h = self._handle
        if h is None:
            raise RuntimeClosedError("this RKLLMRuntime is closed; create a new one")
        return h

    @staticmethod
    def _check(function: str, rc: int) -> None:
        if rc != 0:
            raise RKLLMCallError(function, int(rc))


_ROLE_BYTES = {r: r.encode() for r in _ROLES}


def _cstr(value: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidConfigError(f"{name} must be a str, got {type(value).__name__}", field=name)
    b = value.encode("utf-8")
    if b"\x00" in b:
        raise InvalidConfigError(f"{name} must not contain NUL characters", field=name)
    return b


def _check_readable(path: Path, what: str = "model") -> None:
    """Refuse a missing/unreadable file before handing its path to C."""
    if not path.exists():
        raise ModelLoadError(f"{what} file not found: {path}. Fix: check the path "
                             "(on the simulator: `exo-rkllm sim model chat` prints a valid one)")
    if path.is_dir():
        raise ModelLoadError(f"{what} path is a directory, not a file: {path}")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ModelLoadError(f"{what} file {path} is not readable: {e.strerror or e}. "
                             "Fix: check its permissions") from e

"""The serving process's handle on one runtime worker process.

Spawns ``python -m exo_rkllm.core.worker_main`` with one end of a socketpair, reads its frames on the
event loop (no thread, no polling), keeps the tail of what the runtime printed, and reports the
worker's death with a readable cause (signal name plus a diagnosis of the runtime's log).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from typing import Callable

from exo_rkllm.core.diagnose import diagnose
from exo_rkllm.core.errors import RuntimeUnavailableError
from exo_rkllm.core.wire import FrameReader, message_frame

log = logging.getLogger("exo_rkllm.worker")
runtime_log = logging.getLogger("exo_rkllm.runtime")


def describe_exit(returncode: int | None) -> str:
    """'killed by SIGSEGV (signal 11)' or 'exited with status 3'."""
    if returncode is None:
        return "stopped responding"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name} (signal {-returncode})"
    return f"exited with status {returncode}"


class WorkerProcess:
    """One child process holding one loaded model."""

    def __init__(self, model_id: str, config: dict, on_message: Callable[[tuple], None],
                 on_exit: Callable[["WorkerProcess", str], None]) -> None:
        self.model_id = model_id
        self.config = config
        self._on_message = on_message
        self._on_exit = on_exit
        self._reader = FrameReader()
        self.log_tail: deque[str] = deque(maxlen=200)
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self._ready: asyncio.Future | None = None
        self._log_thread: threading.Thread | None = None
        self.alive = False
        self.info: dict = {}

    # -- start / stop ------------------------------------------------------------------------------
    async def start(self, timeout_s: float) -> dict:
        """Spawn and load the model. Raises RuntimeUnavailableError with the cause and the fix."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exo_rkllm.core.worker_main", "--fd", str(child.fileno()),
             "--model", self.model_id],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, close_fds=True,
        )
        child.close()
        self.sock = parent
        parent.setblocking(False)
        self._log_thread = threading.Thread(target=self._pump_log, daemon=True,
                                            name=f"rkllm-log-{self.model_id}")
        self._log_thread.start()
        self._ready = loop.create_future()
        self.alive = True
        loop.add_reader(parent.fileno(), self._on_readable)
        parent.setblocking(True)
        parent.sendall(message_frame(("load", self.config)))
        parent.setblocking(False)
        try:
            self.info = await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except asyncio.TimeoutError:
            self.kill()
            raise RuntimeUnavailableError(
                f"Loading model '{self.model_id}' took longer than {timeout_s:.0f} s.",
                "Check the storage speed and `exo-rkllm doctor`, or raise --load-timeout.") from None
        return self.info

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Ask the worker to release the model and exit; kill it if it does not."""
        if self.proc is None:
            return
        if self.alive and self.sock is not None:
            try:
                self.send(("shutdown",))
            except OSError:
                pass
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, self.proc.wait), grace_s)
        except asyncio.TimeoutError:
            self.kill()
            await loop.run_in_executor(None, self.proc.wait)
        self._close_socket()

    # -- messages ----------------------------------------------------------------------------------
    def send(self, message: tuple) -> None:
        assert self.sock is not None
        frame = message_frame(message)
        self.sock.setblocking(True)
        try:
            self.sock.sendall(frame)
        finally:
            self.sock.setblocking(False)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._handle_eof()
            return
        for msg in self._reader.feed(data):
            kind = msg[0]
            if kind == "ready":
                if self._ready and not self._ready.done():
                    self._ready.set_result(msg[1])
            elif kind == "init_failed":
                if self._ready and not self._ready.done():
                    self._ready.set_exception(self._load_error(f"{msg[1]}: {msg[2]}"))
            else:
                self._on_message(msg)

    def _handle_eof(self) -> None:
        loop = asyncio.get_running_loop()
        self._close_socket()
        self.alive = False
        loop.create_task(self._reap())

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(loop.run_in_executor(None, self.proc.wait), 10)
        except asyncio.TimeoutError:
            self.kill()
            code = await loop.run_in_executor(None, self.proc.wait)
        if self._log_thread is not None:
            await loop.run_in_executor(None, self._log_thread.join, 2)
        cause = self.crash_cause(code)
        if self._ready and not self._ready.done():
            self._ready.set_exception(self._load_error(f"the worker {describe_exit(code)} while loading"))
            return
        self._on_exit(self, cause)

    def crash_cause(self, returncode: int | None) -> str:
        text = f"The runtime worker for '{self.model_id}' {describe_exit(returncode)}"
        if returncode == -signal.SIGSEGV:
            text += " inside the RKLLM runtime"
        elif returncode == -signal.SIGKILL:
            text += " (out of memory, or killed from outside)"
        hint = diagnose(list(self.log_tail))
        return f"{text}. {hint}" if hint else f"{text}."

    def _load_error(self, what: str) -> RuntimeUnavailableError:
        hint = diagnose(list(self.log_tail))
        tail = "; ".join(list(self.log_tail)[-3:])
        message = f"Model '{self.model_id}' could not be loaded: {what}."
        if tail and not hint:
            message += f" The runtime said: {tail}"
        return RuntimeUnavailableError(message, hint or "Run `exo-rkllm doctor` to check the driver, runtime "
                                       "and model versions, and `exo-rkllm models verify`.")

    def _close_socket(self) -> None:
        if self.sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            except (RuntimeError, ValueError, OSError):
                pass
            self.sock.close()
            self.sock = None

    def _pump_log(self) -> None:
        """Forward the runtime's own output to logging and keep its tail for diagnosis."""
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.log_tail.append(line)
                runtime_log.info("[%s] %s", self.model_id, line)

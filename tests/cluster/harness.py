"""Real processes for the cluster tests: simulated nodes (`exo-rkllm serve --simulate`) behind a real nginx.

Everything binds 127.0.0.1 on OS-assigned free ports; every process is started in its own session so
teardown (and a test's "board dies" SIGKILL) reaches its worker processes too.
"""

from __future__ import annotations

import contextlib

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exo_rkllm.ops.nginx import nginx_command

STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0, api_key: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """GET with the standard library: (status, body, headers); HTTP errors are returned, not raised."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group id is the pid: start_new_session=True
    except ProcessLookupError:
        pass


@dataclass
class Node:
    """One simulated board: `python -m exo_rkllm.cli serve --simulate ...` as a real subprocess."""

    name: str
    models: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    queue_depth: int = 64
    api_key: str | None = None
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        self.port = self.port or free_port()
        cmd = [sys.executable, "-m", "exo_rkllm.cli", "serve", "--simulate", "--host", "127.0.0.1",
               "--port", str(self.port), "--cluster-header", "--queue-depth", str(self.queue_depth)]
        for model in self.models:
            cmd += ["--model", model]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env}, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Until /healthcheck answers 200 and /v1/models lists this node's models."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"node {self.name} ({' '.join(self.proc.args)}) exited with {self.proc.returncode}:\n"
                            f"{_tail(self.log)}")
            try:
                status, _, _ = http_get(self.url + "/healthcheck", timeout=2)
                if status == 200:
                    status, body, _ = http_get(self.url + "/v1/models", timeout=5, api_key=self.api_key)
                    ids = {m["id"] for m in json.loads(body).get("data", [])} if status == 200 else set()
                    if set(self.models) <= ids:
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        pytest.fail(f"node {self.name} not ready after {timeout:.0f}s:\n{_tail(self.log)}")

    def kill(self) -> None:
        """The board dies: SIGKILL the node and its workers at once."""
        if self.proc is not None:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc, signal.SIGKILL)  # workers left behind, if any
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def metrics(self) -> str:
        status, body, _ = http_get(self.url + "/metrics", api_key=self.api_key)
        assert status == 200, f"{self.name} /metrics answered {status}"
        return body.decode()

    def served(self, model: str) -> int:
        """Chat requests this node answered successfully for ``model``, from rkllm_requests_total."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name != "rkllm_requests_total":
                    continue
                labels = sample.labels
                if labels.get("model") == model and str(labels.get("status", "")).startswith("2"):
                    total += sample.value
        return int(total)


def start_nodes(nodes: list[Node]) -> None:
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready()


@contextlib.contextmanager
def running(nodes: list[Node], balancer: "Balancer"):
    """Nodes started in parallel, then nginx in front; everything stopped again however the block ends."""
    try:
        start_nodes(nodes)
        balancer.start()
        yield
    finally:
        balancer.stop()
        for node in nodes:
            node.stop()


@dataclass
class Balancer:
    """A real nginx, unprivileged, configured by the real `exo-rkllm nginx-config --standalone`."""

    nodes: list[Node]
    prefix: Path
    nginx: Path
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def start(self) -> None:
        self.port = self.port or free_port()
        cmd = [sys.executable, "-m", "exo_rkllm.cli", "nginx-config", "--standalone", str(self.prefix),
               "--listen", f"127.0.0.1:{self.port}", "--worker-processes", "1", "--upstream-header",
               *self.extra_args]
        for node in self.nodes:
            cmd += ["--node", node.address]
        gen = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert gen.returncode == 0, f"nginx-config failed: {gen.stderr}"
        self.proc = subprocess.Popen(nginx_command(self.nginx, self.prefix, self.conf, "-g", "daemon off;"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited with {self.proc.returncode}:\n{_tail(self.prefix / 'error.log')}")
            try:
                if http_get(self.url + "/balancer/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"nginx did not answer /balancer/health:\n{_tail(self.prefix / 'error.log')}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)  # fast shutdown of master and workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def access_log(self) -> str:
        return (self.prefix / "access.log").read_text(errors="replace")


def node_for(upstream_header: str, nodes: list[Node]) -> Node:
    """The node that served a response, from X-RKLLM-Upstream (the last address nginx tried)."""
    last = upstream_header.split(",")[-1].strip().split(" : ")[-1].strip()
    for node in nodes:
        if node.address == last:
            return node
    raise AssertionError(f"X-RKLLM-Upstream {upstream_header!r} names no known node")

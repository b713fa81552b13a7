"""One NPU, many clients, at the simulator's real Qwen2.5-1.5B pace: a bounded FIFO queue (503 with
Retry-After past it), clients that disconnect (queued or streaming) free their place or abort their
run, and a request that outlives its timeout gets a 504 or an error event."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import openai
import pytest

from exo_rkllm.metrics import REGISTRY
from tests.server.conftest import client

MODEL = "sim-qwen2.5-1.5b"


def open_request(url: str, body: dict) -> socket.socket:
    """Send a request on a raw socket and leave it open (the caller decides when the client 'dies')."""
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return s


def read_until(s: socket.socket, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        chunk = s.recv(4096)
        assert chunk, f"connection closed before {marker!r}: {got[-300:]!r}"
        got += chunk
    return got


def wait_for(cond, what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def completion_tokens(model: str) -> float:
    return REGISTRY.get_sample_value("rkllm_completion_tokens_total", {"model": model}) or 0.0


def long_request(stream: bool) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "max_tokens": 1000}


def test_disconnect_while_streaming_aborts_the_run(slow, slow_url):
    svc = slow.service(MODEL)
    wait_for(slow.idle, "node idle before the test")
    before = completion_tokens(MODEL)
    s = open_request(slow_url, long_request(stream=True))
    read_until(s, b'"content":"H')  # tokens are flowing
    assert svc.running
    s.close()  # the client goes away mid-stream
    wait_for(lambda: not svc.running, "run aborted after the client left")
    # a full reply is ~180 tokens at 61 ms each; an aborted one stops after a handful
    assert completion_tokens(MODEL) - before < 60
    r = client(slow_url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=3)
    assert r.choices[0].finish_reason == "length"  # the worker serves the next request normally


def test_queue_overflow_503_retry_after_and_queued_client_leaving(slow, slow_url):
    svc = slow.service(MODEL)
    wait_for(slow.idle, "node idle before the test")
    running = open_request(slow_url, long_request(stream=True))
    read_until(running, b"data: ")
    queued = open_request(slow_url, long_request(stream=False))
    wait_for(lambda: svc.queue_length == 1, "second request queued")

    u = urlsplit(slow_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(long_request(stream=True)),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 503
    assert int(resp.getheader("Retry-After")) >= 1
    assert body["error"]["code"] == "queue_full" and "queue" in body["error"]["message"]
    with pytest.raises(openai.InternalServerError) as e:
        client(slow_url).chat.completions.create(**long_request(stream=False))
    assert e.value.status_code == 503

    queued.close()  # a queued client leaves: its place is freed, the running one goes on
    wait_for(lambda: svc.queue_length == 0, "queued request left the queue")
    assert svc.running
    running.close()
    wait_for(lambda: not svc.running, "running request aborted")


def test_timeout_is_504_or_an_error_event(slow, slow_url):
    c = client(slow_url)
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="sim-slow-timeout", messages=msgs, max_tokens=500)
    assert e.value.status_code == 504 and e.value.code == "request_timeout"
    got = []
    with pytest.raises(openai.APIError) as e:
        for chunk in c.chat.completions.create(model="sim-slow-timeout", messages=msgs, max_tokens=500, stream=True):
            got.append(chunk)
    assert got and "1 s" in str(e.value.message)  # some tokens came, then the error event
    wait_for(lambda: not slow.service("sim-slow-timeout").running, "timed-out run aborted")


def test_auto_model_without_a_reasoning_model_here_is_404(slow_url):
    with pytest.raises(openai.NotFoundError) as e:
        client(slow_url).chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}],
                                                 reasoning_effort="high")
    assert e.value.code == "model_not_found" and "reasoning" in e.value.message

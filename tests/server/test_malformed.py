"""Bad input over raw HTTP: always a 4xx with an OpenAI error body, never a 5xx, and the node keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.server.conftest import client

MSG = [{"role": "user", "content": "hi"}]


def post(url: str, body: bytes, path: str = "/v1/chat/completions", headers: dict | None = None,
         method: str = "POST") -> tuple[int, dict, dict]:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(raw) if raw else {}
    finally:
        conn.close()


def chat(**fields) -> bytes:
    return json.dumps({"model": "sim-instant", "messages": MSG, **fields}).encode()


CASES = {
    "invalid json": b'{"model": "sim-instant", "messages": [',
    "empty body": b"",
    "json array": b"[1, 2, 3]",
    "json string": b'"hello"',
    "invalid utf-8": b'{"model": "sim-instant", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    "lone surrogate": b'{"model": "sim-instant", "messages": [{"role": "user", "content": "\\ud800"}]}',
    "NaN temperature": b'{"model": "sim-instant", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    "missing messages": json.dumps({"model": "sim-instant"}).encode(),
    "empty messages": chat(messages=[]),
    "messages not a list": chat(messages="hi"),
    "message not an object": chat(messages=["hi"]),
    "bad role": chat(messages=[{"role": "wizard", "content": "hi"}]),
    "content a number": chat(messages=[{"role": "user", "content": 42}]),
    "image part": chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
    "only system": chat(messages=[{"role": "system", "content": "be nice"}]),
    "tool message": chat(messages=[{"role": "tool", "content": "42", "tool_call_id": "a"}]),
    "missing model": json.dumps({"messages": MSG}).encode(),
    "model a number": chat(model=7),
    "model with path": chat(model="../../etc/passwd"),
    "model with newline": chat(model="sim-instant\nX-Evil: 1"),
    "huge model name": chat(model="m" * 10_000),
    "max_tokens string": chat(max_tokens="ten"),
    "max_tokens negative": chat(max_tokens=-1),
    "max_tokens zero": chat(max_tokens=0),
    "max_tokens absurd": chat(max_tokens=10**30),
    "max_tokens beyond context": chat(max_tokens=100_000),
    "max_tokens float": chat(max_tokens=3.5),
    "max_tokens bool": chat(max_tokens=True),
    "temperature absurd": chat(temperature=1e308),
    "temperature string": chat(temperature="hot"),
    "top_p above 1": chat(top_p=1.5),
    "stream not bool": chat(stream="yes"),
    "stream_options not object": chat(stream=True, stream_options=[1]),
    "stop not string": chat(stop=5),
    "too many stops": chat(stop=["a", "b", "c", "d", "e"]),
    "n=3": chat(n=3),
    "n=0": chat(n=0),
    "tools": chat(tools=[{"type": "function", "function": {"name": "f"}}]),
    "logprobs": chat(logprobs=True),
    "json mode": chat(response_format={"type": "json_object"}),
    "bad reasoning_format": chat(reasoning_format="loud"),
    "bad reasoning_effort": chat(reasoning_effort="extreme"),
    "negative reasoning budget": chat(reasoning_budget=-5),
    "seed string": chat(seed="abc"),
    "template kwargs not object": chat(chat_template_kwargs="x"),
    "template kwargs reserved key": chat(chat_template_kwargs={"tokenize": True}),
    "template kwargs nested value": chat(chat_template_kwargs={"enable_thinking": {"a": 1}}),
    "deep nesting": b'{"model": "sim-instant", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_gets_4xx_error_body(instant_url, name):
    status, headers, body = post(instant_url, CASES[name])
    assert 400 <= status < 500, (name, status, body)
    err = body["error"]
    assert isinstance(err["message"], str) and len(err["message"]) > 10
    assert err["type"] == "invalid_request_error" or status == 404
    assert headers["Content-Type"].startswith("application/json")


def test_unknown_model_is_404_model_not_found(instant_url):
    status, _, body = post(instant_url, chat(model="llama-70b"))
    assert status == 404 and body["error"]["code"] == "model_not_found"
    assert "sim-instant" in body["error"]["message"]


def test_completions_malformed(instant_url):
    for fields in ({"prompt": ""}, {"prompt": 5}, {"prompt": ["a", "b"]}, {"prompt": [1, -2]},
                   {"prompt": [10**9]}, {"prompt": "hi", "echo": True}, {}):
        status, _, body = post(instant_url, json.dumps({"model": "sim-instant", **fields}).encode(),
                               path="/v1/completions")
        assert 400 <= status < 500 and "error" in body, (fields, status, body)


def test_huge_body_is_413(instant_url):
    big = chat(messages=[{"role": "user", "content": "x" * (2 << 20)}])
    status, _, body = post(instant_url, big)
    assert status == 413
    assert "limit" in body["error"]["message"] and body["error"]["code"] == "request_too_large"


def test_prompt_far_beyond_context_is_refused_before_tokenizing(instant_url):
    # under the body limit, but 4096 tokens cannot hold it: a 400, not a second of blocked event loop
    status, _, body = post(instant_url, chat(messages=[{"role": "user", "content": "word " * 180_000}]))
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert "characters" in body["error"]["message"]


def test_unknown_route_and_method(instant_url):
    status, _, body = post(instant_url, b"{}", path="/v1/embeddings")
    assert status == 404 and "/v1/chat/completions" in body["error"]["message"]
    status, _, body = post(instant_url, b"", path="/v1/chat/completions", method="GET")
    assert status == 405 and "error" in body


def test_garbage_on_the_socket_does_not_hurt_the_node(instant_url):
    u = urlsplit(instant_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(b"\x00\xff GARBAGE \r\n\r\n")
        s.recv(1024)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n{")
    # and then a normal request still works
    r = client(instant_url).chat.completions.create(model="sim-instant", messages=MSG)
    assert r.choices[0].message.content

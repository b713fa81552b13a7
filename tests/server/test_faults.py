"""The runtime dies under a request (simulated segfault): the client gets a 500 error body, or an error
event when streaming had started — never a hang — and the next request is served by a restarted worker."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from exo_rkllm.catalog import get_card
from tests.server.conftest import LiveCore, client

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def crashing():
    # The fault is in the environment only while the first workers start: their restarts are healthy.
    live = LiveCore([get_card("sim-instant"), get_card("sim-reasoning-instant")],
                    env={"RKLLM_SIM_FAULT": "segv_at:5"})
    yield live
    live.close()


def test_worker_crash_before_the_response_is_a_500_then_the_node_recovers(crashing):
    c = client(crashing.serve())
    with pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model="sim-reasoning-instant", messages=MSG)  # the worker dies at token 5
    assert e.value.status_code == 500 and e.value.code == "worker_crashed" and "SIGSEGV" in e.value.message
    r = c.chat.completions.create(model="sim-reasoning-instant", messages=MSG)
    assert r.choices[0].message.content.startswith("Hello!")
    assert crashing.service("sim-reasoning-instant").restarts == 1


def test_worker_crash_mid_stream_is_an_error_event_then_done(crashing):
    url = crashing.serve()
    req = urllib.request.Request(url + "/v1/chat/completions", method="POST",
                                 headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": "sim-instant", "messages": MSG, "stream": True}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        events = [e for e in resp.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "worker_crashed" and error["message"]
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    full = "".join(ch.choices[0].delta.content or "" for ch in
                   client(url).chat.completions.create(model="sim-instant", messages=MSG, stream=True))
    assert "simulated assistant" in full  # the restarted worker serves the whole reply
    assert text and full.startswith(text) and len(text) < 10  # the tokens before the crash, then the error

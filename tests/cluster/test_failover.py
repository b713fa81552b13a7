"""A board dies under load: nginx retries what had not reached the client; a cut stream ends with an error.

Three simulated nodes with a small per-token delay (RKLLM_SIM_DECODE_MS) so requests are in flight, and
queued, when a node is SIGKILLed (node and its worker processes: the board is gone).
"""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from openai import AsyncOpenAI

from .harness import Balancer, Node, node_for, running

MODEL = "sim-instant"
DECODE_MS = "20"


@pytest.fixture(scope="module")
def rack(nginx_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("failover")
    nodes = [Node(f"f{i}", [MODEL], work, env={"RKLLM_SIM_DECODE_MS": DECODE_MS}) for i in range(3)]
    balancer = Balancer(nodes, work / "nginx", nginx_bin)
    with running(nodes, balancer):
        yield nodes, balancer


@pytest.fixture
def live_rack(rack):
    """Every node up at the start of each test (a previous test may have killed one)."""
    nodes, balancer = rack
    dead = [node for node in nodes if not node.alive()]
    for node in dead:
        node.start()  # same port: the nginx config is unchanged
    for node in dead:
        node.wait_ready()
    return nodes, balancer


def _client(balancer: Balancer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=balancer.url + "/v1", api_key="not-needed", max_retries=0, timeout=60)


async def _wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_node_killed_during_a_run_loses_no_request_that_had_not_started(live_rack):
    nodes, balancer = live_rack
    victim = nodes[0]
    before = victim.served(MODEL)
    outcomes: list[tuple[str, object, bool]] = []  # (kind, result or exception, any byte received)

    async def plain(client, i):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"plain {i}"}], max_tokens=12)
        return raw.parse(), raw.headers.get("X-RKLLM-Upstream", "")

    async def streamed(client, i):
        got_chunk = False
        try:
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"stream {i}"}], max_tokens=12, stream=True)
            pieces = []
            async for chunk in stream:
                got_chunk = True
                pieces.append(chunk)
            outcomes.append(("stream", pieces, got_chunk))
        except Exception as exc:  # noqa: BLE001 - recorded and judged below
            outcomes.append(("stream", exc, got_chunk))

    async def run():
        client = _client(balancer)
        try:
            jobs = [asyncio.ensure_future(plain(client, i)) for i in range(24)]
            jobs += [asyncio.ensure_future(streamed(client, i)) for i in range(12)]
            # kill once the victim has finished at least one request and still has others queued
            await _wait_until(lambda: victim.served(MODEL) > before)
            victim.kill()
            return await asyncio.gather(*jobs[:24], return_exceptions=True)
        finally:
            await asyncio.gather(*jobs, return_exceptions=True)
            await client.close()

    plain_results = asyncio.run(run())
    assert not victim.alive()
    failures = [r for r in plain_results if isinstance(r, BaseException)]
    assert not failures, f"non-streaming requests never start before they finish; nginx must retry them: {failures!r}"
    for completion, _ in plain_results:
        assert completion.choices[0].message.content
    retried = [up for _, up in plain_results if victim.address in up and not up.endswith(victim.address)]
    assert retried, "the kill must have hit requests in flight on the victim (they were retried elsewhere)"
    # streams: a failure is acceptable only once the client had received part of the stream
    early = [exc for kind, exc, got in outcomes if isinstance(exc, BaseException) and not got]
    assert not early, f"streams that had not started must be retried, not failed: {early!r}"
    assert len(outcomes) == 12


def test_a_stream_cut_midway_ends_with_an_error_instead_of_hanging(live_rack):
    nodes, balancer = live_rack

    async def run():
        client = _client(balancer)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "a long answer please"}],
                max_tokens=400, stream=True)
            serving = node_for(raw.headers["X-RKLLM-Upstream"], nodes)
            stream = raw.parse()
            received = 0

            async def consume():
                nonlocal received
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        received += 1
                    if received == 2:
                        serving.kill()

            with pytest.raises(Exception) as err:
                await asyncio.wait_for(consume(), 30)  # a hang fails the test instead of blocking the suite
            return err.value, received, serving
        finally:
            await client.close()

    error, received, serving = asyncio.run(run())
    assert not serving.alive()
    assert received >= 2
    assert not isinstance(error, asyncio.TimeoutError), "the client hung after the node died"
    # openai-python reports the truncated chunked body as a connection error, caused by the transport's
    # "peer closed connection without sending complete message body"
    assert isinstance(error, openai.APIConnectionError), repr(error)
    # (httpx or httpx2, whichever transport this openai release uses)
    assert type(error.__cause__).__name__ == "RemoteProtocolError", repr(error.__cause__)
    assert "complete message body" in str(error.__cause__)

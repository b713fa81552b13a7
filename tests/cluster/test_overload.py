"""A saturated rack: clients get 503 + Retry-After (never a hang, a 502 or an HTML page), then it recovers.

Two simulated nodes with one queue slot each (`--queue-depth 1`) and a small per-token delay, behind nginx with
`--fail-timeout 2` so nodes rested after full-queue 503s come back quickly.
"""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from openai import AsyncOpenAI

from .harness import Balancer, Node, running

MODEL = "sim-instant"


@pytest.fixture(scope="module")
def small_rack(nginx_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("overload")
    nodes = [Node(f"q{i}", [MODEL], work, queue_depth=1, env={"RKLLM_SIM_DECODE_MS": "20"}) for i in range(2)]
    balancer = Balancer(nodes, work / "nginx", nginx_bin, extra_args=["--fail-timeout", "2"])
    with running(nodes, balancer):
        yield nodes, balancer


async def _burst(balancer: Balancer, count: int) -> list:
    client = AsyncOpenAI(base_url=balancer.url + "/v1", api_key="not-needed", max_retries=0, timeout=60)

    async def one(i: int):
        return await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"busy {i}"}], max_tokens=12)

    try:
        return await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    finally:
        await client.close()


def test_a_saturated_rack_answers_503_with_retry_after_and_recovers(small_rack):
    nodes, balancer = small_rack
    results = asyncio.run(_burst(balancer, 20))
    served = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert served, "the rack must still serve what fits in its queues"
    assert refused, "20 requests on 2 nodes x (1 running + 1 queued) must overflow"
    for raw in served:
        assert raw.parse().choices[0].message.content
    retry_after = []
    for exc in refused:
        assert isinstance(exc, openai.InternalServerError) and exc.status_code == 503, repr(exc)
        assert exc.code in ("queue_full", "no_node_available"), exc.body
        retry_after.append(int(exc.response.headers["Retry-After"]))
    assert min(retry_after) > 0
    # A client that backs off gets answers again once the queues drain and nginx's rest (2 s) ends.
    deadline = time.monotonic() + 60
    while True:
        time.sleep(min(retry_after))
        again = asyncio.run(_burst(balancer, 2))
        if all(not isinstance(r, BaseException) for r in again):
            break
        assert all(getattr(r, "status_code", None) == 503 for r in again if isinstance(r, BaseException)), again
        assert time.monotonic() < deadline, f"the rack did not recover: {again!r}"

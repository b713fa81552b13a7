"""Real nginx in front of four simulated nodes: spread, model-aware routing, /v1/models union, auto model.

Nodes n0-n2 hold the common quick model (sim-instant); n3 holds only a reasoning model
(sim-reasoning-instant). Requests for a model a node lacks get 404 there and nginx moves on. The nodes
require an API key, so every test also proves nginx passes the client's Authorization header through.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import openai
import pytest
from openai import AsyncOpenAI

from .harness import Balancer, Node, http_get, node_for, running

COMMON = "sim-instant"
OTHER = "sim-reasoning-instant"
KEY = "rack-test-key"


@dataclass
class Rack:
    nodes: list[Node]
    common: list[Node]
    other: Node
    balancer: Balancer

    def client(self) -> AsyncOpenAI:
        # max_retries=0: any retry seen here is nginx's, never the SDK's.
        return AsyncOpenAI(base_url=self.balancer.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def rack(nginx_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("rack")
    common = [Node(f"n{i}", [COMMON], work, api_key=KEY) for i in range(3)]
    other = Node("n3", [OTHER], work, api_key=KEY)
    nodes = [*common, other]
    balancer = Balancer(nodes, work / "nginx", nginx_bin)
    with running(nodes, balancer):
        yield Rack(nodes, common, other, balancer)


async def _chat(client: AsyncOpenAI, model: str, text: str, **kwargs):
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=16, **kwargs
    )
    return raw.parse(), raw.headers.get("X-RKLLM-Upstream", "")


def test_sixty_concurrent_requests_all_succeed_spread_over_every_node(rack):
    before = {node.name: node.served(COMMON) for node in rack.nodes}

    async def run():
        client = rack.client()
        try:
            return await asyncio.gather(*(_chat(client, COMMON, f"hello {i}") for i in range(60)))
        finally:
            await client.close()

    results = asyncio.run(run())
    assert len(results) == 60
    for completion, _ in results:
        assert completion.model == COMMON
        assert completion.choices[0].message.content
        assert completion.choices[0].finish_reason in ("stop", "length")
    by_header = Counter(node_for(upstream, rack.nodes).name for _, upstream in results)
    served = {node.name: node.served(COMMON) - before[node.name] for node in rack.nodes}
    assert sum(served.values()) == 60, served
    assert served == {name: by_header.get(name, 0) for name in served}, (served, by_header)
    for node in rack.common:
        assert served[node.name] > 0, f"least_conn left {node.name} idle: {served}"
    assert served[rack.other.name] == 0, "the node without the model must never answer for it"


def test_a_model_held_by_one_node_lands_there_and_the_common_model_never_fails(rack):
    before_other = rack.other.served(OTHER)

    async def run():
        client = rack.client()
        try:
            jobs = [_chat(client, OTHER if i % 2 else COMMON, f"question {i}") for i in range(24)]
            return await asyncio.gather(*jobs)
        finally:
            await client.close()

    results = asyncio.run(run())
    for completion, upstream in results:
        landed = node_for(upstream, rack.nodes)
        if completion.model == OTHER:
            assert landed is rack.other, f"{OTHER} answered by {landed.name} ({upstream})"
        else:
            assert completion.model == COMMON
            assert landed in rack.common, f"{COMMON} answered by {landed.name} ({upstream})"
        assert completion.choices[0].message.content or getattr(
            completion.choices[0].message, "reasoning_content", None
        )
    assert Counter(c.model for c, _ in results) == {OTHER: 12, COMMON: 12}
    assert rack.other.served(OTHER) - before_other == 12
    for node in rack.common:
        assert node.served(OTHER) == 0


def test_models_through_the_balancer_list_every_nodes_models(rack):
    async def run():
        client = rack.client()
        try:
            # several calls so different nodes answer, including the one holding only the other model
            return await asyncio.gather(*(client.models.list() for _ in range(8)))
        finally:
            await client.close()

    for page in asyncio.run(run()):
        ids = {model.id for model in page.data}
        assert {COMMON, OTHER} <= ids, ids


def test_auto_model_picks_the_quick_or_the_reasoning_node(rack):
    async def run():
        client = rack.client()
        try:
            quick = [_chat(client, "auto", f"hi {i}") for i in range(6)]
            deep = [_chat(client, "auto", f"think {i}", reasoning_effort="medium") for i in range(6)]
            return await asyncio.gather(*quick), await asyncio.gather(*deep)
        finally:
            await client.close()

    quick, deep = asyncio.run(run())
    for completion, upstream in quick:
        assert completion.model == COMMON, "the chosen model is reported in the response"
        assert node_for(upstream, rack.nodes) in rack.common
    for completion, upstream in deep:
        assert completion.model == OTHER
        assert node_for(upstream, rack.nodes) is rack.other


def test_a_model_no_node_holds_gets_the_nodes_404_not_a_balancer_error(rack):
    async def run():
        client = rack.client()
        try:
            with pytest.raises(openai.NotFoundError) as err:
                await _chat(client, "no-such-model", "hello")
            return err.value
        finally:
            await client.close()

    error = asyncio.run(run())
    assert error.code == "model_not_found"
    tried = error.response.headers["X-RKLLM-Upstream"]
    assert all(node.address in tried for node in rack.nodes), f"every node is asked once: {tried}"


def test_streaming_through_the_balancer_arrives_in_pieces_and_ends(rack):
    async def run():
        client = rack.client()
        try:
            stream = await client.chat.completions.create(
                model=COMMON, messages=[{"role": "user", "content": "tell me"}], max_tokens=24, stream=True
            )
            return [chunk async for chunk in stream]
        finally:
            await client.close()

    chunks = asyncio.run(run())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "SSE must not be buffered"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_a_wrong_api_key_is_refused_by_the_node_and_not_retried(rack):
    """Authorization reaches the nodes unchanged: a wrong key gets the node's 401 (401 is never retried)."""
    async def run():
        client = AsyncOpenAI(base_url=rack.balancer.url + "/v1", api_key="wrong-key", max_retries=0, timeout=60)
        try:
            with pytest.raises(openai.AuthenticationError) as err:
                await _chat(client, COMMON, "hello")
            return err.value
        finally:
            await client.close()

    error = asyncio.run(run())
    assert "," not in error.response.headers["X-RKLLM-Upstream"], "a 401 must not be retried on other nodes"
    status, _, _ = http_get(rack.balancer.url + "/balancer/health")
    assert status == 200, "nginx's own health route needs no key"

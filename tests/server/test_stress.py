"""Many clients at once, and 1,000 requests with random disconnects: nothing is left behind."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from tests.server.conftest import client

MSG = [{"role": "user", "content": "hi"}]


def test_concurrent_openai_clients(instant, instant_url):
    import concurrent.futures

    expected = client(instant_url).chat.completions.create(model="sim-instant", messages=MSG).choices[0].message.content

    def one(i: int) -> tuple[str, str]:
        c = client(instant_url)
        if i % 2:
            text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
                model="sim-instant", messages=MSG, stream=True))
        else:
            text = c.chat.completions.create(model="sim-instant", messages=MSG).choices[0].message.content
        return text, "ok"

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(48)))
    assert all(text == expected for text, _ in results)


async def _hammer(url: str, n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"done": 0, "dropped": 0, "rejected": 0}
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        model = rng.choice(["sim-instant", "sim-reasoning-instant"])
        stream = rng.random() < 0.6
        body = {"model": model, "messages": [{"role": "user", "content": f"message {i}"}], "stream": stream}
        drop_after = rng.choice([None, None, 0.0, 0.0005, 0.002, 0.01])
        async with sem:
            # a fresh connection per request, so closing it is a real client disconnect
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                try:
                    coro = _request(session, url, body)
                    if drop_after is None:
                        status = await coro
                        counts["done" if status == 200 else "rejected"] += 1
                    else:
                        await asyncio.wait_for(coro, drop_after)
                        counts["done"] += 1
                except asyncio.TimeoutError:
                    counts["dropped"] += 1

    async def _request(session: aiohttp.ClientSession, url: str, body: dict) -> int:
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            data = await resp.read()
            if resp.status == 200 and body["stream"]:
                assert data.endswith(b"data: [DONE]\n\n")
            return resp.status

    await asyncio.gather(*(one(i) for i in range(n)))
    return counts


def _client_gone_count() -> float:
    """Requests the node saw its client abandon (status label 499)."""
    from exo_rkllm.metrics import REGISTRY

    return sum(REGISTRY.get_sample_value("rkllm_requests_total", {"model": m, "route": "/v1/chat/completions",
                                                                   "status": "499"}) or 0.0
               for m in ("sim-instant", "sim-reasoning-instant"))


def test_thousand_requests_with_random_disconnects_leave_nothing_behind(instant, instant_url):
    tasks_before = instant.tasks()
    gone_before = _client_gone_count()
    counts = asyncio.run(_hammer(instant_url, 1000, seed=1234))
    assert counts["rejected"] == 0
    assert counts["dropped"] > 200 and counts["done"] > 200, counts
    assert _client_gone_count() - gone_before > 50  # many disconnects reached a handler mid-request
    deadline = time.monotonic() + 15
    while not instant.idle() or instant.tasks() - tasks_before:
        assert time.monotonic() < deadline, (
            f"left behind: running/queued={[(s.running, s.queue_length) for s in instant.core.services.values()]}, "
            f"tasks={instant.tasks() - tasks_before}")
        time.sleep(0.05)
    for svc in instant.core.services.values():
        assert svc.worker_pid is not None  # the workers survived
    # the node still answers normally
    r = client(instant_url).chat.completions.create(model="sim-reasoning-instant", messages=MSG)
    assert r.choices[0].message.content

"""API key, cluster /v1/models union, metrics and health routes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from tests.server.conftest import client

MSG = [{"role": "user", "content": "hi"}]


def get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture(scope="module")
def keyed_url(instant):
    return instant.serve(api_key="s3cret-key")


def test_api_key_required_everywhere_but_healthcheck(keyed_url):
    with pytest.raises(openai.AuthenticationError) as e:
        client(keyed_url, api_key="wrong").chat.completions.create(model="sim-instant", messages=MSG)
    assert e.value.code == "invalid_api_key"
    status, body, _ = get(keyed_url + "/v1/models")
    assert status == 401 and json.loads(body)["error"]["code"] == "missing_api_key"
    status, body, _ = get(keyed_url + "/metrics")
    assert status == 401
    status, _, _ = get(keyed_url + "/healthcheck")
    assert status == 200
    r = client(keyed_url, api_key="s3cret-key").chat.completions.create(model="sim-instant", messages=MSG)
    assert r.choices[0].message.content
    status, body, _ = get(keyed_url + "/metrics", {"Authorization": "Bearer s3cret-key"})
    assert status == 200 and b"rkllm_requests_total" in body


def test_metrics_count_requests_and_show_the_simulator(instant_url):
    client(instant_url).chat.completions.create(model="sim-instant", messages=MSG)
    status, body, headers = get(instant_url + "/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'rkllm_requests_total{model="sim-instant",route="/v1/chat/completions",status="200"}' in text
    assert "rkllm_simulated 1.0" in text
    assert 'rkllm_queue_limit{model="sim-instant"}' in text


def test_healthcheck(instant_url):
    status, body, _ = get(instant_url + "/healthcheck")
    data = json.loads(body)
    assert status == 200 and data["status"] == "ok" and "sim-instant" in data["models"]


def test_cluster_models_union_with_header(instant, instant_url, slow):
    fronted = instant.serve(cluster_header=True)
    peer = slow.serve().split("//")[1]
    dead = "127.0.0.1:9"  # discard port: nothing listens, the peer is skipped
    status, body, _ = get(fronted + "/v1/models", {"X-RKLLM-Cluster": f"{peer},{dead}"})
    ids = [m["id"] for m in json.loads(body)["data"]]
    assert status == 200
    assert {"sim-instant", "sim-reasoning-instant", "sim-qwen2.5-1.5b"} <= set(ids)
    assert len(ids) == len(set(ids))
    # without --cluster-header the header is ignored (no outgoing requests on a client's say-so)
    plain = instant_url
    status, body, _ = get(plain + "/v1/models", {"X-RKLLM-Cluster": peer})
    assert "sim-qwen2.5-1.5b" not in [m["id"] for m in json.loads(body)["data"]]
    status, body, _ = get(fronted + "/v1/models", {"X-RKLLM-Cluster": "not a host list"})
    assert status == 400


def test_sampling_reload_policy():
    from exo_rkllm.catalog import get_card
    from tests.server.conftest import LiveCore

    live = LiveCore([get_card("sim-instant")], sampling_policy="reload")
    try:
        url = live.serve()
        r = client(url).chat.completions.create(model="sim-instant", messages=MSG, temperature=0.2, top_p=0.5)
        assert r.choices[0].message.content
        assert live.service("sim-instant").loaded_sampling["temperature"] == pytest.approx(0.2)
        assert live.service("sim-instant").loaded_sampling["top_p"] == pytest.approx(0.5)
    finally:
        live.close()

"""Server-wide options: default reasoning format, auto-model keyword rule, renamed auto model."""

from __future__ import annotations

import openai
import pytest

from tests.server.conftest import client

HELLO = [{"role": "user", "content": "Hello there"}]


def test_server_default_reasoning_format_tags_and_request_override(instant):
    url = instant.serve(reasoning_format="tags")
    c = client(url)
    r = c.chat.completions.create(model="sim-reasoning-instant", messages=HELLO)
    assert r.choices[0].message.content.startswith("<think>")
    assert "reasoning_content" not in (r.choices[0].message.model_extra or {})
    r = c.chat.completions.create(model="sim-reasoning-instant", messages=HELLO,
                                  extra_body={"reasoning_format": "separate"})
    assert "<think>" not in r.choices[0].message.content
    assert r.choices[0].message.model_extra["reasoning_content"]


def test_auto_model_keyword_rule_and_custom_name(instant):
    url = instant.serve(auto_model="smart", auto_keywords=("step by step",))
    c = client(url)
    assert c.chat.completions.create(model="smart", messages=HELLO).model == "sim-instant"
    r = c.chat.completions.create(model="smart", messages=[{"role": "user", "content": "Think STEP BY STEP: 2+2?"}])
    assert r.model == "sim-reasoning-instant"
    with pytest.raises(openai.NotFoundError):  # "auto" is just an unknown model on this server
        c.chat.completions.create(model="auto", messages=HELLO)
    assert "smart" in [m.id for m in c.models.list().data]

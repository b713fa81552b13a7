"""The OpenAI contract through the real `openai` SDK against a real node (simulated models)."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from tests.server.conftest import client

HELLO = [{"role": "user", "content": "Hello there"}]


def full_reply(url: str, model: str = "sim-instant", messages=HELLO, **kw) -> str:
    r = client(url).chat.completions.create(model=model, messages=messages, **kw)
    return r.choices[0].message.content


def test_non_streaming_shape_and_usage(instant_url):
    r = client(instant_url).chat.completions.create(model="sim-instant", messages=HELLO)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-") and r.created > 0 and r.model == "sim-instant"
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert "simulated assistant" in choice.message.content
    assert choice.finish_reason == "stop"
    assert "<|im_end|>" not in choice.message.content and "<|endoftext|>" not in choice.message.content
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_contract(instant_url):
    chunks = list(client(instant_url).chat.completions.create(model="sim-instant", messages=HELLO, stream=True))
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content == ""
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop" and last.delta.content is None
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == full_reply(instant_url)


def test_stream_ends_with_done_and_multibyte_text_is_whole(instant_url):
    # The fourth scripted turn holds CJK text and an em dash: byte-level tokens split those characters.
    msgs = []
    for i in range(4):
        msgs.append({"role": "user", "content": f"turn {i}"})
        if i < 3:
            msgs.append({"role": "assistant", "content": "ok"})
    req = urllib.request.Request(instant_url + "/v1/chat/completions", method="POST",
                                 headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": "sim-instant", "messages": msgs, "stream": True}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = resp.read().decode("utf-8")
    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert "你好, 世界 —" in text and "\ufffd" not in text


def test_include_usage_chunk(instant_url):
    chunks = list(client(instant_url).chat.completions.create(
        model="sim-instant", messages=HELLO, stream=True, stream_options={"include_usage": True}))
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_max_tokens_and_max_completion_tokens(instant_url):
    c = client(instant_url)
    r = c.chat.completions.create(model="sim-instant", messages=HELLO, max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5
    assert len(r.choices[0].message.content) <= 5
    r = c.chat.completions.create(model="sim-instant", messages=HELLO, max_completion_tokens=7, stream=False)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 7
    chunks = list(c.chat.completions.create(model="sim-instant", messages=HELLO, max_tokens=4, stream=True))
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("stream", [False, True])
def test_stop_strings_across_token_boundaries(instant_url, stream):
    reply = full_reply(instant_url)
    stop = "simulated assistant"  # many byte-level tokens: matched across boundaries
    assert stop in reply
    c = client(instant_url)
    r = c.chat.completions.create(model="sim-instant", messages=HELLO, stop=["zzz-never", stop], stream=stream)
    if stream:
        chunks = list(r)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
        finish = chunks[-1].choices[0].finish_reason
    else:
        text, finish = r.choices[0].message.content, r.choices[0].finish_reason
    assert text == reply[:reply.index(stop)]
    assert finish == "stop"


def test_stop_prefix_that_never_completes_is_not_lost(instant_url):
    reply = full_reply(instant_url)
    # "simulated X" shares a long prefix with the reply but never occurs: held back, then released.
    text = full_reply(instant_url, stop="simulated Xylophone", stream=False)
    assert text == reply


def test_reasoning_content_separate(instant_url):
    r = client(instant_url).chat.completions.create(model="sim-reasoning-instant", messages=HELLO)
    msg = r.choices[0].message
    reasoning = msg.model_extra["reasoning_content"]
    assert reasoning.startswith("The user greeted me")
    assert "<think>" not in msg.content and "</think>" not in msg.content
    assert msg.content.startswith("Hello! I'm a simulated reasoning model")
    assert r.usage.completion_tokens_details.reasoning_tokens > 0


def test_reasoning_content_streaming(instant_url):
    chunks = list(client(instant_url).chat.completions.create(
        model="sim-reasoning-instant", messages=HELLO, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert reasoning.startswith("The user greeted me") and "</think>" not in reasoning
    assert content.startswith("Hello! I'm a simulated reasoning model") and "<think>" not in content
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    last_reasoning = max(i for i, d in enumerate(deltas) if (d.model_extra or {}).get("reasoning_content"))
    assert last_reasoning < first_content


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_tags_in_content_on_request(instant_url, stream):
    r = client(instant_url).chat.completions.create(model="sim-reasoning-instant", messages=HELLO, stream=stream,
                                                    extra_body={"reasoning_format": "tags"})
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in r if c.choices)
    else:
        text = r.choices[0].message.content
    assert text.startswith("<think>") and "The user greeted me" in text
    head, answer = text.split("</think>", 1)
    assert answer.strip().startswith("Hello! I'm a simulated reasoning model")


@pytest.mark.parametrize("field", ["reasoning_budget", "max_reasoning_tokens"])
def test_reasoning_budget_reaches_the_core_and_cuts_the_thought(instant_url, field):
    c = client(instant_url)
    free = c.chat.completions.create(model="sim-reasoning-instant", messages=HELLO).choices[0].message
    cut = c.chat.completions.create(model="sim-reasoning-instant", messages=HELLO,
                                    extra_body={field: 3}).choices[0].message
    assert 0 < len(cut.model_extra["reasoning_content"]) < len(free.model_extra["reasoning_content"]) / 4
    assert cut.content  # text follows the fed closing tag


def test_reasoning_budget_closes_the_thought_and_answers(instant_url):
    r = client(instant_url).chat.completions.create(model="sim-reasoning-instant", messages=HELLO,
                                                    extra_body={"reasoning_budget": 3})
    msg = r.choices[0].message
    full = client(instant_url).chat.completions.create(model="sim-reasoning-instant", messages=HELLO)
    assert len(msg.model_extra["reasoning_content"]) < len(full.choices[0].message.model_extra["reasoning_content"])
    assert msg.content  # an answer came after the forced </think>
    assert "</think>" not in msg.content


def test_earlier_reasoning_is_not_fed_back(instant, instant_url):
    tok = instant.service("sim-reasoning-instant").tokenizer
    thought = "SECRET-THOUGHT " * 20
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": f"<think>{thought}</think>\n\nHello!"},
            {"role": "user", "content": "again"}]
    r = client(instant_url).chat.completions.create(model="sim-reasoning-instant", messages=msgs)
    plain = [msgs[0], {"role": "assistant", "content": "Hello!"}, msgs[2]]
    r2 = client(instant_url).chat.completions.create(model="sim-reasoning-instant", messages=plain)
    assert r.usage.prompt_tokens == r2.usage.prompt_tokens
    assert r.usage.prompt_tokens < len(tok.encode(thought))


def test_completions_endpoint(instant_url):
    c = client(instant_url)
    r = c.completions.create(model="sim-instant", prompt="Once upon a time", max_tokens=6)
    assert r.object == "text_completion" and r.choices[0].finish_reason == "length"
    assert len(r.choices[0].text) > 0 and r.usage.completion_tokens == 6
    chunks = list(c.completions.create(model="sim-instant", prompt="Once upon a time", max_tokens=6, stream=True,
                                       stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == r.choices[0].text
    assert chunks[-1].usage.completion_tokens == 6


def test_models_list(instant_url):
    models = client(instant_url).models.list()
    ids = [m.id for m in models.data]
    assert {"sim-instant", "sim-reasoning-instant", "auto"} <= set(ids)
    assert all(m.object == "model" and m.owned_by for m in models.data)
    assert client(instant_url).models.retrieve("sim-reasoning-instant").id == "sim-reasoning-instant"
    with pytest.raises(openai.NotFoundError):
        client(instant_url).models.retrieve("gpt-4o")


def test_auto_model_picks_quick_or_reasoning(instant_url):
    c = client(instant_url)
    r = c.chat.completions.create(model="auto", messages=HELLO)
    assert r.model == "sim-instant"
    r = c.chat.completions.create(model="auto", messages=HELLO, reasoning_effort="high")
    assert r.model == "sim-reasoning-instant"
    assert r.choices[0].message.model_extra["reasoning_content"]
    chunks = list(c.chat.completions.create(model="auto", messages=HELLO, stream=True, reasoning_effort="low"))
    assert {ch.model for ch in chunks} == {"sim-reasoning-instant"}


def test_chat_template_kwargs_are_accepted(instant_url):
    r = client(instant_url).chat.completions.create(model="sim-instant", messages=HELLO,
                                                    extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert r.choices[0].message.content


def test_seed_is_accepted(instant_url):
    a = full_reply(instant_url, seed=42, temperature=0.7)
    assert a == full_reply(instant_url, seed=42, temperature=0.7)


def test_error_types_seen_by_the_sdk(instant_url):
    c = client(instant_url)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="no-such-model", messages=HELLO)
    assert e.value.code == "model_not_found" and "sim-instant" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="sim-instant", messages=HELLO, n=2)
    assert e.value.param == "n"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="sim-instant", messages=HELLO, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    assert "not supported yet" in e.value.message and e.value.code == "tools_not_supported"
    with pytest.raises(openai.BadRequestError) as e:  # the loaded profile is temperature 0.7 / top_p 0.8
        c.chat.completions.create(model="sim-instant", messages=HELLO, temperature=1.3)
    assert "temperature=0.7" in e.value.message and "--sampling-policy reload" in e.value.message
    assert e.value.param == "temperature"
    assert full_reply(instant_url, temperature=0.7, top_p=0.8)  # the loaded values themselves are fine


def test_prompt_longer_than_context_is_a_400(instant_url):
    with pytest.raises(openai.BadRequestError) as e:
        client(instant_url).chat.completions.create(model="sim-instant",
                                                    messages=[{"role": "user", "content": "x" * 5000}])
    assert "context of 4096 tokens" in e.value.message and e.value.code == "context_length_exceeded"

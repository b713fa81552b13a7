"""Chat messages -> prompt token ids, with the model's own chat template.

Earlier assistant turns lose their reasoning before templating (feeding thoughts back wastes context
and confuses R1 distills). The template may open ``<think>`` itself; the caller needs to know, because
the model will then emit only the closing tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exo_rkllm.server.errors import APIError, bad_request


# No tokenizer averages more characters per token than this; a prompt beyond context * this cannot fit,
# and is refused before tokenizing (1 MiB of text blocks the event loop for about a second).
MAX_CHARS_PER_TOKEN = 32


def _refuse_oversized(chars: int, card: Any, param: str) -> None:
    ctx = int(card.context_length)
    if chars > ctx * MAX_CHARS_PER_TOKEN:
        raise APIError(400, f"The prompt is {chars} characters, far more than model {card.id!r}'s context of "
                            f"{ctx} tokens can hold. Shorten the conversation (drop earlier turns) or use a model "
                            "with a longer context.", param=param, code="context_length_exceeded")


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    text: str
    think_opened: bool  # the templated prompt ends inside the opening reasoning tag


def strip_reasoning(content: str, think_start: str, think_end: str) -> str:
    """Remove ``<think>...</think>`` blocks, and everything before a lone ``</think>``."""
    if think_end in content:
        content = content[content.rfind(think_end) + len(think_end):]
    if think_start in content:  # an unclosed block: the rest is thought
        content = content[: content.find(think_start)]
    return content.strip()


def prepare_messages(messages: list[dict[str, str]], card: Any) -> list[dict[str, str]]:
    """Copy messages for templating: reasoning stripped from assistant turns, card system prompt added."""
    start = getattr(card, "think_start", None) or "<think>"
    end = getattr(card, "think_end", None) or "</think>"
    out = []
    for m in messages:
        if m["role"] == "assistant":
            m = {"role": "assistant", "content": strip_reasoning(m["content"], start, end)}
        out.append(dict(m))
    system_prompt = getattr(card, "system_prompt", None)
    if system_prompt and not any(m["role"] == "system" for m in out):
        out.insert(0, {"role": "system", "content": system_prompt})
    return out


def build_chat_prompt(tokenizer: Any, card: Any, messages: list[dict[str, str]],
                      template_kwargs: dict[str, Any] | None = None) -> Prompt:
    """Template and tokenize; a template that rejects the conversation gives a 400 with its reason."""
    msgs = prepare_messages(messages, card)
    _refuse_oversized(sum(len(m["content"]) for m in msgs), card, "messages")
    try:
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                             **(template_kwargs or {}))
    except ImportError:  # a broken install (jinja2 missing) is the server's fault, not the client's
        raise
    except Exception as exc:  # jinja2 TemplateError ("roles must alternate ...") and friends
        raise bad_request(f"The chat template of model {card.id!r} rejected these messages: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                          "Fix the message order/roles.", param="messages") from None
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    start = getattr(card, "think_start", None)
    opened = bool(getattr(card, "reasoning", False) and start and _ends_inside(text, start,
                                                                             getattr(card, "think_end", "")))
    return Prompt(ids=ids, text=text, think_opened=opened)


def _ends_inside(text: str, start: str, end: str | None) -> bool:
    """True when the generation prompt's tail opened a reasoning block that it did not close."""
    tail = text[-200:]
    i = tail.rfind(start)
    if i == -1:
        return False
    return not end or end not in tail[i:]


def build_text_prompt(tokenizer: Any, card: Any, prompt: str | list[int], vocab_size: int | None = None) -> Prompt:
    """Raw completion prompt: token ids pass through (range-checked), text is tokenized as is."""
    _refuse_oversized(len(prompt) if isinstance(prompt, str) else 0, card, "prompt")
    if isinstance(prompt, list):
        if vocab_size is not None and any(t >= vocab_size for t in prompt):
            raise bad_request(f"prompt holds token ids outside the model's vocabulary (size {vocab_size}).",
                              param="prompt")
        return Prompt(ids=list(prompt), text="", think_opened=False)
    return Prompt(ids=list(tokenizer.encode(prompt)), text=prompt, think_opened=False)


def check_context(prompt: Prompt, card: Any) -> None:
    """A prompt that leaves no room to generate is refused before it costs a prefill."""
    ctx = int(card.context_length)
    if len(prompt.ids) >= ctx:
        raise APIError(400, f"The prompt is {len(prompt.ids)} tokens but model {card.id!r} has a context of "
                            f"{ctx} tokens (the reply needs room too). Shorten the conversation (drop earlier "
                            "turns) or use a model with a longer context.",
                       param="messages", code="context_length_exceeded")


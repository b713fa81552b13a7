"""Fixes to what exo's ChatGPT API (v0.0.15-alpha) does for this engine's models.

0. exo resolves a tokenizer from the model card's repo on every request, asking huggingface.co first
   (slow or failing on an offline board). These models' tokenizers are the engine's own: loaded once from
   the local directory or Hugging Face cache, never downloaded (missing -> the `models pull` fix).
   A failure before the reply starts (that, a malformed message) reaches the client as exo's
   {"detail": ...} error instead of a bare "500 Internal Server Error".
1. exo decodes replies with the EOS token left in, so every reply ends in "<|im_end|>" (exo issue
   #751; the fix, exo PR #716, is not in v0.0.15-alpha). The tokenizer exo resolves for these models
   decodes without the EOS id; the token list, and so exo's finish_reason, is untouched.
2. exo streams each token decoded on its own, so a character spread over several tokens (emoji, much
   CJK text with byte-level vocabularies) arrives as U+FFFD replacement characters. Stream chunks are
   re-decoded incrementally per request instead, holding a piece back until its character is whole.

Nothing else in exo's API changes, and other engines' models are left alone.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable

MAX_OPEN_STREAMS = 256  # streams whose client left before the last chunk are forgotten past this many


class StreamDetokenizer:
    """Incremental decoding of one reply: each push returns only text made of whole characters."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # start of the window re-decoded for context (spacing, merges)
        self._read = 0  # end of what has been handed out

    def push(self, ids: Iterable[int], final: bool = False) -> str:
        self._ids.extend(int(t) for t in ids)
        before = self._decode(self._ids[self._prefix:self._read])
        text = self._decode(self._ids[self._prefix:])
        if len(text) <= len(before) or (text.endswith("\ufffd") and not final):
            return ""  # nothing new, or a character still incomplete: wait for its next token
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(before):]


def _hide_eos(tok):
    eos = getattr(tok, "eos_token_id", None)
    if eos is not None and not getattr(tok, "_rkllm_stream", False):
        decode = tok.decode

        def decode_without_eos(tokens, *args, **kwargs):
            return decode([t for t in tokens if t != eos], *args, **kwargs)

        tok.decode = decode_without_eos
        tok._rkllm_stream = True
    return tok


def install_api_fixes(repos: dict[str, str]) -> None:
    """Patch exo's API for the models whose card repo is a key of `repos` (repo -> exo-rkllm model id)."""
    import asyncio

    import exo.api.chatgpt_api as api
    import exo.inference.tokenizers as tokenizers
    from aiohttp import web

    resolve = getattr(tokenizers.resolve_tokenizer, "_rkllm_original", tokenizers.resolve_tokenizer)
    loaded: dict[str, object] = {}

    async def resolve_tokenizer(repo_id):
        model_id = repos.get(str(repo_id))
        if model_id is None:
            return await resolve(repo_id)
        tok = loaded.get(model_id)
        if tok is None:
            from exo_rkllm.catalog import get_card, load_tokenizer

            tok = loaded[model_id] = _hide_eos(await asyncio.to_thread(load_tokenizer, get_card(model_id)))
        return tok

    resolve_tokenizer._rkllm_original = resolve
    tokenizers.resolve_tokenizer = resolve_tokenizer
    api.resolve_tokenizer = resolve_tokenizer

    generate = getattr(api.generate_completion, "_rkllm_original", api.generate_completion)
    streams: OrderedDict[str, StreamDetokenizer] = OrderedDict()

    def generate_completion(chat_request, tokenizer, prompt, request_id, tokens, stream, finish_reason,
                            object_type):
        completion = generate(chat_request, tokenizer, prompt, request_id, tokens, stream, finish_reason,
                              object_type)
        if not stream or not getattr(tokenizer, "_rkllm_stream", False):
            return completion
        detok = streams.get(request_id)
        if detok is None:
            detok = streams[request_id] = StreamDetokenizer(tokenizer.decode)
            while len(streams) > MAX_OPEN_STREAMS:
                streams.popitem(last=False)
        text = detok.push(tokens, final=finish_reason is not None)
        if finish_reason is not None:
            streams.pop(request_id, None)
        for choice in completion.get("choices", []):
            for key in ("delta", "message"):
                if isinstance(choice.get(key), dict):
                    choice[key]["content"] = text
            if "text" in choice:
                choice["text"] = text
        return completion

    generate_completion._rkllm_original = generate
    api.generate_completion = generate_completion

    handle = getattr(api.ChatGPTAPI.handle_post_chat_completions, "_rkllm_original",
                     api.ChatGPTAPI.handle_post_chat_completions)

    async def handle_post_chat_completions(self, request):
        try:
            return await handle(self, request)
        except (ValueError, KeyError, TypeError) as exc:  # a malformed request body or message
            return web.json_response({"detail": f"Invalid request: {exc}"}, status=400)
        except Exception as exc:  # noqa: BLE001 - before the reply started; exo would send a bare 500
            return web.json_response({"detail": f"Error processing prompt: {exc}"}, status=500)

    handle_post_chat_completions._rkllm_original = handle
    api.ChatGPTAPI.handle_post_chat_completions = handle_post_chat_completions  # routes bind at construction

"""Split a reasoning model's output into ``reasoning_content`` and ``content``.

R1 distills usually emit only the closing tag because the chat template already opened ``<think>``;
Qwen3-style models emit both tags. Tags may arrive split over tokens, so possible tag prefixes are
held back. In ``tags`` format the text passes through with the tags kept in ``content`` (for clients
such as LangChain that drop ``reasoning_content``); the opening tag is re-inserted when the template
opened it, so the client sees a balanced ``<think>...</think>`` block.
"""

from __future__ import annotations

from typing import Literal

Channel = Literal["reasoning", "content"]
FORMATS = ("separate", "tags")
FORMAT_ALIASES = {"separate": "separate", "deepseek": "separate", "parsed": "separate",
                  "tags": "tags", "none": "tags", "raw": "tags"}


def _prefix_overlap(buf: str, tag: str) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of ``tag``."""
    for n in range(min(len(buf), len(tag) - 1), 0, -1):
        if tag.startswith(buf[-n:]):
            return n
    return 0


class ReasoningSplitter:
    """Incremental splitter; ``feed`` returns ``[(channel, text), ...]`` in order.

    ``opened_by_template``: the prompt already ends inside ``think_start`` (generation starts in reasoning).
    ``fmt``: "separate" (two channels) or "tags" (everything in content, tags kept).
    A splitter built with ``think_start=None`` passes everything through as content.
    """

    def __init__(self, think_start: str | None, think_end: str | None, *, opened_by_template: bool,
                 fmt: str = "separate") -> None:
        self.start_tag = think_start or ""
        self.end_tag = think_end or ""
        self.fmt = fmt
        self.enabled = bool(self.start_tag and self.end_tag)
        if not self.enabled:
            self.state = "content"
        else:
            self.state = "reasoning" if opened_by_template else "start"
        self._buf = ""
        self._content_started = False  # strip whitespace between </think> and the answer
        self._reasoning_started = False  # strip whitespace right after <think>
        self._pending_prefix = self.enabled and opened_by_template and fmt == "tags"
        self.reasoning_seen = opened_by_template and self.enabled

    @property
    def in_reasoning(self) -> bool:
        return self.state in ("reasoning", "start") and self.enabled

    def feed(self, text: str) -> list[tuple[Channel, str]]:
        out: list[tuple[Channel, str]] = []
        if self._pending_prefix:
            self._pending_prefix = False
            out.append(("reasoning", self.start_tag + "\n"))
        if not self.enabled:
            if text:
                out.append(("content", text))
            return out
        self._buf += text
        self._drain(out, final=False)
        return self._format(out)

    def flush(self) -> list[tuple[Channel, str]]:
        out: list[tuple[Channel, str]] = []
        if self._pending_prefix:
            self._pending_prefix = False
            out.append(("reasoning", self.start_tag + "\n"))
        if self.enabled:
            self._drain(out, final=True)
        return self._format(out)

    # -- internals --------------------------------------------------------------------------------
    def _drain(self, out: list[tuple[Channel, str]], final: bool) -> None:
        while self._buf:
            if self.state == "start":
                stripped = self._buf.lstrip()
                if stripped.startswith(self.start_tag):
                    self.state = "reasoning"
                    self.reasoning_seen = True
                    if self.fmt == "tags":
                        out.append(("reasoning", self._buf[: len(self._buf) - len(stripped)] + self.start_tag))
                    self._buf = stripped[len(self.start_tag):]
                    continue
                if not final and (not stripped or self.start_tag.startswith(stripped)):
                    return  # undecided: might still become the opening tag
                self.state = "content"
                self._content_started = False
                continue
            if self.state == "reasoning":
                i = self._buf.find(self.end_tag)
                if i != -1:
                    before = self._buf[:i]
                    if self.fmt == "tags":
                        out.append(("reasoning", before + self.end_tag))
                    else:
                        before = before.rstrip()
                        if not self._reasoning_started:
                            before = before.lstrip()
                        if before:
                            out.append(("reasoning", before))
                    self._buf = self._buf[i + len(self.end_tag):]
                    self.state = "content"
                    self._content_started = False
                    continue
                keep = 0 if final else _prefix_overlap(self._buf, self.end_tag)
                emit = self._buf[: len(self._buf) - keep]
                rest = self._buf[len(self._buf) - keep:]
                if self.fmt == "separate":
                    if not self._reasoning_started:
                        emit = emit.lstrip()  # the newline after <think>
                    if not final:
                        # hold trailing whitespace: it belongs before </think> and is dropped there
                        body = emit.rstrip()
                        rest = emit[len(body):] + rest
                        emit = body
                if emit:
                    self._reasoning_started = True
                    out.append(("reasoning", emit))
                self._buf = rest
                if final and self._buf:
                    tail = self._buf if self.fmt == "tags" else self._buf.rstrip()
                    if tail:
                        out.append(("reasoning", tail))
                    self._buf = ""
                return
            # content
            if not self._content_started:
                if self.fmt == "separate" and self.reasoning_seen:
                    self._buf = self._buf.lstrip()
                    if not self._buf:
                        return
                self._content_started = True
            out.append(("content", self._buf))
            self._buf = ""

    @staticmethod
    def _format(out: list[tuple[Channel, str]]) -> list[tuple[Channel, str]]:
        """Drop empty pieces. In tags format the caller routes "reasoning" text (tags included) into
        content but keeps stop matching for the answer only."""
        return [(c, t) for c, t in out if t]

"""Stop-sequence matching across token boundaries.

A stop string may arrive split over several tokens, so text that could still be the start of a stop
string is held back until the next piece decides it; the stop text itself never reaches the client.
"""

from __future__ import annotations


class StopMatcher:
    """Feed generated text; get back the text that is safe to emit and whether a stop was hit."""

    def __init__(self, stops: list[str] | None) -> None:
        self.stops = [s for s in (stops or []) if s]
        self._held = ""
        self.matched: str | None = None
        self._longest = max((len(s) for s in self.stops), default=0)

    def feed(self, text: str) -> str:
        """Return the text to emit now. After a match, ``matched`` is set and later input is dropped."""
        if self.matched is not None:
            return ""
        if not self.stops:
            return text
        buf = self._held + text
        cut = -1
        for stop in self.stops:
            i = buf.find(stop)
            if i != -1 and (cut == -1 or i < cut):
                cut, self.matched = i, stop
        if cut != -1:
            self._held = ""
            return buf[:cut]
        keep = self._possible_prefix_len(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep]

    def flush(self) -> str:
        """At the natural end: whatever was held back was not a stop after all."""
        out, self._held = self._held, ""
        return "" if self.matched is not None else out

    def _possible_prefix_len(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of some stop string."""
        for n in range(min(len(buf), self._longest - 1), 0, -1):
            tail = buf[-n:]
            if any(s.startswith(tail) for s in self.stops):
                return n
        return 0

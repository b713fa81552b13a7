"""Server-sent events for streaming completions: ``data: {json}\\n\\n`` ... ``data: [DONE]\\n\\n``.

Headers go out with the first event, so errors that happen before any token (queue full, sampling
mismatch, context overflow, worker down) still get their real HTTP status and a balancer can retry
them on another node. ``X-Accel-Buffering: no`` keeps nginx from buffering the stream.
"""

from __future__ import annotations

import json

from aiohttp import web

DONE = b"data: [DONE]\n\n"


class SSEWriter:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    @property
    def started(self) -> bool:
        return self.response is not None

    async def open(self) -> web.StreamResponse:
        if self.response is None:
            resp = web.StreamResponse(status=200, headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            })
            await resp.prepare(self.request)
            self.response = resp
        return self.response

    async def send_raw(self, payloads: list[str]) -> None:
        """Write several pre-serialised JSON events in one socket write."""
        resp = await self.open()
        await resp.write("".join(f"data: {p}\n\n" for p in payloads).encode("utf-8"))

    async def send_error(self, body: dict) -> None:
        """A failure after the stream started: an error event, then [DONE], so clients never hang."""
        resp = await self.open()
        await resp.write(b"data: " + json.dumps(body).encode("utf-8") + b"\n\n" + DONE)

    async def done(self) -> web.StreamResponse:
        resp = await self.open()
        await resp.write(DONE)
        await resp.write_eof()
        return resp

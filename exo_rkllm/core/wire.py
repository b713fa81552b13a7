"""Framing on the socket between the serving process and a runtime worker process.

Frame = kind (1 byte) + payload length (4 bytes, little-endian) + payload.
  b"T": a token: run id (int32), token id (int32), then the UTF-8 text. Tokens are the hot path,
        so they are packed by hand: one write per token in the worker, many tokens per read here.
  b"P": any other message, pickled (a tuple whose first item names it).
"""

from __future__ import annotations

import pickle
import struct

_HEADER = struct.Struct("<cI")
_TOKEN = struct.Struct("<ii")
HEADER_SIZE = _HEADER.size


def token_frame(run_id: int, token_id: int, text: str) -> bytes:
    body = _TOKEN.pack(run_id, token_id) + text.encode("utf-8")
    return _HEADER.pack(b"T", len(body)) + body


def message_frame(message: tuple) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(b"P", len(body)) + body


class FrameReader:
    """Incremental parser: feed it bytes as they arrive, get complete messages out.

    Tokens come out as ("t", run_id, token_id, text); other messages as they were sent.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple]:
        buf = self._buf
        buf += data
        out: list[tuple] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            kind, size = _HEADER.unpack_from(buf, pos)
            start = pos + HEADER_SIZE
            if end - start < size:
                break
            if kind == b"T":
                run_id, token_id = _TOKEN.unpack_from(buf, start)
                text = bytes(buf[start + 8:start + size]).decode("utf-8", "replace")
                out.append(("t", run_id, token_id, text))
            else:
                out.append(pickle.loads(bytes(buf[start:start + size])))
            pos = start + size
        if pos:
            del buf[:pos]
        return out


def read_message(sock) -> tuple | None:
    """Blocking read of one pickled message (the worker's command channel). None at EOF."""
    header = _recv_exact(sock, HEADER_SIZE)
    if header is None:
        return None
    kind, size = _HEADER.unpack(header)
    body = _recv_exact(sock, size)
    if body is None:
        return None
    if kind != b"P":
        raise ValueError(f"unexpected frame kind {kind!r} on the command channel")
    return pickle.loads(body)


def _recv_exact(sock, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)

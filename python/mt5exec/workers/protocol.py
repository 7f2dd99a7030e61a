"""Framing of the engine <-> worker protocol.

Owns the wire format of ``proto/mt5exec/terminal/v1/worker.proto`` connections: each frame is a
4-byte big-endian unsigned length followed by that many bytes of one serialized protobuf message
(``WorkerFrame`` from the worker, ``EngineFrame`` from the engine). Frames larger than
``MAX_FRAME_SIZE`` are a protocol error on both sides.
"""

from __future__ import annotations

import socket
import struct

from google.protobuf.message import Message

MAX_FRAME_SIZE = 16 * 1024 * 1024
# How long the engine's services wait for a worker's MarketAnswer (services/market.py); a
# worker whose terminal call runs much longer has a hung terminal (workers/mt5.py).
MARKET_ANSWER_TIMEOUT_S = 30.0
HEADER_SIZE = 4
_HEADER = struct.Struct(">I")
_RECV_SIZE = 256 * 1024


class FrameError(Exception):
    """The peer broke the framing (oversized frame); the connection cannot be trusted."""


class ConnectionClosed(Exception):
    """The peer closed the connection (EOF)."""


def encode_frame(msg: Message) -> bytes:
    """Header and payload of one frame, ready to be written."""
    payload = msg.SerializeToString()
    if len(payload) > MAX_FRAME_SIZE:
        raise FrameError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_SIZE}")
    return _HEADER.pack(len(payload)) + payload


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_field_frame(field_number: int, payload: bytes) -> bytes:
    """A frame whose message has a single length-delimited field holding ``payload``.

    Byte-for-byte what ``encode_frame(WorkerFrame(<field>=M))`` gives when ``payload`` is
    ``M.SerializeToString()``, without building and copying ``M`` into a wrapper message; the
    sim worker uses it for position snapshots it already holds serialized.
    """
    body = varint(field_number << 3 | 2) + varint(len(payload)) + payload
    if len(body) > MAX_FRAME_SIZE:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_SIZE}")
    return _HEADER.pack(len(body)) + body


def send_frame(sock: socket.socket, msg: Message) -> None:
    """Write one frame with a single ``sendall`` (so concurrent writers cannot interleave it)."""
    sock.sendall(encode_frame(msg))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionClosed("connection closed by peer")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    """Read one whole frame from a blocking socket and return its payload.

    For handshakes and tests; a loop serving many frames should use ``FrameReader``.
    """
    (size,) = _HEADER.unpack(_recv_exact(sock, HEADER_SIZE))
    if size > MAX_FRAME_SIZE:
        raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME_SIZE}")
    return _recv_exact(sock, size)


class FrameReader:
    """Reassembles frames from whatever chunks the socket returns.

    Feed it bytes (or let it ``recv`` once from a readable socket) and it returns the payloads
    of all frames completed so far, keeping any partial frame for the next call.
    """

    __slots__ = ("_buf", "_max", "_pos", "_scratch", "_view")

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_frame_size
        # One receive buffer for the reader's life: ``recv(n)`` allocates n bytes per call,
        # which for 256 KB is an mmap, an mremap and a munmap per read.
        self._scratch = bytearray(_RECV_SIZE)
        self._view = memoryview(self._scratch)

    @property
    def pending(self) -> int:
        """Bytes received that do not form a complete frame yet."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = self._pos
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            (size,) = _HEADER.unpack_from(buf, pos)
            if size > self._max:
                raise FrameError(f"frame of {size} bytes exceeds {self._max}")
            if end - pos - HEADER_SIZE < size:
                break
            start = pos + HEADER_SIZE
            out.append(bytes(buf[start : start + size]))
            pos = start + size
        # Drop consumed bytes only once in a while: deleting from the front of a bytearray is
        # a memmove, which is wasteful when many small frames arrive in one chunk.
        if pos == end:
            buf.clear()
            pos = 0
        elif pos > 65536:
            del buf[:pos]
            pos = 0
        self._pos = pos
        return out

    def recv_from(self, sock: socket.socket) -> list[bytes]:
        """One ``recv`` from ``sock``; ``ConnectionClosed`` on EOF, ``[]`` if nothing was ready."""
        try:
            n = sock.recv_into(self._scratch)
        except (BlockingIOError, InterruptedError):
            return []
        if not n:
            raise ConnectionClosed("connection closed by peer")
        return self.feed(self._view[:n])

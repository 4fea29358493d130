"""Networking helpers shared by the tests that start servers (viewers, Rerun's gRPC server).

Besides a free port: sending .rrd messages to a viewer as gRPC WriteMessages requests
(what every SDK does, but with hand-made or damaged messages), and `H2Conn`, a bare
HTTP/2 client on a raw socket for what no real gRPC client sends (a message cut short,
a length prefix claiming more than follows, a connection that stops after its preface).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Iterable, Optional

import grpc

from pixelrun.engine.grpc import wire
from pixelrun.engine.rrd.messages import KIND_END, MESSAGE_HEADER, MESSAGE_HEADER_SIZE, STREAM_HEADER_SIZE

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 7, 8
END_STREAM, END_HEADERS = 0x1, 0x4


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rrd_messages(data: bytes) -> list[bytes]:
    """The whole messages (16-byte header + body) of one .rrd stream, up to its End
    message: what an SDK sends one per WriteMessages request."""
    out, pos = [], STREAM_HEADER_SIZE
    while pos + MESSAGE_HEADER_SIZE <= len(data):
        kind, length = MESSAGE_HEADER.unpack_from(data, pos)
        if kind == KIND_END:
            break
        out.append(data[pos : pos + MESSAGE_HEADER_SIZE + length])
        pos += MESSAGE_HEADER_SIZE + length
    return out


def grpc_send(port: int, messages: Iterable[bytes], *, timeout: float = 30.0) -> None:
    """One WriteMessages call to 127.0.0.1:`port` carrying each .rrd message (header +
    body) as a request; raises grpc.RpcError when the server ends the call with an error."""
    requests = (wire.request_from_frame([m]) for m in messages)
    # a connection of its own, as a separate program has (grpcio shares them within a process)
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        ch.stream_unary(wire.WRITE_MESSAGES)(requests, timeout=timeout)


def _frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_literal(name: str, value: str) -> bytes:
    """A header as an HPACK literal without indexing, no Huffman (RFC 7541 §6.2.2)."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def _hpack_int(block: bytes, pos: int, bits: int) -> tuple[int, int]:
    mask = (1 << bits) - 1
    value = block[pos] & mask
    pos += 1
    if value == mask:
        shift = 0
        while True:
            b = block[pos]
            pos += 1
            value += (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
    return value, pos


# The entries of HPACK's static table (RFC 7541 Appendix A) a gRPC server uses.
_HPACK_STATIC = {8: (":status", "200"), 31: ("content-type", "")}


class HpackDecoder:
    """Enough HPACK to read grpcio's response headers: indexed fields, literals with
    and without indexing, a dynamic table; Huffman-coded strings raise AssertionError."""

    def __init__(self) -> None:
        self.table: list[tuple[str, str]] = []  # dynamic table, newest first

    def _entry(self, index: int) -> tuple[str, str]:
        if index > 61:
            return self.table[index - 62]
        return _HPACK_STATIC.get(index, (f"static-{index}", ""))

    def _string(self, block: bytes, pos: int) -> tuple[str, int]:
        assert not block[pos] & 0x80, "Huffman-coded HPACK string"
        n, pos = _hpack_int(block, pos, 7)
        return block[pos : pos + n].decode(), pos + n

    def decode(self, block: bytes) -> dict[str, str]:
        out, pos = {}, 0
        while pos < len(block):
            b = block[pos]
            if b & 0x80:  # indexed field
                index, pos = _hpack_int(block, pos, 7)
                name, value = self._entry(index)
            elif b & 0xE0 == 0x20:  # dynamic table size update
                _, pos = _hpack_int(block, pos, 5)
                continue
            else:  # a literal: with incremental indexing (01), without / never indexed (0000, 0001)
                indexed = b & 0xC0 == 0x40
                index, pos = _hpack_int(block, pos, 6 if indexed else 4)
                if index:
                    name = self._entry(index)[0]
                else:
                    name, pos = self._string(block, pos)
                value, pos = self._string(block, pos)
                if indexed:
                    self.table.insert(0, (name, value))
            out[name] = value
        return out


class H2Conn:
    """A bare HTTP/2 client connection to 127.0.0.1:`port` (no flow control: keep
    what it sends under the server's initial windows, 64 KiB). `preface=False` connects
    without sending anything."""

    def __init__(self, port: int, *, preface: bool = True, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self._buf = b""
        self.frames: list[tuple[int, int, int, bytes]] = []  # (type, flags, stream, payload) received
        self.closed = False
        self.hpack = HpackDecoder()
        self.headers: dict[int, list[dict[str, str]]] = {}  # stream -> header blocks received, decoded
        if preface:
            self.sock.sendall(H2_PREFACE + _frame(SETTINGS, 0, 0))

    def open_call(self, stream: int, path: str = wire.WRITE_MESSAGES) -> None:
        """HEADERS opening a gRPC call on `stream` (odd, increasing)."""
        block = b"".join(_hpack_literal(k, v) for k, v in [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "viewer"),
            ("content-type", "application/grpc"), ("te", "trailers")])
        self.sock.sendall(_frame(HEADERS, END_HEADERS, stream, block))

    def send_data(self, stream: int, data: bytes, end: bool = False) -> None:
        self.sock.sendall(_frame(DATA, END_STREAM if end else 0, stream, data))

    def send_message(self, stream: int, rrd_message: bytes, *, declared: Optional[int] = None,
                     cut: Optional[int] = None, end: bool = False) -> None:
        """One gRPC message on `stream`: the WriteMessagesRequest carrying `rrd_message`,
        behind the 5-byte prefix (its length, or `declared`); only the first `cut`
        bytes of the request when given."""
        req = wire.request_from_frame([rrd_message])
        prefix = b"\x00" + struct.pack(">I", len(req) if declared is None else declared)
        self.send_data(stream, prefix + req[:cut], end=end)

    def read(self, until, timeout: Optional[float] = None) -> bool:
        """Read frames until `until(self)` holds (True), the server closes or the time
        is up (then `until(self)`)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not until(self) and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                part = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                part = b""
            if not part:
                self.closed = True
                break
            self._buf += part
            while len(self._buf) >= 9:
                n = int.from_bytes(self._buf[:3], "big")
                if len(self._buf) < 9 + n:
                    break
                head, self._buf = self._buf[: 9 + n], self._buf[9 + n:]
                frame = (head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, head[9:])
                self.frames.append(frame)
                if frame[0] == HEADERS:  # decoded in order: the dynamic table depends on it
                    assert frame[1] & END_HEADERS and not frame[1] & 0x28, "CONTINUATION/padding/priority"
                    self.headers.setdefault(frame[2], []).append(self.hpack.decode(frame[3]))
        return until(self)

    def settings(self) -> dict[int, int]:
        """The server's SETTINGS (the first non-ACK SETTINGS frame), read if need be."""
        self.read(lambda c: any(f[0] == SETTINGS and not f[1] & 1 for f in c.frames))
        payload = next(f[3] for f in self.frames if f[0] == SETTINGS and not f[1] & 1)
        return {struct.unpack_from(">H", payload, i)[0]: struct.unpack_from(">I", payload, i + 2)[0]
                for i in range(0, len(payload), 6)}

    def grpc_message(self, stream: int) -> str:
        """The grpc-message of the call's trailers ("" when none)."""
        blocks = self.headers.get(stream) or [{}]
        return blocks[-1].get("grpc-message", "")

    def call_end(self, stream: int) -> Optional[tuple[str, int]]:
        """How the server ended the call on `stream` so far: ("grpc-status", code) from
        its trailers, ("rst", error code) from RST_STREAM, None while it is open."""
        for ftype, flags, sid, payload in self.frames:
            if sid == stream and ftype == HEADERS and flags & END_STREAM:
                return "grpc-status", int(self.headers[stream][-1]["grpc-status"])
            if sid == stream and ftype == RST_STREAM:
                return "rst", struct.unpack(">I", payload)[0]
        return None

    def wait_call_end(self, stream: int, timeout: Optional[float] = None) -> Optional[tuple[str, int]]:
        self.read(lambda c: c.call_end(stream) is not None, timeout)
        return self.call_end(stream)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Whether the server closes the connection (EOF or reset) within the time."""
        return self.read(lambda c: c.closed, timeout)

    def close(self) -> None:
        self.sock.close()

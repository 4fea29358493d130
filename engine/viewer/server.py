"""The viewer's listener: SDK processes stream recordings in over gRPC, chunks come out.

One protocol: Rerun 0.41's gRPC log message proxy (``MessageProxyService/WriteMessages``,
engine/grpc/wire.py), what rerun-sdk and pixelrun's ``connect_grpc``/``spawn``/``GrpcSink``
speak. `pixelrun view` serves it on 127.0.0.1:9876 (all interfaces only with ``--bind``).

Connections: one accept thread, one thread per connection. A connection must open with
the HTTP/2 connection preface (a gRPC client's first 24 bytes); it is then relayed to
an internal grpcio server on a loopback port (`_GrpcFrontend`), so every connection
stays under the listener's own rules. One that opens with anything else is answered
as Rerun's own server answers it, ``HTTP/1.1 400 Bad Request``, with a short body
naming what this port expects (`not_grpc_answer`), and closed; it is counted
(``connections_not_grpc``) and logged once per peer host. pixelrun's former raw .rrd
stream over TCP is such a connection: it gets the 400 (its first bytes are ``RRF2``).

Each WriteMessages request carries one .rrd message; the call decodes it with its own
`RrdStreamDecoder` (size limits, an LZ4 body declaring more than the decompression
limit refused before inflating) and hands every decoded chunk to ``on_chunks`` from
grpcio's thread (the viewer ingests into its store there, never from the window's
thread). Several programs may stream into one viewer at once.

Memory: grpcio refuses a message longer than ``max_message_bytes`` from its 5-byte
length prefix, before the body arrives; the relay follows those prefixes as the bytes
pass (`_H2Watch`), so such refusals are counted and logged (``messages_too_large``), and
messages a client ends in the middle of are counted (``messages_truncated``). A
received message's copy and its decode reserve a server-wide in-flight budget
(``max_inflight_bytes``), granted in arrival order, so several huge messages at once
wait for each other instead of multiplying memory; decoding (where an LZ4 body
inflates) runs one message at a time across all calls. What grpcio reads ahead of a
call is bounded by a fixed HTTP/2 window (`_grpc_window`, not grown by grpcio's
bandwidth probe), with `GRPC_CALLS_PER_CONNECTION` calls per connection. Not bounded
by the budget: the message a call is waiting for while it arrives, which grpcio
holds as it comes (it widens that call's window to the declared length: up to
``max_message_bytes`` per call).

Time: every wait is bounded (`ServerLimits`). A connection that has not sent the whole
preface within ``handshake_timeout_s`` of connecting (silent, or trickling it:
slowloris) is closed, and so is one that sends and receives nothing for
``idle_timeout_s``. At ``max_connections`` a new connection is not refused while some
open one has not yet delivered a chunk: the one of those with the least standing (no
preface yet before preface-but-no-chunk) and idle the longest is evicted, so idle,
half-open or pre-preface connections can never lock real clients out. Only when every
open connection has delivered chunks is the newcomer refused.

Failure behaviour: a malformed request, an undecodable message, a callback error or a
budget wait past ``busy_wait_s`` ends that call only (INVALID_ARGUMENT, INTERNAL,
RESOURCE_EXHAUSTED, with a message naming the problem); a connection-level problem
(timeout, not gRPC, a socket error) closes that connection only. Each is counted in
``stats`` and logged with the peer's address; the listener and every other connection
and call keep going.

Counters: ``server.stats`` is the live `ServerStats`; ``server.stats_snapshot()`` is a
consistent copy and ``ServerStats.status_line()`` its one-line summary for the window's
status bar.

The listener binds 127.0.0.1 unless told otherwise: a viewer must not be reachable
from other machines unless the user asks for it.
"""

from __future__ import annotations

import collections
import copy
import logging
import select
import socket
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Protocol

import grpc
import numpy as np

from pixelrun.engine import rrd
from pixelrun.engine.chunk import Chunk
from pixelrun.engine.grpc import wire
from pixelrun.engine.prefault import shared_pool
from pixelrun.engine.rrd.messages import KIND_NAMES

__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_PORT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "H2_PREFACE",
    "StreamDecoder",
    "ServerLimits",
    "ServerStats",
    "ViewerServer",
    "PortInUseError",
    "default_decoder_factory",
    "not_grpc_answer",
    "RrdStreamDecoder",
    "StreamError",
]

log = logging.getLogger("pixelrun.viewer")

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = rrd.RERUN_DEFAULT_PORT  # `pixelrun view` itself honours PIXELRUN_PORT
# A single message bigger than this is refused (the largest plausible image message,
# an 8K RGBA f64 frame, is about 1 GiB; a hostile length must not allocate).
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30
# Message bodies being copied or decoded, all calls together: two maximal messages at
# once, a third waits (decoding adds at most one message's transient).
DEFAULT_MAX_INFLIGHT_BYTES = 2 << 30
# Messages up to this size skip the in-flight budget (and its queue): store infos and
# small chunks never wait behind a huge frame.
UNBUDGETED_MESSAGE_BYTES = 64 << 10
# Every HTTP/2 connection, so every gRPC client, opens with these 24 bytes (RFC 9113 §3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# At most this long (and this many bytes) is spent reading what a non-gRPC client still
# sends after our 400 answer: closing with unread bytes makes the kernel send a reset,
# which can discard the answer before the client reads it.
_DRAIN_S = 1.0
_DRAIN_BYTES = 1 << 20
# Peer hosts whose non-gRPC connections have been logged (each once), at most this many.
_WARNED_HOSTS_MAX = 256


def not_grpc_answer(address: str) -> bytes:
    """What a connection that does not open with the HTTP/2 preface receives before it
    is closed: Rerun's own server answers such a client ``HTTP/1.1 400 Bad Request``;
    the body says what this port expects. `address` is the host:port it connected to."""
    body = (
        "400 Bad Request: this is a pixelrun viewer; it speaks gRPC only (Rerun 0.41's log message "
        "proxy over HTTP/2).\n"
        f'Stream to it with a gRPC client: rr.connect_grpc("rerun+http://{address}/proxy") '
        "with rerun-sdk 0.41 or pixelrun.\n"
    ).encode()
    return (b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\n\r\n" % len(body)) + body


class StreamDecoder(Protocol):
    """What the server needs from an incremental .rrd decoder."""

    def feed(self, data: bytes) -> Iterable[Chunk]:
        """Consume bytes; return the chunks completed so far. Raise on malformed data."""


class PortInUseError(OSError):
    """The port is taken (usually: another viewer is already running)."""


@dataclass(frozen=True)
class ServerLimits:
    """Every bound the server enforces (bytes, seconds). The defaults suit a local viewer.

    idle_timeout_s=None keeps connections open while silent (the handshake timeout and
    eviction still apply).
    """

    max_connections: int = 64
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    # an LZ4 body inflating past this is refused before decompressing (None: the
    # decoder's default, rrd.default_max_decompressed_bytes(), PIXELRUN_MAX_DECOMPRESSED_BYTES)
    max_decompressed_bytes: Optional[int] = None
    handshake_timeout_s: float = 10.0  # until the whole HTTP/2 preface has arrived
    idle_timeout_s: Optional[float] = 300.0  # nothing sent or received on a connection
    read_timeout_s: float = 10.0  # a send to (or relay connect for) a client that cannot go on
    busy_wait_s: float = 60.0  # longest wait for the in-flight budget or the decoder

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_message_bytes", "max_inflight_bytes",
                     "handshake_timeout_s", "read_timeout_s", "busy_wait_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerLimits.{name} must be positive, got {getattr(self, name)!r}")
        if self.max_decompressed_bytes is not None and not self.max_decompressed_bytes > 0:
            raise ValueError(f"ServerLimits.max_decompressed_bytes must be positive or None, "
                             f"got {self.max_decompressed_bytes!r}")
        if self.idle_timeout_s is not None and not self.idle_timeout_s > 0:
            raise ValueError(f"ServerLimits.idle_timeout_s must be positive or None, got {self.idle_timeout_s!r}")
        if self.max_message_bytes > self.max_inflight_bytes:
            raise ValueError(
                f"ServerLimits.max_message_bytes ({self.max_message_bytes}) is larger than "
                f"max_inflight_bytes ({self.max_inflight_bytes}): such a message could never be read"
            )

    @property
    def poll_s(self) -> float:
        """How often a waiting connection thread re-checks its deadlines."""
        shortest = min(self.handshake_timeout_s, self.read_timeout_s, self.idle_timeout_s or 1.0)
        return max(0.01, min(1.0, shortest / 8))


@dataclass
class ServerStats:
    """Counters for the viewer's status line (updated under the server's lock).

    Each closed connection is counted once, by why it closed: cleanly by the client
    (only in connections_total), not gRPC, dropped (an error), timed out, evicted, or
    — never opened — refused. A gRPC call that ends with an error is counted in
    calls_dropped (its connection goes on).
    """

    connections_total: int = 0  # accepted
    connections_open: int = 0
    connections_dropped: int = 0  # closed for a socket error
    connections_refused: int = 0  # at max_connections with nobody evictable
    connections_evicted: int = 0  # closed to make room (had not delivered a chunk)
    connections_timed_out: int = 0  # no preface in time, or idle
    connections_not_grpc: int = 0  # did not open with the HTTP/2 preface: answered HTTP 400
    calls_open: int = 0  # WriteMessages calls being served
    calls_dropped: int = 0  # gRPC calls ended with an error (malformed, callback, busy)
    messages_malformed: int = 0  # requests or messages the wire format or the decoder rejected
    messages_too_large: int = 0  # declared longer than the limit: refused before their bytes are read
    messages_truncated: int = 0  # a connection or call ended inside a message: its bytes dropped
    messages_received: int = 0
    bytes_received: int = 0  # of WriteMessages requests
    chunks_received: int = 0
    inflight_bytes: int = 0  # message bytes held right now (budgeted ones)
    inflight_peak_bytes: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)  # the last few, for the UI

    def note_error(self, msg: str) -> None:
        self.last_error = msg
        self.errors.append(msg)
        del self.errors[:-20]

    def status_line(self) -> str:
        """One line for the window: connections by fate, calls dropped, then what arrived."""
        return (
            f"connections: {self.connections_open} open, {self.connections_total} accepted, "
            f"{self.connections_refused} refused, {self.connections_evicted} evicted, "
            f"{self.connections_timed_out} timed out, {self.connections_dropped} dropped, "
            f"{self.connections_not_grpc} not gRPC; calls: {self.calls_open} open, {self.calls_dropped} dropped "
            f"({self.messages_malformed} malformed), {self.messages_too_large} messages too large; received "
            f"{self.bytes_received / 1e6:.1f} MB, {self.messages_received} messages, {self.chunks_received} chunks, "
            f"{self.messages_truncated} cut short"
        )


class StreamError(ValueError):
    """The messages of one call are not a valid .rrd stream; that call ends."""


class _Timeout(Exception):
    """A connection missed one of its deadlines."""


class _NotGrpc(Exception):
    """A connection opened with something other than the HTTP/2 preface."""

    def __init__(self, first: bytes) -> None:
        super().__init__(first)
        self.first = first


class _Busy(Exception):
    """The server's shared resources stayed taken longer than busy_wait_s."""


class RrdStreamDecoder:
    """`engine/rrd/decode.py`'s incremental decoder with the live-stream policy on top.

    A file reader skips a corrupt message and goes on; a live call that sends one is
    not trusted further: the first problem the decoder reports (a length over
    `max_message_bytes`, an LZ4 body declaring more than `max_decompressed_bytes`, an
    undecodable body) raises `StreamError`, which ends that call. Blueprint chunks are
    ignored (the viewer has a fixed layout).
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_decompressed_bytes: Optional[int] = None) -> None:
        # the server hands over each message's buffer for good: large payloads stay in it
        self._dec = rrd.RrdDecoder(max_message_bytes=max_message_bytes,
                                   max_decompressed_bytes=max_decompressed_bytes, resync=False,
                                   share_payloads=True)
        self.messages = 0

    def _check(self) -> None:
        if self._dec.problems:
            raise StreamError(self._dec.problems[0])

    def feed(self, data) -> list[Chunk]:
        msgs = self._dec.feed(data)
        self._check()
        self.messages += len(msgs)
        return [m.chunk for m in msgs if isinstance(m, rrd.ChunkMsg) and m.store.kind != "blueprint"]


def default_decoder_factory(limits: ServerLimits = ServerLimits()) -> StreamDecoder:
    """A fresh decoder for one call, with the limits' size bounds."""
    return RrdStreamDecoder(limits.max_message_bytes, limits.max_decompressed_bytes)


class _Budget:
    """Bytes of messages held at once, all calls together, granted in arrival order
    (a huge message is not starved by a stream of smaller ones)."""

    def __init__(self, capacity: int, stats: ServerStats, lock: threading.Lock) -> None:
        self.capacity = capacity
        self._stats = stats
        self._cond = threading.Condition(lock)  # the server's lock: stats stay consistent
        self._queue: collections.deque = collections.deque()

    def acquire(self, n: int, timeout: float, cancelled: Callable[[], bool]) -> bool:
        """Reserve n bytes; False when `timeout` passes or `cancelled()` turns true."""
        deadline = time.monotonic() + timeout
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._stats.inflight_bytes + n > self.capacity:
                    left = deadline - time.monotonic()
                    if left <= 0 or cancelled():
                        return False
                    self._cond.wait(min(left, 0.25))  # re-check `cancelled` now and then
                self._stats.inflight_bytes += n
                self._stats.inflight_peak_bytes = max(self._stats.inflight_peak_bytes, self._stats.inflight_bytes)
                return True
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def release(self, n: int) -> None:
        if n:
            with self._cond:
                self._stats.inflight_bytes -= n
                self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class _Link:
    """One connection's state, shared by its thread, its calls and the accept thread."""

    def __init__(self, sock, peer: str, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.opened = now
        self.last_activity = now  # last byte relayed either way, or the end of a decode
        self.standing = 0  # 0: no preface yet, 1: an HTTP/2 connection, 2: delivered chunks
        self.end: Optional[tuple[str, str]] = None  # (kind, reason), set once
        self.thread: Optional[threading.Thread] = None


_RELAY_BUFFER = 1 << 20
_H2_DATA, _H2_RST_STREAM = 0, 3
_H2_END_STREAM, _H2_PADDED = 0x1, 0x8
_GRPC_PREFIX = 5  # a gRPC message's prefix: compressed flag, 4-byte big-endian length
_WATCHED_STREAMS_MAX = 64  # streams mid-message followed at once (grpcio allows 4 open calls)


class _H2Watch:
    """Follows the gRPC messages in the bytes a client sends, as the relay passes them:
    HTTP/2 frame headers and each message's 5-byte length prefix only, no copies.

    grpcio refuses a message longer than its limit from that prefix and ends the call
    without telling the handler why; this is how the listener counts and logs such
    refusals, and the messages a client's call or connection ends in the middle of.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit  # grpcio's: a message longer than this is refused
        self._head = bytearray()  # a frame header being read (9 bytes)
        self._frame_left = 0  # payload bytes of the current frame still to come
        self._frame: tuple[int, int, int] = (0, 0, 0)  # (type, flags, stream) of the current frame
        self._data_left: Optional[int] = None  # message bytes left in a DATA frame (None: pad length next)
        self._streams: dict[int, list] = {}  # stream -> [prefix bytes so far, body bytes left]; mid-message only
        self.refused: list[tuple[int, int]] = []  # (stream, declared length), since the last take
        self.truncated = 0  # messages a client ended (RST_STREAM, END_STREAM) in the middle of

    def feed(self, data: memoryview) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self._frame_left == 0 and len(self._head) < 9:
                take = min(9 - len(self._head), n - pos)
                self._head += data[pos : pos + take]
                pos += take
                if len(self._head) < 9:
                    return
                length = int.from_bytes(self._head[:3], "big")
                ftype, flags = self._head[3], self._head[4]
                stream = int.from_bytes(self._head[5:9], "big") & 0x7FFFFFFF
                self._frame, self._frame_left = (ftype, flags, stream), length
                self._data_left = None if flags & _H2_PADDED else length
            take = min(self._frame_left, n - pos)
            ftype, flags, stream = self._frame
            if ftype == _H2_DATA and take:
                seg = data[pos : pos + take]
                if self._data_left is None:  # the pad length comes first
                    self._data_left = max(0, self._frame_left - 1 - seg[0])
                    seg = seg[1:]
                body = seg[: self._data_left]
                self._data_left -= len(body)
                self._messages(stream, body)
            pos += take
            self._frame_left -= take
            if self._frame_left == 0:
                self._head.clear()
                if ftype == _H2_RST_STREAM or (ftype == _H2_DATA and flags & _H2_END_STREAM):
                    state = self._streams.pop(stream, None)
                    self.truncated += state is not None and state[1] >= 0
                self._data_left = None

    def _messages(self, stream: int, body: memoryview) -> None:
        state = self._streams.get(stream) or [b"", 0]
        i, n = 0, len(body)
        while i < n and state[1] >= 0:  # body left < 0: refused, the rest of the call is ignored
            if state[1]:
                k = min(state[1], n - i)
                state[1] -= k
                i += k
                continue
            k = min(_GRPC_PREFIX - len(state[0]), n - i)
            state[0] += bytes(body[i : i + k])
            i += k
            if len(state[0]) == _GRPC_PREFIX:
                declared = int.from_bytes(state[0][1:], "big")
                state[0] = b""
                state[1] = declared
                if declared > self.limit:
                    self.refused.append((stream, declared))
                    state[1] = -1
        if state[0] or state[1]:
            self._streams[stream] = state
            if len(self._streams) > _WATCHED_STREAMS_MAX:  # only counting is lost, never data
                self._streams.pop(next(iter(self._streams)))
        else:
            self._streams.pop(stream, None)

    def take_refused(self) -> list[tuple[int, int]]:
        out, self.refused = self.refused, []
        return out

    def mid_message(self) -> int:
        """Streams whose client is in the middle of a message (not a refused one)."""
        return sum(1 for prefix, left in self._streams.values() if left >= 0 and (prefix or left))
# gRPC calls (HTTP/2 streams) one connection may have open at once; more wait in the client.
GRPC_CALLS_PER_CONNECTION = 4
# HTTP/2 flow-control window of each gRPC call (and of its connection): what grpcio may
# read ahead of the call (the message a call is reading may widen it to that message's
# length). Fixed, not grown by grpcio's bandwidth
# probe, which on loopback grows it to hundreds of megabytes when the viewer ingests
# more slowly than an SDK sends. 16 MiB keeps two 1080p frames moving (one on the wire
# while one decodes); under a memory limit it shrinks to a 16th of the in-flight
# budget (`_grpc_window`), since it is memory in flight too.
GRPC_WINDOW_BYTES = 16 << 20
# HTTP/2 frames a client may send (SETTINGS_MAX_FRAME_SIZE; HTTP/2's default is 16 KiB):
# large frames keep a megabyte-sized message moving through a small window.
GRPC_MAX_FRAME_BYTES = 1 << 20

# What the gRPC front end holds beyond the in-flight budget (grpcio's threads, slices and
# allocator caches, the relay's buffers), so the viewer's memory plan can leave room for it:
# measured with tests/engine/test_viewer_memory.py (1080p NV12 at full speed, 500 MB limit)
# when the viewer also read pixelrun's former raw .rrd stream: ~40 MB more over gRPC than
# over that stream; 48 MB keeps a margin.
GRPC_TRANSPORT_BYTES = 48 * 1000**2


def _grpc_window(limits: "ServerLimits") -> int:
    """The HTTP/2 window of each gRPC call: GRPC_WINDOW_BYTES, at most a 16th of the
    in-flight budget, at least HTTP/2's default 64 KiB."""
    return max(1 << 16, min(GRPC_WINDOW_BYTES, limits.max_inflight_bytes // 16))


class _GrpcFrontend:
    """Rerun 0.41's gRPC message proxy (``MessageProxyService/WriteMessages``, see
    engine/grpc/wire.py), served by grpcio on a loopback port of its own, behind the
    listener: `relay` carries each HTTP/2 connection's bytes both ways, so every
    connection stays under the listener's rules (the connection limit and eviction,
    the handshake and idle timeouts, the counters).

    Each request carries one .rrd message, decoded by the call's own decoder
    (`RrdStreamDecoder` by default: size limits, LZ4 bound) one decode at a time
    across all calls. A malformed request ends its call with INVALID_ARGUMENT naming
    the problem (counted as malformed); a callback error ends it with INTERNAL; the
    viewer and every other call go on. grpcio itself refuses a message longer than
    ``max_message_bytes`` (RESOURCE_EXHAUSTED, from its length prefix) and bounds
    the calls to ``max_connections`` x `GRPC_CALLS_PER_CONNECTION`.
    """

    def __init__(self, server: "ViewerServer") -> None:
        self._server = server
        lim = server.limits
        self._links: dict[int, _Link] = {}  # relay's local port -> the client's link
        self._calls_done = threading.Condition(server._lock)  # notified when a call ends
        handler = grpc.method_handlers_generic_handler(wire.SERVICE, {
            "WriteMessages": grpc.stream_unary_rpc_method_handler(self._write_messages)})
        # A connection may hold a few calls at once (an SDK uses one per recording), so
        # one client cannot take every call slot; taking them all needs every
        # connection, and the listener evicts connections that deliver nothing.
        calls = lim.max_connections * GRPC_CALLS_PER_CONNECTION
        # grpcio's settings are C ints: a limit past 2 GiB is capped there
        self.max_request_bytes = min(lim.max_message_bytes + 64, (1 << 31) - 1)
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=calls, thread_name_prefix="pixelrun-viewer-grpc"),
            handlers=[handler], maximum_concurrent_rpcs=calls,
            options=[("grpc.max_receive_message_length", self.max_request_bytes),
                     ("grpc.max_send_message_length", 1 << 16), ("grpc.so_reuseport", 0),
                     ("grpc.max_concurrent_streams", GRPC_CALLS_PER_CONNECTION),
                     ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", _grpc_window(lim)),
                     ("grpc.http2.max_frame_size", GRPC_MAX_FRAME_BYTES)])
        self.port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()

    def stop(self, timeout: float, wait_calls: float) -> int:
        """Cancel every call; wait `timeout` s for grpcio, then up to `wait_calls` s for
        the call handlers to return. Returns how many are still running (e.g. in on_chunks)."""
        self._grpc.stop(grace=None).wait(max(0.0, timeout))
        deadline = time.monotonic() + wait_calls
        with self._calls_done:
            while self._server.stats.calls_open and (left := deadline - time.monotonic()) > 0:
                self._calls_done.wait(left)
            return self._server.stats.calls_open

    # -- the relay (the listener's connection thread)

    def relay(self, link: _Link, preface: bytes) -> None:
        """Carry `link`'s HTTP/2 connection (its `preface` already read) to grpcio and
        back until either side closes. Raises _Timeout when idle, OSError on errors."""
        srv, lim = self._server, self._server.limits
        up = key = watch = None
        try:
            up = socket.create_connection(("127.0.0.1", self.port), timeout=lim.read_timeout_s)
            key = up.getsockname()[1]
            with srv._lock:
                self._links[key] = link
            up.sendall(preface)
            watch = _H2Watch(self.max_request_bytes)
            self._pump(link, up, watch)
        finally:
            with srv._lock:
                self._links.pop(key, None)
                if watch is not None:
                    srv.stats.messages_truncated += watch.truncated + watch.mid_message()
            if up is not None:
                _shutdown(up)
                up.close()

    def _pump(self, link: _Link, up: socket.socket, watch: _H2Watch) -> None:
        """Bytes both ways until either side closes; bounded waits throughout."""
        srv, lim = self._server, self._server.limits
        view = memoryview(bytearray(_RELAY_BUFFER))
        link.sock.settimeout(lim.read_timeout_s)  # a send that cannot go on for this long fails
        up.settimeout(lim.read_timeout_s)
        while not srv._stopping.is_set() and link.end is None:
            ready = select.select([link.sock, up], [], [], lim.poll_s)[0]
            now = time.monotonic()
            if not ready:
                if lim.idle_timeout_s is not None and now - link.last_activity > lim.idle_timeout_s:
                    raise _Timeout(f"idle: nothing sent or received for {lim.idle_timeout_s:g} s")
                continue
            for src in ready:
                try:
                    n = src.recv_into(view)
                except ConnectionResetError:
                    n = 0
                if n == 0:
                    return
                if src is link.sock:
                    watch.feed(view[:n])
                    if watch.refused:
                        self._note_refused(link, watch.take_refused())
                (up if src is link.sock else link.sock).sendall(view[:n])
                link.last_activity = now

    def _note_refused(self, link: _Link, refused: list[tuple[int, int]]) -> None:
        srv = self._server
        for stream, declared in refused:
            reason = (f"refused a message declaring {declared} bytes on call {stream}: more than the "
                      f"{self.max_request_bytes}-byte limit (grpcio ends that call, RESOURCE_EXHAUSTED, "
                      "without reading it)")
            with srv._lock:
                srv.stats.messages_too_large += 1
                srv.stats.note_error(f"{link.peer}: {reason}")
            log.warning("viewer: %s: %s", link.peer, reason)
            srv._event(f"{link.peer}: {reason}")

    # -- the calls (grpcio's threads)

    def _link_of(self, peer: str) -> Optional[_Link]:
        port = peer.rpartition(":")[2]
        with self._server._lock:
            return self._links.get(int(port)) if port.isdigit() else None

    def _write_messages(self, requests, context) -> bytes:
        srv = self._server
        with srv._lock:
            srv.stats.calls_open += 1
        try:
            return self._serve_call(requests, context)
        finally:
            with self._calls_done:
                srv.stats.calls_open -= 1
                self._calls_done.notify_all()

    def _serve_call(self, requests, context) -> bytes:
        srv = self._server
        link = self._link_of(context.peer())
        if link is None:  # not through the listener (a local client that found the loopback port)
            link = _Link(None, f"{context.peer()} (direct)", time.monotonic())
        problem = None

        def cancelled() -> bool:
            return srv._stopping.is_set() or not context.is_active()

        try:
            decoder = srv._decoder_factory()
            decoder.feed(rrd.stream_header(False))  # a call is one stream: its messages follow
            for req in requests:
                if srv._stopping.is_set():
                    break
                kind, body, header = wire.frame_from_request(req)
                size = len(header) + len(body)
                # the copy and its decode count against the in-flight budget (several
                # calls at once wait for each other)
                reserved = size if size > UNBUDGETED_MESSAGE_BYTES else 0
                if reserved and not srv._budget.acquire(reserved, srv.limits.busy_wait_s, cancelled):
                    if cancelled():
                        break
                    raise _Busy(f"a {size}-byte {KIND_NAMES[kind]} message waited {srv.limits.busy_wait_s:g} s "
                                f"for the {srv._budget.capacity}-byte in-flight budget")
                try:
                    # the decoder takes whole frames; a large one's payload stays in this
                    # buffer (the store keeps it), so its pages are taken ready-faulted
                    frame = shared_pool().take(size)
                    frame[: len(header)] = np.frombuffer(header, np.uint8)
                    frame[len(header):] = np.frombuffer(body, np.uint8)
                    with srv._lock:
                        srv.stats.bytes_received += len(req)
                    del req, body  # grpcio's copy goes before the decode's transient comes
                    chunks = srv._decode(decoder, kind, frame, link)
                    del frame
                finally:
                    srv._budget.release(reserved)
                if chunks:
                    with srv._lock:
                        srv.stats.chunks_received += len(chunks)
                    srv._on_chunks(chunks, link.peer)
                link.last_activity = time.monotonic()  # our processing is not their idling
        except grpc.RpcError:
            return b""  # the client went away mid-stream: nothing to answer
        except (wire.WireError, StreamError) as exc:
            problem = (grpc.StatusCode.INVALID_ARGUMENT, "malformed", str(exc))
        except _Busy as exc:
            problem = (grpc.StatusCode.RESOURCE_EXHAUSTED, "error", f"server busy: {exc}")
        except Exception as exc:  # a decoder or callback failure: this call only
            problem = (grpc.StatusCode.INTERNAL, "error", f"{type(exc).__name__}: {exc}")
        if problem is None:
            return b""
        code, kind, reason = problem
        with srv._lock:
            srv.stats.calls_dropped += 1
            srv.stats.messages_malformed += kind == "malformed"
            srv.stats.note_error(f"dropped gRPC call from {link.peer}: {reason}")
        log.warning("viewer: dropped gRPC call from %s: %s", link.peer, reason)
        srv._event(f"dropped gRPC call from {link.peer}: {reason}")
        context.abort(code, f"pixelrun viewer: {reason}")
        return b""  # not reached: abort raises


class ViewerServer:
    """Listen on (host, port) for gRPC clients and decode what every one sends.

    on_chunks(chunks, peer) is called from a gRPC call's thread for every batch of
    decoded chunks; it may raise, which ends that call only. `limits` bounds sizes,
    times and connection counts (see `ServerLimits`); `decoder_factory`, when given,
    makes each call's decoder (default: `RrdStreamDecoder` with the limits'
    max_message_bytes and max_decompressed_bytes). `on_event(text)`, when given, hears
    connects, disconnects and problems (for a UI).
    """

    def __init__(
        self,
        on_chunks: Callable[[list[Chunk], str], None],
        *,
        host: str = DEFAULT_BIND,
        port: int = DEFAULT_PORT,
        decoder_factory: Optional[Callable[[], StreamDecoder]] = None,
        limits: ServerLimits = ServerLimits(),
        on_event: Optional[Callable[[str], None]] = None,
    ) -> None:
        self._on_chunks = on_chunks
        self.limits = limits
        self._decoder_factory = decoder_factory or (lambda: default_decoder_factory(limits))
        self._on_event = on_event
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._budget = _Budget(limits.max_inflight_bytes, self.stats, self._lock)
        # one decode at a time: bounds the transient memory of inflating/parsing
        self._decode_lock = threading.Lock()
        self._links: dict[int, _Link] = {}
        self._threads: list[threading.Thread] = []
        self._warned_hosts: set[str] = set()  # peers whose non-gRPC connection was logged
        self._stopping = threading.Event()
        self._sock = self._listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        try:
            self._grpc = _GrpcFrontend(self)
        except BaseException:
            self._sock.close()
            raise
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="pixelrun-viewer-accept", daemon=True
        )

    @staticmethod
    def _listen(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        # Lets a restarted viewer bind while old connections sit in TIME_WAIT; on
        # Linux it does not allow two live listeners on one port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise PortInUseError(
                    exc.errno,
                    f"port {port} on {host} is already in use (is another viewer running? "
                    f"choose another with --port)",
                ) from None
            raise
        sock.listen(64)
        sock.settimeout(0.25)  # so stop() is noticed
        return sock

    def start(self) -> "ViewerServer":
        self._accept_thread.start()
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stats_snapshot(self) -> ServerStats:
        """A consistent copy of the counters (the live `stats` may move while read)."""
        with self._lock:
            return copy.deepcopy(self.stats)

    def _event(self, msg: str) -> None:
        if self._on_event is not None:
            try:
                self._on_event(msg)
            except Exception:  # the UI hook must never stop ingest
                log.exception("viewer event hook failed")

    # -- accepting

    def _evictable(self) -> Optional[_Link]:
        """The open connection to close for a newcomer: least standing, idle longest,
        among those that have not delivered a chunk. Caller holds the lock."""
        cands = [ln for ln in self._links.values() if ln.standing < 2 and ln.end is None]
        return min(cands, key=lambda ln: (ln.standing, ln.last_activity), default=None)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # e.g. out of file descriptors: do not spin
                continue
            peer = f"{addr[0]}:{addr[1]}"
            now = time.monotonic()
            victim = link = None
            with self._lock:
                full = len(self._links) >= self.limits.max_connections
                if full:
                    victim = self._evictable()
                if full and victim is None:
                    self.stats.connections_refused += 1
                    self.stats.note_error(f"refused {peer}: all {self.limits.max_connections} "
                                          "connections are delivering data")
                else:
                    if victim is not None:
                        why = "no HTTP/2 preface yet" if victim.standing == 0 else "no chunk yet"
                        victim.end = ("evicted", f"closed to make room for {peer} ({why}, idle "
                                      f"{now - victim.last_activity:.1f} s)")
                        del self._links[id(victim)]
                    link = _Link(conn, peer, now)
                    self._links[id(link)] = link
                    self.stats.connections_total += 1
                    self.stats.connections_open = len(self._links)
            if link is None:
                conn.close()
                log.warning("viewer: refused %s: all %d connections are delivering data",
                            peer, self.limits.max_connections)
                self._event(f"refused {peer}: all {self.limits.max_connections} connections busy")
                continue
            if victim is not None:
                _shutdown(victim.sock)  # its thread sees EOF and accounts the eviction
            link.thread = threading.Thread(
                target=self._serve, args=(link,), name=f"pixelrun-viewer-{peer}", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [link.thread]
            link.thread.start()
            self._event(f"connected: {peer}")

    # -- one connection

    def _decode(self, decoder: StreamDecoder, kind: int, frame, link: _Link) -> list[Chunk]:
        if not self._decode_lock.acquire(timeout=self.limits.busy_wait_s):
            raise _Busy(f"the decoder stayed busy for {self.limits.busy_wait_s:g} s")
        try:
            chunks = list(decoder.feed(frame))
        finally:
            self._decode_lock.release()
        link.standing = max(link.standing, 2 if kind == rrd.KIND_ARROW_MSG else 1)
        with self._lock:
            self.stats.messages_received += 1
        return chunks

    def _read_preface(self, link: _Link) -> Optional[bytes]:
        """The HTTP/2 preface, read within handshake_timeout_s of connecting; None when
        the client closes (or the server stops) first. Raises _NotGrpc as soon as the
        bytes differ from it, _Timeout when it is not complete in time (silent or
        trickling: a slowloris)."""
        lim, sock = self.limits, link.sock
        deadline = link.opened + lim.handshake_timeout_s
        got = b""
        while len(got) < len(H2_PREFACE):
            if self._stopping.is_set() or link.end is not None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout(f"no HTTP/2 preface (a gRPC client's first bytes) within "
                               f"{lim.handshake_timeout_s:g} s of connecting ({len(got)} of "
                               f"{len(H2_PREFACE)} bytes received)")
            if not select.select([sock], [], [], min(left, lim.poll_s))[0]:
                continue
            try:
                part = sock.recv(len(H2_PREFACE) - len(got))
            except ConnectionResetError:
                part = b""
            if not part:
                return None  # gone before speaking (a port probe, or an evicted link)
            got += part
            link.last_activity = time.monotonic()
            if not H2_PREFACE.startswith(got):
                raise _NotGrpc(got)
        return got

    def _answer_not_grpc(self, link: _Link) -> None:
        """Rerun's answer to a client that does not speak HTTP/2, then an orderly close:
        what the client still sends is read and dropped (bounded), so that the close
        does not reset the connection before the answer is read."""
        sock = link.sock
        try:
            sock.settimeout(self.limits.read_timeout_s)
            host, port = sock.getsockname()[:2]
            sock.sendall(not_grpc_answer(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"))
            sock.shutdown(socket.SHUT_WR)
            deadline, drained = time.monotonic() + _DRAIN_S, 0
            while drained < _DRAIN_BYTES and not self._stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not select.select([sock], [], [], min(left, 0.1))[0]:
                    continue
                part = sock.recv(65536)
                if not part:
                    break
                drained += len(part)
        except OSError:
            pass  # gone already: nothing more to tell it

    def _serve(self, link: _Link) -> None:
        kind, reason = "closed", ""
        try:
            preface = self._read_preface(link)
            if preface is not None:
                with self._lock:
                    link.standing = max(link.standing, 1)  # an HTTP/2 client
                self._grpc.relay(link, preface)
        except _NotGrpc as exc:
            kind, reason = "not_grpc", (f"not a gRPC client (first bytes {exc.first[:16]!r}, not the HTTP/2 "
                                        "preface): answered HTTP 400; this port speaks gRPC only "
                                        "(rr.connect_grpc / rerun-sdk)")
            self._answer_not_grpc(link)
        except _Timeout as exc:
            kind, reason = "timeout", str(exc)
        except OSError as exc:
            if not self._stopping.is_set() and link.end is None:
                kind, reason = "error", f"connection error: {exc}"
        except Exception as exc:  # never let one connection's thread die unaccounted
            kind, reason = "error", f"{type(exc).__name__}: {exc}"
        finally:
            self._close(link, kind, reason)

    def _close(self, link: _Link, kind: str, reason: str) -> None:
        # Account first, then close: whoever sees the close sees the counts too.
        host = link.peer.rpartition(":")[0]
        with self._lock:
            if link.end is None:
                link.end = (kind, reason)
            kind, reason = link.end
            self._links.pop(id(link), None)
            s = self.stats
            s.connections_open = len(self._links)
            if kind == "evicted":
                s.connections_evicted += 1
            elif kind == "timeout":
                s.connections_timed_out += 1
            elif kind == "not_grpc":
                s.connections_not_grpc += 1
            elif kind == "error":
                s.connections_dropped += 1
            what = {"evicted": "evicted", "timeout": "timed out", "not_grpc": "closed"}.get(kind, "dropped connection")
            if reason:
                s.note_error(f"{what} {link.peer}: {reason}")
            first_from_host = kind == "not_grpc" and host not in self._warned_hosts
            if first_from_host:
                if len(self._warned_hosts) >= _WARNED_HOSTS_MAX:
                    self._warned_hosts.clear()
                self._warned_hosts.add(host)
        _shutdown(link.sock)
        try:
            link.sock.close()
        except OSError:
            pass
        if kind == "not_grpc":  # a client retrying in a loop must not flood the log
            if first_from_host:
                log.warning("viewer: %s %s: %s (further ones from %s are counted, not logged)",
                            what, link.peer, reason, host)
            self._event(f"{what} {link.peer}: {reason}")
        elif reason:
            (log.warning if kind == "error" else log.info)("viewer: %s %s: %s", what, link.peer, reason)
            self._event(f"{what} {link.peer}: {reason}")
        else:
            self._event(f"disconnected: {link.peer}")

    def stop(self, timeout: float = 5.0) -> bool:
        """Close the listener and every connection; wait at most `timeout` s for the
        threads. Returns False when some thread is still busy (e.g. in on_chunks)."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        try:
            self._sock.close()
        except OSError:
            pass
        # the accept loop first, so that no connection opens after the snapshot below
        if self._accept_thread.ident is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            links = list(self._links.values())
            for ln in links:
                if ln.end is None:
                    ln.end = ("stopped", "")
        for ln in links:
            _shutdown(ln.sock)
        self._budget.wake()
        busy_calls = self._grpc.stop(min(1.0, max(0.0, deadline - time.monotonic())),
                                     max(0.0, deadline - time.monotonic()))
        threads = [self._accept_thread] + list(self._threads)
        for t in threads[1:]:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if busy_calls:
            stuck.append(f"{busy_calls} gRPC call(s)")
        if stuck:
            log.warning("viewer: %d server thread(s) still busy after %g s: %s",
                        len(stuck), timeout, ", ".join(stuck))
        return not stuck


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

"""The viewer's listener: SDK processes stream recordings in, chunks come out.

Two protocols share the port: Rerun 0.41's gRPC message proxy (what rerun-sdk and
pixelrun's ``connect_grpc``/``spawn`` speak; `_GrpcFrontend`) and pixelrun's raw .rrd
byte stream over TCP (``rr.connect_tcp``). A connection that opens with the HTTP/2
preface is relayed to the gRPC side; any other is greeted and read as raw .rrd
(what follows describes that raw path; the gRPC side reuses its decoder, limits
and counters).

One accept thread, one reader thread per connection (several programs may stream into
one viewer at once). Each reader cuts its connection's bytes into whole .rrd units —
the 12-byte stream header, each message (16-byte header + body), the 32-byte stream
footer — feeds them one whole unit at a time to its own decoder and hands every
decoded chunk to ``on_chunks`` (the viewer ingests them into its store from that
thread, never from the window's thread).

Memory: a message body is read with ``recv_into`` straight into one buffer of its
declared length, allocated only after the length has been checked against
``max_message_bytes`` and reserved from a server-wide in-flight budget
(``max_inflight_bytes``), so every byte is copied out of the kernel once (ingest time
is linear in the message size), the decoder never keeps a partial tail, and several
huge messages at once wait for each other instead of multiplying memory. Decoding —
where an LZ4 body inflates, bounded by the decoder's limit — runs for one message at
a time across all connections, so parallel inflations cannot add up either. Held at
once, at most: max_inflight_bytes of bodies, max_connections x 64 KiB of small ones,
and one decode's transient (the decoder's copies of one body, its inflated payload).

Time: every wait is bounded (`ServerLimits`). A connection that has not sent a valid
stream header and one complete message within ``handshake_timeout_s``, that stalls
or trickles in the middle of a unit (no byte for ``read_timeout_s``, or fewer than
``min_bytes_per_s`` after that grace: slowloris), or that sends nothing between
messages for ``idle_timeout_s`` is closed. At ``max_connections`` a new connection is
not refused while some open one has not yet delivered a chunk: the one of those with
the least standing (no valid stream yet before stream-but-no-chunk) and idle the
longest is evicted, so idle or half-open connections can never lock real clients
out. Only when every open connection has delivered chunks is the newcomer refused.

Failure behaviour: anything wrong with one connection — malformed or hostile bytes,
a message longer than the limit, a decoder error, a callback error, a timeout —
closes that connection only, with a message naming the peer, and is counted in
``stats``; the listener and every other connection keep going.

Counters: ``server.stats`` is the live `ServerStats` (accepted, refused, evicted,
timed out, dropped, malformed messages, bytes, chunks, in-flight bytes);
``server.stats_snapshot()`` is a consistent copy and ``ServerStats.status_line()``
its one-line summary for the window's status bar.

Greeting: a raw client is sent `GREETING` (its only bytes on the connection), so it
can tell it is talking to a pixelrun viewer: once its first bytes show it is not a
gRPC client, or after `SNIFF_S` of silence.

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
from pixelrun.engine.rrd.messages import KIND_NAMES, MESSAGE_HEADER

__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_PORT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "GREETING",
    "StreamDecoder",
    "ServerLimits",
    "ServerStats",
    "ViewerServer",
    "PortInUseError",
    "default_decoder_factory",
    "RrdStreamDecoder",
    "StreamError",
]

log = logging.getLogger("pixelrun.viewer")

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = rrd.RERUN_DEFAULT_PORT  # `pixelrun view` itself honours PIXELRUN_PORT
# A single message bigger than this is refused (the largest plausible image message,
# an 8K RGBA f64 frame, is about 1 GiB; a hostile length must not allocate).
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30
# Message bodies being received or decoded, all connections together: two maximal
# messages at once, a third waits (decoding adds at most one message's transient).
DEFAULT_MAX_INFLIGHT_BYTES = 2 << 30
# The server's first (and only) bytes on every connection, sent on accept: lets a
# client tell a pixelrun viewer from whatever else listens on the port (Rerun's own
# viewer speaks gRPC on 9876). pixelrun's SDK (sinks.TcpSink) reads it — its GREETING
# must stay equal to this one. A client that never reads it should half-close and
# drain before closing: closing a socket with unread bytes makes the kernel send a
# reset, which discards whatever the client had not yet transmitted.
GREETING = b"PIXELRUN-VIEWER/1\n"
# Messages up to this size skip the in-flight budget (and its queue): store infos and
# small chunks never wait behind a huge frame; at most max_connections x this much.
UNBUDGETED_MESSAGE_BYTES = 64 << 10

_FOOTER_MAGIC = rrd.FOURCC + rrd.FOOTER_ID  # bytes 20..28 of the 32-byte stream footer


class StreamDecoder(Protocol):
    """What the server needs from an incremental .rrd decoder."""

    def feed(self, data: bytes) -> Iterable[Chunk]:
        """Consume bytes; return the chunks completed so far. Raise on malformed data."""


class PortInUseError(OSError):
    """The port is taken (usually: another viewer is already running)."""


@dataclass(frozen=True)
class ServerLimits:
    """Every bound the server enforces (bytes, seconds). The defaults suit a local viewer.

    idle_timeout_s=None keeps connections that have delivered a valid stream open
    while silent (the handshake timeout and eviction still apply).
    """

    max_connections: int = 64
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    # an LZ4 body inflating past this is refused before decompressing (None: the
    # decoder's default, rrd.default_max_decompressed_bytes(), PIXELRUN_MAX_DECOMPRESSED_BYTES)
    max_decompressed_bytes: Optional[int] = None
    handshake_timeout_s: float = 10.0  # until a valid stream header + one message
    idle_timeout_s: Optional[float] = 300.0  # silent between messages
    read_timeout_s: float = 10.0  # no byte at all in the middle of a unit
    min_bytes_per_s: float = 1 << 20  # in the middle of a unit, after read_timeout_s
    busy_wait_s: float = 60.0  # longest wait for the in-flight budget or the decoder

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_message_bytes", "max_inflight_bytes",
                     "handshake_timeout_s", "read_timeout_s", "min_bytes_per_s", "busy_wait_s"):
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
        """How often a waiting reader re-checks its deadlines."""
        shortest = min(self.handshake_timeout_s, self.read_timeout_s, self.idle_timeout_s or 1.0)
        return max(0.01, min(1.0, shortest / 8))


@dataclass
class ServerStats:
    """Counters for the viewer's status line (updated under the server's lock).

    Each closed connection is counted once, by why it closed: cleanly by the client
    (only in connections_total), or dropped (bad data or an error), timed out,
    evicted, or — never opened — refused.
    """

    connections_total: int = 0  # accepted
    connections_open: int = 0
    connections_dropped: int = 0  # closed for bad data or an error (incl. malformed)
    connections_refused: int = 0  # at max_connections with nobody evictable
    connections_evicted: int = 0  # closed to make room (had not delivered a chunk)
    connections_timed_out: int = 0  # handshake, idle, stalled or too-slow
    messages_malformed: int = 0  # streams/messages the decoder or framing rejected
    messages_received: int = 0
    messages_truncated: int = 0  # a connection ended inside a message: its bytes dropped
    bytes_received: int = 0
    chunks_received: int = 0
    inflight_bytes: int = 0  # message bodies held right now (budgeted ones)
    inflight_peak_bytes: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)  # the last few, for the UI

    def note_error(self, msg: str) -> None:
        self.last_error = msg
        self.errors.append(msg)
        del self.errors[:-20]

    def status_line(self) -> str:
        """One line for the window: connections by fate, then what arrived."""
        return (
            f"connections: {self.connections_open} open, {self.connections_total} accepted, "
            f"{self.connections_refused} refused, {self.connections_evicted} evicted, "
            f"{self.connections_timed_out} timed out, {self.connections_dropped} dropped "
            f"({self.messages_malformed} malformed); received {self.bytes_received / 1e6:.1f} MB, "
            f"{self.messages_received} messages, {self.chunks_received} chunks, "
            f"{self.messages_truncated} cut short"
        )


class StreamError(ValueError):
    """The bytes of one connection are not a valid .rrd stream; that connection ends."""


class _Timeout(Exception):
    """A connection missed one of its deadlines."""


class _Busy(Exception):
    """The server's shared resources stayed taken longer than busy_wait_s."""


class RrdStreamDecoder:
    """`engine/rrd/decode.py`'s incremental decoder with the live-stream policy on top.

    A file reader skips a corrupt message and goes on; a live connection that sends
    one is not trusted further (no resynchronising either): the first problem the
    decoder reports (bad magic, unknown kind, a length over `max_message_bytes`, an
    LZ4 body declaring more than `max_decompressed_bytes`, an undecodable body)
    raises `StreamError`, which ends that connection. Blueprint chunks are ignored
    (the viewer has a fixed layout).
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_decompressed_bytes: Optional[int] = None) -> None:
        self._dec = rrd.RrdDecoder(max_message_bytes=max_message_bytes,
                                   max_decompressed_bytes=max_decompressed_bytes, resync=False)
        self.messages = 0

    def _check(self) -> None:
        if self._dec.problems:
            raise StreamError(self._dec.problems[0])

    def feed(self, data) -> list[Chunk]:
        msgs = self._dec.feed(data)
        self._check()
        self.messages += len(msgs)
        return [m.chunk for m in msgs if isinstance(m, rrd.ChunkMsg) and m.store.kind != "blueprint"]

    def close(self) -> list[Chunk]:
        """End of the connection: nothing is pending (the server feeds whole units)."""
        self._dec.finish()
        return []


def default_decoder_factory(limits: ServerLimits = ServerLimits()) -> StreamDecoder:
    """A fresh decoder for one connection, with the limits' size bounds."""
    return RrdStreamDecoder(limits.max_message_bytes, limits.max_decompressed_bytes)


class _Budget:
    """Bytes of message bodies held at once, all connections together, granted in
    arrival order (a huge message is not starved by a stream of smaller ones)."""

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
    """One connection's state, shared by its reader thread and the accept thread."""

    def __init__(self, sock, peer: str, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.opened = now
        self.last_activity = now  # last byte received, or the end of our own processing
        self.standing = 0  # 0: nothing valid yet, 1: a valid stream, 2: delivered chunks
        self.expect = 0  # bytes of the unit being read, as far as known
        self.got = 0  # bytes of it held (0: between units)
        self.unit_start = now
        self.end: Optional[tuple[str, str]] = None  # (kind, reason), set once
        self.thread: Optional[threading.Thread] = None


@dataclass
class _Unit:
    """One whole .rrd unit: `kind` is the message kind, None for stream header/footer."""

    kind: Optional[int]
    data: memoryview
    reserved: int = 0  # bytes of the in-flight budget to give back


class _UnitReader:
    """Cuts one connection's bytes into whole .rrd units with bounded waits.

    Headers are read into a small prefix; a message body goes with ``recv_into``
    straight into one buffer of the declared size (numpy.empty: pages are committed
    only as bytes arrive), after the length has passed the limit and the budget.
    """

    def __init__(self, link: _Link, limits: ServerLimits, budget: _Budget,
                 count_bytes: Callable[[int], None], cancelled: Callable[[], bool]) -> None:
        self.link = link
        self.limits = limits
        self._budget = budget
        self._count = count_bytes
        self._cancelled = cancelled
        self._pre = bytearray()  # bytes of the next unit read so far (at most 32)
        self._scratch = memoryview(bytearray(rrd.STREAM_FOOTER_SIZE))
        self._state = "header"  # header | message | footer
        self.offset = 0  # stream offset of the next unit, for messages
        self.partial = 0  # at EOF: bytes of an incomplete unit that were dropped

    # -- waiting for bytes

    def _check_deadlines(self, now: float) -> None:
        lim, link = self.limits, self.link
        if link.standing == 0 and now - link.opened > lim.handshake_timeout_s:
            raise _Timeout(
                f"no valid .rrd stream header and message within {lim.handshake_timeout_s:g} s "
                f"of connecting ({self.offset + link.got} bytes received)"
            )
        if link.got:
            if now - link.last_activity > lim.read_timeout_s:
                raise _Timeout(
                    f"stalled mid-message at byte {self.offset}: nothing for {lim.read_timeout_s:g} s "
                    f"after {link.got} of {link.expect} bytes"
                )
            late = now - link.unit_start - lim.read_timeout_s
            if late > 0 and link.got < min(link.expect, lim.min_bytes_per_s * late):
                raise _Timeout(
                    f"too slow at byte {self.offset}: {link.got} of {link.expect} bytes in "
                    f"{now - link.unit_start:.1f} s (at least {lim.min_bytes_per_s:g} bytes/s after "
                    f"the first {lim.read_timeout_s:g} s)"
                )
        elif lim.idle_timeout_s is not None and now - link.last_activity > lim.idle_timeout_s:
            raise _Timeout(f"idle: nothing received for {lim.idle_timeout_s:g} s")

    def _recv(self, into: memoryview) -> int:
        """Some bytes into `into` (0: end of stream); raises _Timeout past a deadline."""
        link = self.link
        while True:
            try:
                n = link.sock.recv_into(into)
            except socket.timeout:
                n = -1
            except ConnectionResetError:
                # the client closed with our greeting unread (or aborted): everything
                # it sent before is already here, so this is an end of stream
                n = 0
            now = time.monotonic()
            if n > 0:
                if not link.got:
                    link.unit_start = now
                link.got += n
                link.last_activity = now
                self._count(n)
            self._check_deadlines(now)  # also while bytes trickle in
            if n >= 0:
                return n

    def _fill(self, lo: int, hi: int) -> bool:
        """Hold at least `lo` (reading at most `hi`) bytes of the next unit; False at EOF."""
        self.link.expect = max(self.link.expect, lo)
        while len(self._pre) < lo:
            n = self._recv(self._scratch[: hi - len(self._pre)])
            if n == 0:
                self.partial = len(self._pre)
                return False
            self._pre += self._scratch[:n]
        return True

    def _take(self, n: int, kind: Optional[int], state: str) -> _Unit:
        """The first `n` prefix bytes are a whole unit."""
        data = memoryview(bytes(self._pre[:n]))
        del self._pre[:n]
        self._state = state
        self._unit_done(n)
        return _Unit(kind, data)

    def _unit_done(self, n: int) -> None:
        self.offset += n
        self.link.got = len(self._pre)  # bytes already held of the next unit
        self.link.expect = 0

    # -- units

    def next_unit(self) -> Optional[_Unit]:
        """The next whole unit, or None at the end of the stream."""
        if self._state == "header":
            if not self._fill(rrd.STREAM_HEADER_SIZE, rrd.STREAM_HEADER_SIZE):
                return None
            return self._take(rrd.STREAM_HEADER_SIZE, None, "message")
        if self._state == "footer":
            if not self._fill(rrd.STREAM_FOOTER_SIZE, rrd.STREAM_FOOTER_SIZE):
                return None
            if bytes(self._pre[20:28]) == _FOOTER_MAGIC:
                return self._take(rrd.STREAM_FOOTER_SIZE, None, "message")
            self._state = "message"  # no footer after End: these bytes start the next unit
        if not self._fill(4, rrd.MESSAGE_HEADER_SIZE):
            return None
        if self._pre[:4] == rrd.FOURCC:  # another stream follows (`cat a.rrd b.rrd`)
            self._state = "header"
            return self.next_unit()
        if not self._fill(rrd.MESSAGE_HEADER_SIZE, rrd.MESSAGE_HEADER_SIZE):
            return None
        return self._read_message()

    def _read_message(self) -> Optional[_Unit]:
        kind, length = MESSAGE_HEADER.unpack_from(self._pre)
        if kind not in KIND_NAMES:
            raise StreamError(
                f"byte {self.offset}: unknown message kind {kind} (expected 0-3); the framing is "
                "lost, nothing after this offset can be read"
            )
        limit = self.limits.max_message_bytes
        if length > limit:
            raise StreamError(
                f"byte {self.offset}: {KIND_NAMES[kind]} message claims {length} bytes, more than "
                f"the {limit}-byte limit; refused without reading it"
            )
        reserved = length if length > UNBUDGETED_MESSAGE_BYTES else 0
        link = self.link
        waited_from = time.monotonic()
        if reserved and not self._budget.acquire(reserved, self.limits.busy_wait_s, self._cancelled):
            if self._cancelled():
                return None
            raise _Busy(
                f"byte {self.offset}: a {length}-byte {KIND_NAMES[kind]} message waited "
                f"{self.limits.busy_wait_s:g} s for the {self._budget.capacity}-byte in-flight budget"
            )
        link.opened += time.monotonic() - waited_from  # nor is it the handshake's
        try:
            total = rrd.MESSAGE_HEADER_SIZE + length
            buf = memoryview(np.empty(total, np.uint8))
            have = min(len(self._pre), total)
            buf[:have] = self._pre[:have]
            del self._pre[:have]
            # our wait for the budget is not the client's delay: its clock starts now
            link.expect, link.got = total, have
            link.unit_start = link.last_activity = time.monotonic()
            while link.got < total:
                if self._recv(buf[link.got :]) == 0:
                    self.partial = link.got
                    self._budget.release(reserved)
                    return None
        except BaseException:
            self._budget.release(reserved)
            raise
        self._state = "footer" if kind == rrd.KIND_END else "message"
        self._unit_done(total)
        return _Unit(kind, buf, reserved)

    def release(self, unit: _Unit) -> None:
        """The unit has been decoded: give its bytes back to the budget."""
        self._budget.release(unit.reserved)
        unit.reserved = 0


# A gRPC client's first bytes: the start of the HTTP/2 connection preface.
_H2_START = b"PRI * HTTP/2.0"
# How long a new connection may take to show that it speaks HTTP/2 before it is
# greeted as a raw .rrd client. gRPC clients send the preface as soon as they connect;
# a raw client that waits for the greeting before sending waits this long once.
SNIFF_S = 1.0
_RELAY_BUFFER = 1 << 20
# gRPC calls (HTTP/2 streams) one connection may have open at once; more wait in the client.
GRPC_CALLS_PER_CONNECTION = 4
# HTTP/2 flow-control window of each gRPC call (and of its connection): what grpcio may
# hold received but not yet read by the call. Fixed, not grown by grpcio's bandwidth
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
# measured with tests/engine/test_viewer_memory.py (1080p NV12 at full speed, 500 MB limit),
# the viewer grew ~40 MB more over gRPC than over the raw stream; 48 MB keeps a margin.
GRPC_TRANSPORT_BYTES = 48 * 1000**2


def _grpc_window(limits: "ServerLimits") -> int:
    """The HTTP/2 window of each gRPC call: GRPC_WINDOW_BYTES, at most a 16th of the
    in-flight budget, at least HTTP/2's default 64 KiB."""
    return max(1 << 16, min(GRPC_WINDOW_BYTES, limits.max_inflight_bytes // 16))


class _GrpcFrontend:
    """Rerun 0.41's gRPC message proxy (``MessageProxyService/WriteMessages``, see
    engine/grpc/wire.py) on the viewer's own port, so Rerun SDKs stream into it.

    grpcio serves on a loopback port of its own; the listener relays to it every
    connection that opens with the HTTP/2 preface (`proxy`), so both protocols share
    one port and every gRPC connection stays under the listener's rules: the
    connection limit and eviction, the handshake and idle timeouts, the counters.
    Each request carries one .rrd message; it is decoded by the call's own
    `RrdStreamDecoder` (size limits, LZ4 bound) one decode at a time across all
    connections, as raw streams are. A malformed request ends its call with
    INVALID_ARGUMENT naming the problem (counted as malformed); a callback error
    ends it with INTERNAL; the viewer and every other call go on.

    What the relay does not see: message boundaries inside HTTP/2, so the raw
    path's per-unit slow-rate check does not apply; grpcio bounds a message at
    ``max_message_bytes`` and the number of calls at ``max_connections``.
    """

    def __init__(self, server: "ViewerServer") -> None:
        self._server = server
        lim = server.limits
        self._links: dict[int, _Link] = {}  # relay's local port -> the client's link
        handler = grpc.method_handlers_generic_handler(wire.SERVICE, {
            "WriteMessages": grpc.stream_unary_rpc_method_handler(self._write_messages)})
        # A connection may hold a few calls at once (an SDK uses one per recording), so
        # one client cannot take every call slot; taking them all needs every
        # connection, and the listener evicts connections that deliver nothing.
        calls = lim.max_connections * GRPC_CALLS_PER_CONNECTION
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=calls, thread_name_prefix="pixelrun-viewer-grpc"),
            handlers=[handler], maximum_concurrent_rpcs=calls,
            options=[("grpc.max_receive_message_length", lim.max_message_bytes + 64),
                     ("grpc.max_send_message_length", 1 << 16), ("grpc.so_reuseport", 0),
                     ("grpc.max_concurrent_streams", GRPC_CALLS_PER_CONNECTION),
                     ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", _grpc_window(lim)),
                     ("grpc.http2.max_frame_size", GRPC_MAX_FRAME_BYTES)])
        self.port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()

    def stop(self, timeout: float) -> None:
        self._grpc.stop(grace=None).wait(max(0.0, timeout))

    # -- the relay (the listener's connection thread)

    def proxy(self, link: _Link) -> None:
        srv = self._server
        kind, reason = "closed", ""
        up = key = None
        try:
            up = socket.create_connection(("127.0.0.1", self.port), timeout=srv.limits.read_timeout_s)
            key = up.getsockname()[1]
            with srv._lock:
                self._links[key] = link
                link.standing = max(link.standing, 1)  # a valid HTTP/2 start
            self._relay(link, up)
        except _Timeout as exc:
            kind, reason = "timeout", str(exc)
        except OSError as exc:
            if not srv._stopping.is_set() and link.end is None:
                kind, reason = "error", f"connection error: {exc}"
        finally:
            with srv._lock:
                self._links.pop(key, None)
            if up is not None:
                _shutdown(up)
                up.close()
            srv._close(link, kind, reason)

    def _relay(self, link: _Link, up: socket.socket) -> None:
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
                (up if src is link.sock else link.sock).sendall(view[:n])
                link.last_activity = now

    # -- the calls (grpcio's threads)

    def _link_of(self, peer: str) -> Optional[_Link]:
        port = peer.rpartition(":")[2]
        with self._server._lock:
            return self._links.get(int(port)) if port.isdigit() else None

    def _write_messages(self, requests, context) -> bytes:
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
                # the copy and its decode count against the in-flight budget, as a raw
                # stream's message does (several calls at once wait for each other)
                reserved = size if size > UNBUDGETED_MESSAGE_BYTES else 0
                if reserved and not srv._budget.acquire(reserved, srv.limits.busy_wait_s, cancelled):
                    if cancelled():
                        break
                    raise _Busy(f"a {size}-byte {KIND_NAMES[kind]} message waited {srv.limits.busy_wait_s:g} s "
                                f"for the {srv._budget.capacity}-byte in-flight budget")
                try:
                    frame = bytearray(size)  # the decoder takes whole frames
                    frame[: len(header)] = header
                    frame[len(header):] = body
                    srv._count_bytes(len(req))
                    del req, body  # grpcio's copy goes before the decode's transient comes
                    chunks = srv._decode(decoder, _Unit(kind, memoryview(frame)), link)
                    del frame
                finally:
                    srv._budget.release(reserved)
                if chunks:
                    with srv._lock:
                        srv.stats.chunks_received += len(chunks)
                    srv._on_chunks(chunks, link.peer)
                link.last_activity = time.monotonic()
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
            srv.stats.messages_malformed += kind == "malformed"
            srv.stats.note_error(f"dropped gRPC stream from {link.peer}: {reason}")
        log.warning("viewer: dropped gRPC stream from %s: %s", link.peer, reason)
        srv._event(f"dropped gRPC stream from {link.peer}: {reason}")
        context.abort(code, f"pixelrun viewer: {reason}")
        return b""  # not reached: abort raises


class ViewerServer:
    """Listen on (host, port) and decode what every client sends.

    on_chunks(chunks, peer) is called from the connection's thread for every batch of
    decoded chunks; it may raise, which drops that connection only. `limits` bounds
    sizes, times and connection counts (see `ServerLimits`); `decoder_factory`, when
    given, makes each connection's (and gRPC call's) decoder (default:
    `RrdStreamDecoder` with the limits' max_message_bytes and max_decompressed_bytes).
    `serve_grpc` (default True) also serves Rerun's gRPC protocol on the same port.
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
        serve_grpc: bool = True,
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
        self._stopping = threading.Event()
        self._sock = self._listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._grpc: Optional[_GrpcFrontend] = None
        if serve_grpc:
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
                        why = "no valid stream yet" if victim.standing == 0 else "no chunk yet"
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
                _shutdown(victim.sock)  # its reader sees EOF and accounts the eviction
            conn.settimeout(self.limits.poll_s)
            link.thread = threading.Thread(
                target=self._serve, args=(link,), name=f"pixelrun-viewer-{peer}", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [link.thread]
            link.thread.start()
            self._event(f"connected: {peer}")

    # -- reading one connection

    def _count_bytes(self, n: int) -> None:
        with self._lock:
            self.stats.bytes_received += n

    def _decode(self, decoder: StreamDecoder, unit: _Unit, link: _Link) -> list[Chunk]:
        if not self._decode_lock.acquire(timeout=self.limits.busy_wait_s):
            raise _Busy(f"the decoder stayed busy for {self.limits.busy_wait_s:g} s")
        try:
            chunks = list(decoder.feed(unit.data))
        finally:
            self._decode_lock.release()
        if unit.kind is not None:
            link.standing = max(link.standing, 2 if unit.kind == rrd.KIND_ARROW_MSG else 1)
            with self._lock:
                self.stats.messages_received += 1
        return chunks

    def _speaks_http2(self, link: _Link) -> bool:
        """Whether the client opened with the HTTP/2 preface (a gRPC client) within
        `SNIFF_S`; a raw .rrd client (or silence) is greeted instead."""
        deadline = time.monotonic() + min(SNIFF_S, self.limits.handshake_timeout_s)
        got = b""
        while len(got) < len(_H2_START) and _H2_START.startswith(got):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                if not select.select([link.sock], [], [], min(left, 0.05))[0]:
                    continue
                got = link.sock.recv(len(_H2_START), socket.MSG_PEEK)
            except OSError:
                return False  # its reader sees the error
            if not got:
                break
        return got == _H2_START

    def _serve(self, link: _Link) -> None:
        if self._grpc is not None and self._speaks_http2(link):
            self._grpc.proxy(link)
            return
        try:
            link.sock.send(GREETING)  # fits any empty send buffer: never waits
        except OSError:
            pass  # gone already: its reader sees the end of stream
        kind, reason = "closed", ""
        reader = _UnitReader(link, self.limits, self._budget, self._count_bytes,
                             cancelled=lambda: self._stopping.is_set() or link.end is not None)
        try:
            decoder = self._decoder_factory()
            while not self._stopping.is_set():
                unit = reader.next_unit()
                if unit is None:
                    break
                try:
                    chunks = self._decode(decoder, unit, link)
                finally:
                    reader.release(unit)
                    unit = None  # the message buffer goes now, not after the callback
                if chunks:
                    with self._lock:
                        self.stats.chunks_received += len(chunks)
                    self._on_chunks(chunks, link.peer)
                link.last_activity = time.monotonic()  # our processing is not their idling
            if reader.partial:
                # A writer killed mid-message is normal for a live sink: nothing to
                # ingest; counted, and logged without alarm.
                with self._lock:
                    self.stats.messages_truncated += 1
                log.info("viewer: %s: stream ends inside a unit at byte %d (%d bytes dropped)",
                         link.peer, reader.offset, reader.partial)
            finish = getattr(decoder, "close", None)
            tail = finish() if finish is not None else None
            if tail:
                self._on_chunks(list(tail), link.peer)
        except StreamError as exc:
            kind, reason = "malformed", str(exc)
        except _Timeout as exc:
            kind, reason = "timeout", str(exc)
        except _Busy as exc:
            kind, reason = "error", f"server busy: {exc}"
        except OSError as exc:
            if not self._stopping.is_set():
                kind, reason = "error", f"connection error: {exc}"
        except Exception as exc:  # a decoder or callback failure: drop this connection only
            kind, reason = "error", f"{type(exc).__name__}: {exc}"
        finally:
            self._close(link, kind, reason)

    def _close(self, link: _Link, kind: str, reason: str) -> None:
        # Account first, then close: whoever sees the close sees the counts too.
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
            elif kind in ("malformed", "error"):
                s.connections_dropped += 1
                s.messages_malformed += kind == "malformed"
            what = {"evicted": "evicted", "timeout": "timed out"}.get(kind, "dropped connection")
            if reason:
                s.note_error(f"{what} {link.peer}: {reason}")
        _shutdown(link.sock)
        try:
            link.sock.close()
        except OSError:
            pass
        if reason:
            (log.warning if kind in ("malformed", "error") else log.info)(
                "viewer: %s %s: %s", what, link.peer, reason)
            self._event(f"{what} {link.peer}: {reason}")
        else:
            self._event(f"disconnected: {link.peer}")

    def stop(self, timeout: float = 5.0) -> bool:
        """Close the listener and every connection; wait at most `timeout` s for the
        threads. Returns False when some reader is still busy (e.g. in on_chunks)."""
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
        if self._grpc is not None:  # ends its calls (their relays see the close)
            self._grpc.stop(min(1.0, max(0.0, deadline - time.monotonic())))
        threads = [self._accept_thread] + list(self._threads)
        for t in threads[1:]:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log.warning("viewer: %d server thread(s) still busy after %g s: %s",
                        len(stuck), timeout, ", ".join(stuck))
        return not stuck


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

"""Where encoded recordings go: a file, memory, a TCP connection, or a backlog.

Every sink receives the same .rrd encoding (engine/rrd/encode.py): stream header, one
SetStoreInfo per recording, ArrowMsg chunks, and (files and memory) the End message
plus stream footer on close that Rerun 0.41's ``rrd verify`` requires. File and
memory sinks drive the engine's `RrdEncoder`, which keeps the offsets and manifests
that footer needs; a sink only decides where the bytes go.

Sinks are driven by one recording stream's background thread (the batcher), never
by the thread calling ``log``; a file shared by several recordings (PIXELRUN_SAVE, or
two ``rr.save`` to one path) serialises writers with a lock.

Loss: a sink that drops anything counts it in its recording's `LossLedger` (bound by
the recording; `place` names the sink in messages), and keeps its own counts
(`dropped`, `dropped_rows`, `dropped_bytes`). After ``os.fork()`` a child never
writes to its parent's file or socket: `for_child` says what it writes instead.
"""

from __future__ import annotations

import collections
import importlib
import ipaddress
import os
import select
import socket
import threading
import time
from typing import Callable, Optional

import grpc
import pyarrow as pa

from pixelrun.engine import rrd
from pixelrun.engine.chunk import Chunk
from pixelrun.engine.grpc import wire
from pixelrun.errors import PixelrunSaveError, PixelrunWarning
from pixelrun.loss import LossLedger, format_bytes

__all__ = [
    "Sink", "FileSink", "MemorySink", "MemoryRecording", "TcpSink", "GrpcSink", "BacklogSink", "default_grpc_url",
    "FileSinkSpec", "GrpcSinkSpec",
    "open_file_sink", "shared_file_sink", "child_path", "GREETING", "describe_peer_bytes",
]


class Sink:
    """Interface: add_store / write_chunk / flush / close. All called from one thread
    per recording (a shared sink locks internally)."""

    place = "sink"
    _loss: Optional[LossLedger] = None

    @property
    def loss(self) -> LossLedger:
        """Where this sink counts its drops: its recording's ledger once bound."""
        if self._loss is None:
            self._loss = LossLedger()
        return self._loss

    def bind(self, ledger: LossLedger) -> None:
        """Count drops in the recording's ledger from now on (and move there what
        was counted before)."""
        old, self._loss = self._loss, ledger
        if old is not None:
            ledger.absorb(old)

    def add_store(self, store: rrd.StoreInfo) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def write_chunk(self, store: rrd.StoreInfo, chunk: Chunk, batch: pa.RecordBatch,
                    enc: rrd.EncodedChunk) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def flush(self, timeout: Optional[float] = None) -> None:
        pass

    def close(self, timeout: Optional[float] = None) -> None:
        """Finish (footer, last sends) within `timeout` s; count what is left."""

    def abandon(self) -> None:
        """The close did not get to run in time: count what this sink still holds."""

    def for_child(self) -> Optional[Callable[[], "Sink"]]:
        """In a forked child: a factory for the sink the child writes to instead
        (called at the child's first chunk), or None (the child's rows are counted
        as dropped there)."""
        return None



class _StreamWriter(Sink):
    """A complete .rrd stream with footer, written through `_write(parts)`.

    The engine's `RrdEncoder` makes every byte but the chunk messages (encoded once by
    the recording for all its sinks, see `add_encoded`) and keeps the offsets and the
    manifest per recording (one stream may hold several) that `close` writes as the
    End message and stream footer. This class only adds the lock and the write hook.
    """

    def __init__(self, compression: bool = False, write_footer: bool = True) -> None:
        self._lock = threading.RLock()
        self.compression = compression
        self.write_footer = write_footer  # False: no End message nor stream footer (Rerun's opt-out)
        self._enc = rrd.RrdEncoder(compression=compression)
        self._closed = False

    @property
    def offset(self) -> int:
        """Bytes of the stream written so far."""
        return self._enc.offset

    def _write(self, parts: list) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _start(self) -> None:
        if not self._enc.started:
            self._write([self._enc.stream_header()])

    def add_store(self, store: rrd.StoreInfo) -> None:
        with self._lock:
            if self._closed or self._enc.has_store(store):
                return
            self._start()
            self._write([self._enc.store_info(store)])

    def write_chunk(self, store, chunk, batch, enc) -> None:
        with self._lock:
            if self._closed:
                return
            self.add_store(store)
            self._enc.add_encoded(store, chunk, batch, enc)
            self._write_encoded(enc)

    def _write_encoded(self, enc) -> None:
        """Write one encoded chunk message (already counted by the encoder)."""
        self._write(enc.parts)

    def close(self, timeout: Optional[float] = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._start()
            if self.write_footer:
                self._write([self._enc.end()])
            self._closed = True
            self._finish()

    def _finish(self) -> None:
        pass


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _save_error(errno: Optional[int], message: str) -> PixelrunSaveError:
    """A PixelrunSaveError whose str() is just `message` (errno kept as attribute)."""
    err = PixelrunSaveError(message)
    err.errno = errno
    return err


class FileSink(_StreamWriter):
    """Writes the stream to a file as it goes (a killed process leaves every complete
    message readable); the footer is written on close.

    The file is a pyarrow native file: writes are unbuffered system calls made with
    the GIL released, and chunk payloads are streamed from the chunk's own buffers
    (no intermediate copy of the pixels). A path that cannot be written raises
    `PixelrunSaveError` naming it. Prefer `open_file_sink`, which never lets two
    writers in this process truncate each other's file.
    """

    def __init__(self, path: str, compression: bool = False, write_footer: bool = True) -> None:
        super().__init__(compression, write_footer)
        self.path = os.fspath(path)
        self.place = f"file {self.path}"
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as exc:
            up = d
            while not os.path.exists(up):
                up = os.path.dirname(up)
            why = (f"{up!r} is not a folder" if not os.path.isdir(up)
                   else f"cannot create its folder {d!r} ({_reason(exc)})")
            raise _save_error(exc.errno, f"cannot write the recording to {self.path!r}: {why}") from None
        if os.path.isdir(self.path):
            raise _save_error(None, f"cannot write the recording to {self.path!r}: it is a folder")
        try:
            self._f = pa.OSFile(self.path, "wb")
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise _save_error(exc.errno, f"cannot write the recording to {self.path!r}: {why}") from None
        self._refs = 1
        self.owners: list[str] = []

    def _write(self, parts: list) -> None:
        for p in parts:
            self._f.write(p)

    def _write_encoded(self, enc) -> None:
        # straight from the chunk's buffers into the file: no joined copy of the pixels
        enc.write_to(self._f)
        if self._f.tell() != self.offset:  # the footer's offsets must be exact
            raise IOError(f"{self.path}: wrote {self._f.tell()} bytes, expected {self.offset}")

    def flush(self, timeout: Optional[float] = None) -> None:
        pass  # unbuffered: the kernel has every byte already

    def _finish(self) -> None:
        self._f.close()

    def abandon(self) -> None:
        self.loss.notice(f"pixelrun: {self.path} is left without its footer (the close timed out); "
                         "every complete message in it is readable", PixelrunWarning)

    def for_child(self) -> Optional[Callable[[], Sink]]:
        return _child_file_factory(self.path, self.compression)


# One open FileSink per path in this process: a second recording saving to a path
# that is still being written joins that file (an .rrd holds several recordings)
# instead of truncating it under the first writer.
_OPEN: dict[str, FileSink] = {}
_OPEN_LOCK = threading.Lock()


def _key(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


class _SharedFileSink(Sink):
    """One recording's handle on a FileSink that several recordings may share; the
    footer is written when the last handle closes."""

    def __init__(self, inner: FileSink, owner: str) -> None:
        self.inner = inner
        self.owner = owner
        self.place = inner.place
        self._closed = False

    @property
    def path(self) -> str:
        return self.inner.path

    def add_store(self, store) -> None:
        self.inner.add_store(store)

    def write_chunk(self, store, chunk, batch, enc) -> None:
        self.inner.write_chunk(store, chunk, batch, enc)

    def close(self, timeout: Optional[float] = None) -> None:
        if self._closed:
            return
        self._closed = True
        with _OPEN_LOCK:
            self.inner._refs -= 1
            if self.owner in self.inner.owners:
                self.inner.owners.remove(self.owner)
            last = self.inner._refs == 0
            if last and _OPEN.get(_key(self.inner.path)) is self.inner:
                del _OPEN[_key(self.inner.path)]
        if last:
            self.inner.close()

    def abandon(self) -> None:
        self.inner.bind(self.loss)
        self.inner.abandon()

    def for_child(self) -> Optional[Callable[[], Sink]]:
        return _child_file_factory(self.inner.path, self.inner.compression)


def open_file_sink(path: str, compression: bool = False, owner: str = "",
                   write_footer: bool = True) -> tuple[Sink, list[str]]:
    """A handle on the one open file for `path` in this process, and the other
    recordings (their `owner` labels) already writing it. Raises PixelrunSaveError
    when the path cannot be written. `write_footer` applies when this call opens
    the file (a file already open keeps its first writer's choice)."""
    key = _key(os.fspath(path))
    with _OPEN_LOCK:
        inner = _OPEN.get(key)
        if inner is None or inner._closed:
            inner = _OPEN[key] = FileSink(path, compression, write_footer)
        else:
            inner._refs += 1
        others = [o for o in inner.owners if o != owner]
        inner.owners.append(owner)
    return _SharedFileSink(inner, owner), others


def shared_file_sink(path: str, compression: bool = False, owner: str = "") -> Sink:
    """`open_file_sink` without the list of other writers (PIXELRUN_SAVE shares on
    purpose)."""
    return open_file_sink(path, compression, owner)[0]


def child_path(path: str, pid: Optional[int] = None) -> str:
    """Where a forked child writes what its parent writes to `path`:
    ``rec.rrd`` -> ``rec.pid<child pid>.rrd``."""
    root, ext = os.path.splitext(path)
    return f"{root}.pid{os.getpid() if pid is None else pid}{ext or '.rrd'}"


def _child_file_factory(path: str, compression: bool) -> Callable[[], Sink]:
    return lambda: open_file_sink(child_path(path), compression)[0]


class MemorySink(_StreamWriter):
    """Keeps the encoded stream in memory."""

    place = "memory"

    def __init__(self, compression: bool = False) -> None:
        super().__init__(compression)
        self._parts: list = []

    def _write(self, parts: list) -> None:
        self._parts.extend(parts)

    def snapshot(self) -> bytes:
        """The stream so far, completed with an End message and footer."""
        with self._lock:
            if self._closed:
                return b"".join(self._parts)
            self._start()
            # one join (pa.Buffer parts are bytes-like: no bytes() copy of each payload)
            return b"".join([*self._parts, self._enc.footer()])

    def for_child(self) -> Optional[Callable[[], Sink]]:
        # The child's copy of the memory is its own: it goes on writing there (with a
        # fresh lock: the parent's may have been held by a thread the child lacks).
        self._lock = threading.RLock()
        return lambda: self


class MemoryRecording:
    """What ``rr.memory_recording()`` returns: the recording, readable at any time.

    ``rrd_bytes()`` flushes the recording and returns the complete .rrd stream so far
    (valid on its own: it ends with the footer); the renderer and ``read_rrd`` accept
    this object directly.
    """

    def __init__(self, stream, sink: MemorySink) -> None:
        self._stream = stream
        self._sink = sink

    def rrd_bytes(self) -> bytes:
        if self._stream is not None:
            self._stream.flush()
        return self._sink.snapshot()

    def drain_as_bytes(self) -> bytes:
        """Rerun's name for the same thing."""
        return self.rrd_bytes()

    def num_msgs(self) -> int:
        return len(self._sink._parts)


# Rerun's entity for a recording's properties (RecordingInfo: start time, name).
PROPERTIES_ENTITY = "/__properties"


class BacklogSink(Sink):
    """Holds chunks while no sink is set (Rerun's buffered sink), bounded: past
    `max_bytes` the oldest temporal chunks are dropped and counted; what is still
    held when the recording closes without a sink is counted too."""

    place = "buffer (no sink set: call rr.save, rr.connect, rr.spawn or rr.memory_recording)"

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self.items: collections.deque = collections.deque()
        self.stores: list = []
        self.nbytes = 0
        self.dropped = 0

    def add_store(self, store) -> None:
        if store not in self.stores:
            self.stores.append(store)

    def write_chunk(self, store, chunk, batch, enc) -> None:
        self.items.append((store, chunk, batch, enc))
        self.nbytes += enc.size
        while self.nbytes > self.max_bytes and len(self.items) > 1:
            idx = next((i for i, it in enumerate(self.items) if not it[1].is_static), None)
            if idx is None:
                break
            old = self.items[idx]
            del self.items[idx]
            self.nbytes -= old[3].size
            self.dropped += 1
            self.loss.add(self.place, f"more than {self.max_bytes >> 20} MiB buffered; the oldest "
                          "chunks are dropped", chunks=1, rows=old[1].num_rows, nbytes=old[3].size)

    def replay_into(self, sink: Sink) -> None:
        for s in self.stores:
            sink.add_store(s)
        for store, chunk, batch, enc in self.items:
            sink.write_chunk(store, chunk, batch, enc)
        self.items.clear()
        self.nbytes = 0

    def close(self, timeout: Optional[float] = None) -> None:
        """The recording closes with no sink ever set: what is held goes nowhere.
        The recording's own properties (``/__properties``, sent by ``rr.init``) are not
        counted: they describe a recording, they are nothing it logged (Rerun drops them
        silently too); a recording that never logged or saved is no data loss."""
        for _, chunk, _, enc in self.items:
            if chunk.entity_path == PROPERTIES_ENTITY:
                continue
            self.loss.add(self.place, "the recording closed while no sink was set",
                          chunks=1, rows=chunk.num_rows, nbytes=enc.size)
        self.items.clear()
        self.nbytes = 0

    abandon = close


# ---------------------------------------------------------------------------- TCP

# What the pixelrun viewer says first on every connection (engine/viewer/server.py,
# when it greets): the sink streams only to a peer that says exactly this, so whatever
# else may listen on the port (Rerun's own gRPC viewer uses 9876 too) is named.
GREETING = b"PIXELRUN-VIEWER/1\n"


def _server_greets() -> bool:
    """Whether this install's viewer sends GREETING (then silence means: not ours)."""
    try:
        vs = importlib.import_module("pixelrun.engine.viewer.server")
    except Exception:  # no viewer module: nothing to expect
        return False
    return getattr(vs, "GREETING", None) == GREETING


def describe_peer_bytes(data: bytes) -> str:
    """What the first bytes a peer sent say about it (for a one-line message)."""
    if len(data) >= 9 and data[3] == 0x04 and data[5:9] == b"\0\0\0\0":
        return ("an HTTP/2 server (it sent a SETTINGS frame): a gRPC server such as Rerun's own "
                "viewer, which also uses port 9876")
    if data.startswith(b"HTTP/"):
        line = data.split(b"\r\n", 1)[0].decode("latin-1")[:60]
        return (f"an HTTP server (it answered {line!r}): probably Rerun's own viewer or gRPC "
                "server, which also uses port 9876")
    return f"it sent {data[:24]!r}, not the pixelrun viewer's greeting"


class _Item:
    """One queued unit: store info or chunk message parts."""

    __slots__ = ("parts", "size", "rows", "static", "attempts")

    def __init__(self, parts: list, rows: int, static: bool) -> None:
        self.parts = parts
        self.size = sum(len(p) for p in parts)
        self.rows = rows
        self.static = static
        self.attempts = 0


class TcpSink(Sink):
    """Streams the .rrd encoding to a pixelrun viewer over TCP (``rr.connect``).

    A sender thread owns the socket: `write_chunk` only queues (bounded by
    `max_queue_bytes`; beyond it the oldest temporal chunks are dropped and counted).
    When the connection fails the sender retries every `retry_secs`; a new
    connection starts with a fresh stream header, the store infos and the latest
    static chunks, so a viewer that comes back sees a consistent recording, and a
    chunk whose send failed is sent again there. Never blocks the caller beyond
    `flush`'s timeout.

    Peer check: after connecting, the sink sends the stream header and waits up to
    `handshake_timeout` for the peer's first bytes. Exactly `GREETING` is a pixelrun
    viewer; anything else (Rerun's gRPC server answers ``HTTP/1.1 400``, an HTTP/2
    server a SETTINGS frame) or a close is not, and is named in a warning; nothing is
    streamed there. Silence means "not ours" when `expect_greeting` (default: when
    this install's viewer greets); otherwise a silent peer is taken for a viewer
    after `handshake_timeout`. Bytes that arrive later also end the connection.
    """

    def __init__(self, addr: str = "127.0.0.1:9876", *, max_queue_bytes: int = 256 << 20,
                 retry_secs: float = 0.5, connect_timeout: float = 2.0,
                 handshake_timeout: Optional[float] = None,
                 expect_greeting: Optional[bool] = None) -> None:
        host, _, port = addr.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.addr = f"{self.host}:{self.port}"
        self.place = f"tcp {self.addr}"
        self.max_queue_bytes = max_queue_bytes
        self.retry_secs = retry_secs
        self.connect_timeout = connect_timeout
        self.expect_greeting = _server_greets() if expect_greeting is None else expect_greeting
        self.handshake_timeout = (handshake_timeout if handshake_timeout is not None
                                  else (5.0 if self.expect_greeting else 0.3))
        self._init_queue("pixelrun-tcp")

    def _init_queue(self, thread_name: str) -> None:
        """The queue, counters and sender thread (shared with GrpcSink); starts the thread."""
        self.dropped = 0
        self.dropped_rows = 0
        self.dropped_bytes = 0
        self.connected = False
        self.connections = 0
        self.peer_problem = ""  # why the last peer was refused as not a pixelrun viewer
        self._why = f"no viewer connected at {self.addr} yet"
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._queue_bytes = 0
        self._stores: list = []
        self._static: dict = {}  # (store, entity, components) -> latest static chunk parts
        self._closing = False
        self._deadline: Optional[float] = None
        self._sending = False
        self._sock: Optional[socket.socket] = None
        self._loss = LossLedger()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def bind(self, ledger: LossLedger) -> None:
        with self._cond:  # the sender thread counts under the same lock
            super().bind(ledger)

    # -- producer side

    def add_store(self, store) -> None:
        with self._cond:
            if store not in self._stores:
                self._stores.append(store)
                self._push(_Item([rrd.encode_store_info(store)], 0, static=True))

    def write_chunk(self, store, chunk, batch, enc) -> None:
        # the encoded payload is already a buffer of its own: queue it, don't copy it
        parts = enc.parts
        with self._cond:
            if chunk.is_static:
                key = (store.store_key, chunk.entity_path, tuple(sorted(chunk.components)))
                self._static[key] = parts
            self._push(_Item(parts, chunk.num_rows, static=chunk.is_static))

    def _drop(self, item: _Item, why: str) -> None:
        """Count one dropped chunk (under `_cond`)."""
        self.dropped += 1
        self.dropped_rows += item.rows
        self.dropped_bytes += item.size
        self.loss.add(self.place, why, chunks=1, rows=item.rows, nbytes=item.size)

    def _push(self, item: _Item) -> None:
        self._queue.append(item)
        self._queue_bytes += item.size
        while self._queue_bytes > self.max_queue_bytes and len(self._queue) > 1:
            idx = next((i for i, it in enumerate(self._queue) if not it.static), None)
            if idx is None:
                break
            old = self._queue[idx]
            del self._queue[idx]
            self._queue_bytes -= old.size
            self._drop(old, f"{self._why}; more than {format_bytes(self.max_queue_bytes)} queued, "
                       "the oldest chunks are dropped")
        self._cond.notify_all()

    def flush(self, timeout: Optional[float] = 2.0) -> None:
        """Wait until queued data is sent, while connected, at most `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._sending) and self.connected:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(0.05 if left is None else min(left, 0.05))

    def close(self, timeout: Optional[float] = 2.0) -> None:
        """Send what is queued (connecting once more if needed) within `timeout` s;
        count whatever is still queued then."""
        deadline = time.monotonic() + (2.0 if timeout is None else timeout)
        with self._cond:
            self._closing = True
            self._deadline = deadline
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():  # stuck in a send to a peer that stopped reading
            with self._cond:
                sock = self._sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._thread.join(1.0)
        self.abandon(f"still queued at close, not sent within {2.0 if timeout is None else timeout:.1f} s "
                     f"({self._why})")

    def abandon(self, why: str = "") -> None:
        with self._cond:
            for it in self._queue:
                if it.rows or not it.static:  # store infos are not data
                    self._drop(it, why or f"still queued when the close timed out ({self._why})")
            self._queue.clear()
            self._queue_bytes = 0
            self._cond.notify_all()

    def for_child(self) -> Optional[Callable[[], Sink]]:
        kw = dict(max_queue_bytes=self.max_queue_bytes, retry_secs=self.retry_secs,
                  connect_timeout=self.connect_timeout, handshake_timeout=self.handshake_timeout,
                  expect_greeting=self.expect_greeting)
        return lambda: TcpSink(self.addr, **kw)

    # -- sender thread

    def _left(self) -> Optional[float]:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _handshake(self, sock: socket.socket) -> str:
        """'' when the peer is a pixelrun viewer, else what it is."""
        sock.sendall(rrd.stream_header(False))
        got = b""
        deadline = time.monotonic() + self.handshake_timeout
        while len(got) < len(GREETING):
            left = deadline - time.monotonic()
            if left <= 0:
                if got:
                    return describe_peer_bytes(got)
                return (f"it sent nothing within {self.handshake_timeout:g} s: a plain TCP server, or "
                        "a stuck viewer" if self.expect_greeting else "")
            sock.settimeout(left)
            try:
                data = sock.recv(len(GREETING) - len(got))
            except socket.timeout:
                continue
            if not data:
                return "it closed the connection without the pixelrun viewer's greeting"
            got += data
            if not GREETING.startswith(got):
                try:  # the rest of its answer makes a better message
                    sock.settimeout(0.2)
                    got += sock.recv(256)
                except OSError:
                    pass
                return describe_peer_bytes(got)
        return ""

    def _dial(self, what: str) -> Optional[socket.socket]:
        """A connection to the address within connect_timeout (and the close deadline);
        None when it failed, with `_why` naming `what` was expected there."""
        left = self._left()
        timeout = self.connect_timeout if left is None else max(0.05, min(self.connect_timeout, left))
        try:
            return _connect(self.host, self.port, timeout)
        except OSError as exc:
            with self._cond:
                self._why = f"no {what} listening at {self.addr} ({_reason(exc)})"
            return None

    def _open(self) -> Optional[socket.socket]:
        """Connect, check the peer, send the preamble; None when that failed."""
        sock = self._dial("viewer")
        if sock is None:
            return None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            problem = self._handshake(sock)
            if problem:
                sock.close()
                with self._cond:
                    self._why = f"{self.addr} is not a pixelrun viewer"
                    if problem != self.peer_problem:
                        self.loss.notice(
                            f"pixelrun: {self.addr} is not a pixelrun viewer: {problem}. Nothing is "
                            f"sent there. Start `pixelrun view --port N` and set PIXELRUN_PORT=N (or "
                            f"rr.connect('host:N'))", PixelrunWarning)
                        self.peer_problem = problem  # after the notice: readers may poll it
                return None
            sock.settimeout(None)
            with self._cond:
                pre = [p for parts in self._preamble() for p in parts]
            for p in pre:
                sock.sendall(p)
        except OSError as exc:
            sock.close()
            with self._cond:
                self._why = f"the connection to {self.addr} failed ({_reason(exc)})"
            return None
        with self._cond:
            self.connected = True
            self.connections += 1
            self.peer_problem = ""
            self._sock = sock
            self._why = f"the viewer at {self.addr} is not keeping up"
            self._cond.notify_all()
        return sock

    def _preamble(self) -> list:
        """(Under `_cond`.) What a fresh connection starts with, one message's parts
        each: the store infos, then the latest static chunks; queued store/static
        items are covered by it and leave the queue."""
        pre = [[rrd.encode_store_info(s)] for s in self._stores]
        pre += list(self._static.values())
        self._queue = collections.deque(it for it in self._queue if not it.static)
        self._queue_bytes = sum(it.size for it in self._queue)
        return pre

    def _peer_spoke(self, sock: socket.socket) -> str:
        """'' while the peer is silent and connected; else why the connection ends."""
        try:
            if not select.select([sock], [], [], 0)[0]:
                return ""
            data = sock.recv(256, socket.MSG_PEEK)
        except OSError as exc:
            return f"connection to {self.addr} lost ({_reason(exc)})"
        if not data:
            return f"the viewer at {self.addr} closed the connection"
        if GREETING.startswith(data[:len(GREETING)]):  # a greeting later than the handshake wait
            if len(data) >= len(GREETING):
                sock.recv(len(GREETING))
            return ""
        with self._cond:
            problem = describe_peer_bytes(data)
            self.loss.notice(f"pixelrun: {self.addr} is not a pixelrun viewer: {problem}; "
                             "stopped streaming there", PixelrunWarning)
            self.peer_problem = problem
        return f"{self.addr} is not a pixelrun viewer"

    def _disconnect(self, sock: socket.socket, why: str) -> None:
        try:
            sock.close()
        except OSError:
            pass
        with self._cond:
            self.connected = False
            self._sock = None
            self._why = why
            self._cond.notify_all()

    def _done(self) -> bool:
        """Closing, and nothing (more) can be sent: queue empty or time is up."""
        left = self._left()
        return self._closing and (not self._queue or (left is not None and left <= 0))

    def _run(self) -> None:
        sock: Optional[socket.socket] = None
        tried_since_close = False
        try:
            while True:
                if sock is None:
                    with self._cond:
                        if self._done() or (self._closing and tried_since_close):
                            return
                        tried_since_close = self._closing
                    sock = self._open()
                    if sock is None:
                        with self._cond:
                            if not self._closing:
                                self._cond.wait(self.retry_secs if not self.peer_problem
                                                else max(self.retry_secs, 5.0))
                        continue
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait(0.2)
                        if not self._queue:
                            break
                    if self._done():
                        return
                    item = self._queue.popleft() if self._queue else None
                    if item is not None:
                        self._queue_bytes -= item.size
                        self._sending = True
                gone = self._peer_spoke(sock)
                if gone or item is None:
                    if item is not None:
                        self._requeue(item)
                    if gone:
                        self._disconnect(sock, gone)
                        sock = None
                    continue
                try:
                    for p in item.parts:
                        sock.sendall(p)
                except OSError as exc:
                    self._requeue(item)
                    self._disconnect(sock, f"connection to {self.addr} lost ({_reason(exc)})")
                    sock = None
                finally:
                    with self._cond:
                        self._sending = False
                        self._cond.notify_all()
        finally:
            if sock is not None:
                self._disconnect(sock, self._why)

    def _requeue(self, item: _Item) -> None:
        """A chunk that did not get through goes first on the next connection (a
        static one is in that connection's preamble anyway); one that broke three
        connections is dropped and counted."""
        with self._cond:
            self._sending = False
            if item.static:
                return
            item.attempts += 1
            if item.attempts >= 3:
                self._drop(item, f"the connection to {self.addr} broke {item.attempts} times while "
                           "sending this chunk")
                return
            self._queue.appendleft(item)
            self._queue_bytes += item.size
            self._cond.notify_all()


# --------------------------------------------------------------------------- gRPC

# The client's half of an HTTP/2 connection start: the preface and an empty SETTINGS
# frame. An HTTP/2 server answers with its own SETTINGS frame first.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
# gRPC statuses that mean "the connection went away": reconnect and go on. Any other
# status ends the stream for a reason a retry will not fix soon (wrong service, a
# server refusing our data) and is named in a warning.
_CLOSE_TRIES = 3  # connection attempts a closing GrpcSink still makes (retry_secs apart)
_TRANSIENT = ("UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED")


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection; a numeric address skips the resolver (getaddrinfo can hang
    in a child forked while another thread of the parent held its lock)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def default_grpc_url() -> str:
    """Where ``connect_grpc()`` and ``spawn()`` stream by default: Rerun's
    rerun+http://127.0.0.1:9876/proxy, with PIXELRUN_PORT's port when set."""
    return f"rerun+http://127.0.0.1:{rrd.default_port()}/proxy"


def describe_h2_answer(data: bytes) -> str:
    """'' when `data` starts like an HTTP/2 server's answer (a SETTINGS frame), else
    what the peer is instead."""
    if len(data) >= 9 and data[3] == 0x04 and data[4] in (0, 1) and data[5:9] == b"\0\0\0\0":
        return ""
    if data.startswith(GREETING[: len(data)]) and data:
        return "an older pixelrun viewer (raw TCP only): start a current `pixelrun view`"
    if data.startswith(b"HTTP/"):
        line = data.split(b"\r\n", 1)[0].decode("latin-1")[:60]
        return f"an HTTP/1 server (it answered {line!r}), not a gRPC server"
    return f"it answered {data[:24]!r}, not HTTP/2"


class GrpcSink(TcpSink):
    """Streams the recording to a Rerun-compatible gRPC server: Rerun's viewer or
    ``rerun --serve-grpc``, or ``pixelrun view`` (Rerun 0.41's MessageProxyService
    ``WriteMessages``; see engine/grpc/wire.py). What ``rr.connect_grpc``,
    ``rr.spawn`` and ``rr.GrpcSink`` use.

    The queue is TcpSink's: `write_chunk` queues (bounded by `max_queue_bytes`; a
    connected server that is behind gets up to `backpressure_secs` per chunk to make
    room, then the oldest temporal chunks are dropped and counted), a sender thread owns
    the connection, retries every `retry_secs`, and starts every new stream with the
    store infos and the latest static chunks. A chunk whose send had not completed
    when a connection broke is sent again on the next one.

    Peer check, before any data: a plain TCP connection sends the HTTP/2 preface and
    waits up to `handshake_timeout` s for the server's SETTINGS frame. Anything else
    (an HTTP/1 server, silence, a close) is named in a PixelrunWarning and gets
    nothing; data stays queued (counted when dropped) while the sink retries every
    5 s. A gRPC server without Rerun's message proxy answers UNIMPLEMENTED: named
    too, and what was sent on that stream is counted as dropped.
    """

    def __init__(self, url: Optional[str] = None, *, max_queue_bytes: int = 256 << 20,
                 retry_secs: float = 0.5, connect_timeout: float = 2.0,
                 handshake_timeout: float = 5.0, backpressure_secs: float = 2.0) -> None:
        self.url = str(url) if url is not None else default_grpc_url()
        self.backpressure_secs = backpressure_secs
        self.addr, self.secure = wire.parse_url(self.url)
        host, _, port = self.addr.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.place = f"grpc {self.url}"
        self.max_queue_bytes = max_queue_bytes
        self.retry_secs = retry_secs
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.expect_greeting = False
        self._token: Optional[object] = None  # the live call's; its request generator checks it
        self._inflight: Optional[_Item] = None  # yielded to gRPC, send not yet completed
        self._last_sent: Optional[_Item] = None  # the last one whose send completed on this call
        self._call_sent = [0, 0, 0]  # chunks, rows, bytes sent on the current call
        self._init_queue("pixelrun-grpc")

    def for_child(self) -> Optional[Callable[[], Sink]]:
        """grpcio is not fork-safe (a forked child's first channel can hang for good),
        so a child streams pixelrun's raw .rrd over TCP to the same port instead:
        ``pixelrun view`` takes both there; any other server is named in a warning and
        the child's rows are counted as dropped."""
        if self.secure:
            return None  # no TLS for the raw stream: the child's rows are counted as dropped
        kw = dict(max_queue_bytes=self.max_queue_bytes, retry_secs=self.retry_secs,
                  connect_timeout=self.connect_timeout, handshake_timeout=self.handshake_timeout,
                  expect_greeting=True)
        return lambda: TcpSink(f"{self.host}:{self.port}", **kw)

    def write_chunk(self, store, chunk, batch, enc) -> None:
        """Queue the chunk; while a server is connected but behind and the queue is
        full, wait up to `backpressure_secs` for room first (the writer thread waits,
        and through the batcher's in-flight bound so does ``log``), like Rerun's SDK
        does, rather than drop what a live server is still taking."""
        deadline = time.monotonic() + self.backpressure_secs
        with self._cond:
            while (self.connected and not self._closing and self._queue
                   and self._queue_bytes + enc.size > self.max_queue_bytes):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.05))
        super().write_chunk(store, chunk, batch, enc)

    # -- sender thread

    def _probe(self) -> str:
        """'' when an HTTP/2 server answers at the address; else why not (and `_why`)."""
        sock = self._dial("gRPC server")
        if sock is None:
            return "unreachable"
        got = b""
        try:
            if self.secure:
                return ""  # TLS first: the handshake is gRPC's; an answer is checked by the call
            sock.sendall(_H2_PREFACE)
            deadline = time.monotonic() + self.handshake_timeout
            while len(got) < 9:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data = sock.recv(64)
                except socket.timeout:
                    break
                if not data:
                    break
                got += data
        except OSError as exc:
            with self._cond:
                self._why = f"the connection to {self.addr} failed ({_reason(exc)})"
            return "unreachable"
        finally:
            sock.close()
        if got:
            problem = describe_h2_answer(got)
        else:
            problem = f"it sent nothing within {self.handshake_timeout:g} s of the HTTP/2 preface"
        if problem:
            self._not_rerun(problem)
        return problem

    def _not_rerun(self, problem: str) -> None:
        with self._cond:
            self._why = f"{self.addr} is not a Rerun gRPC server"
            if problem != self.peer_problem:
                self.loss.notice(
                    f"pixelrun: {self.url}: {self.addr} is not a Rerun-compatible gRPC server: {problem}. "
                    "Nothing is sent there; data stays queued (bounded, drops counted) while pixelrun "
                    "retries. Start `pixelrun view` or `rerun` there, or connect elsewhere", PixelrunWarning)
                self.peer_problem = problem

    def _requests(self, token: object):
        """The request stream of one call: the preamble, then the queue until closing.
        gRPC resumes it only after the previous message was sent, so the item held
        in `_inflight` across a yield is the one whose fate is unknown if the call dies."""
        with self._cond:
            if self._token is not token:
                return
            pre = [_Item(parts, 0, static=True) for parts in self._preamble()]
        for item in pre:
            yield wire.request_from_frame(item.parts)
        while True:
            with self._cond:
                while self._token is token and not self._queue and not self._closing:
                    self._cond.wait(0.2)
                if self._token is not token or self._done() or not self._queue:
                    return
                item = self._queue.popleft()
                self._queue_bytes -= item.size
                self._sending = True
                self._inflight = item
            yield wire.request_from_frame(item.parts)
            with self._cond:
                if self._inflight is item:
                    self._inflight = None
                    self._last_sent = item
                    self._call_sent[0] += 1
                    self._call_sent[1] += item.rows
                    self._call_sent[2] += item.size
                self._sending = False
                self._cond.notify_all()

    def _stream_once(self) -> None:
        """One call: stream until it ends (close, or the connection breaks)."""
        opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 1 << 20),
                ("grpc.enable_retries", 0), ("grpc.initial_reconnect_backoff_ms", 100)]
        channel = (grpc.secure_channel(self.addr, grpc.ssl_channel_credentials(), options=opts) if self.secure
                   else grpc.insecure_channel(self.addr, options=opts))
        token = object()
        try:
            method = channel.stream_unary(wire.WRITE_MESSAGES)  # bytes in, bytes out: framed by wire.py
            with self._cond:
                self._token = token
                self._inflight = self._last_sent = None
                self._call_sent = [0, 0, 0]
            call = method.future(self._requests(token))
            call.add_done_callback(lambda _f: self._wake())
            with self._cond:
                self.connected = True
                self.connections += 1
                self.peer_problem = ""
                self._why = f"the server at {self.addr} is not keeping up"
                self._cond.notify_all()
                while not call.done():
                    left = self._left()
                    if self._closing and left is not None and left <= 0:
                        break
                    self._cond.wait(0.1 if left is None else max(0.01, min(0.1, left)))
            if not call.done():
                call.cancel()  # the close's time is up
            self._ended(call, token)
        finally:
            channel.close()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _ended(self, call, token: object) -> None:
        """Account for a finished call: requeue what was in flight, name a refusal."""
        code = call.code() if call.done() and not call.cancelled() else None
        name = getattr(code, "name", "CANCELLED")
        details = (call.details() if code is not None else "") or ""
        with self._cond:
            self._token = None
            self.connected = False
            self._sending = False
            item, self._inflight = self._inflight, None
            last, self._last_sent = self._last_sent, None
            sent, self._call_sent = self._call_sent, [0, 0, 0]
            self._cond.notify_all()
        if name == "OK":  # the server took the whole stream (`item`, if any, was sent: the stream ended after it)
            with self._cond:
                self._why = f"the server at {self.addr} ended the stream"
            return
        too_big = item or last  # the server reads a message whole before refusing it: it may count as sent
        if name == "RESOURCE_EXHAUSTED" and too_big is not None and "larger than" in details:
            with self._cond:  # this message, not the connection: it would be refused again
                self._drop(too_big, f"the server at {self.addr} refuses a message of this size ({details})")
            return
        if item is not None:
            self._requeue(item)
        if name in _TRANSIENT:
            with self._cond:
                self._why = f"the connection to {self.addr} was lost ({name}: {details or 'no details'})"
            return
        problem = (f"it ended the stream with {name}" + (f" ({details})" if details else "")
                   + (": a gRPC server without Rerun's message proxy" if name == "UNIMPLEMENTED" else ""))
        self._not_rerun(problem)
        with self._cond:
            if sent[0]:
                self.dropped += sent[0]
                self.dropped_rows += sent[1]
                self.dropped_bytes += sent[2]
                self.loss.add(self.place, f"{self.addr} refused the stream ({name}); what was sent on it "
                              "is lost", chunks=sent[0], rows=sent[1], nbytes=sent[2])

    def _run(self) -> None:
        tries_since_close = 0
        while True:
            with self._cond:
                # closing: a few more tries (a transient failure, e.g. a channel made
                # just after os.fork(), is retried), never a wait for an absent server
                if self._done() or tries_since_close >= _CLOSE_TRIES:
                    return
                tries_since_close += self._closing
            problem = self._probe()
            if not problem:
                self._stream_once()
                problem = self.peer_problem
            with self._cond:
                if self._closing:
                    if self._done() or (problem and problem != "unreachable"):
                        return  # all sent, time is up, or not a Rerun server (a retry cannot help)
                    left = self._left()
                    self._cond.wait(min(self.retry_secs, max(0.0, left if left is not None else 0.0)))
                    continue
                if not problem and self._queue:
                    continue
                self._cond.wait(self.retry_secs if not problem or problem == "unreachable"
                                else max(self.retry_secs, 5.0))


# ------------------------------------------------------- Rerun's sink descriptors


class FileSinkSpec:
    """``rr.FileSink(path, *, write_footer=True)``: where ``set_sinks`` writes a file.

    A description, as in Rerun: the file is opened by ``set_sinks`` (a path that
    cannot be written raises PixelrunSaveError there). ``write_footer=False`` leaves
    out the End message and stream footer (Rerun's opt-out, for streams that are
    appended to); every message before stays readable.
    """

    def __init__(self, path: "str | os.PathLike", *, write_footer: bool = True) -> None:
        self.path = os.fspath(path)
        self.write_footer = bool(write_footer)

    def __repr__(self) -> str:
        return f"FileSink({self.path!r}, write_footer={self.write_footer})"


class GrpcSinkSpec:
    """``rr.GrpcSink(url=None)``: a Rerun-compatible gRPC server ``set_sinks`` streams
    to (default ``rerun+http://127.0.0.1:9876/proxy``, port: PIXELRUN_PORT when set).
    A malformed URL raises ValueError here."""

    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url or default_grpc_url()
        wire.parse_url(self.url)

    def __repr__(self) -> str:
        return f"GrpcSink({self.url!r})"


# ------------------------------------------------------------------------- fork


def _after_fork_in_child() -> None:
    """A forked child shares no open file with its parent (recording.py calls this)."""
    global _OPEN_LOCK
    _OPEN.clear()
    _OPEN_LOCK = threading.Lock()

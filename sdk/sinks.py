"""Where encoded recordings go: a file, memory, a gRPC server, or a backlog.

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
writes to its parent's file or socket: `for_child` says what it writes instead (a
file of its own; for a gRPC stream, a relay process, see `_RelaySink`).

One protocol for live streams: gRPC (Rerun 0.41's). pixelrun's former raw
.rrd-over-TCP stream is retired; ``rr.connect_tcp`` is a deprecated alias of
``connect_grpc``.
"""

from __future__ import annotations

import collections
import fcntl
import ipaddress
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

import grpc
import pyarrow as pa

from pixelrun import _grpc_fork
from pixelrun.engine import rrd
from pixelrun.engine.chunk import Chunk
from pixelrun.engine.grpc import wire
from pixelrun.errors import DataLossWarning, PixelrunSaveError, PixelrunWarning
from pixelrun.loss import LossLedger, format_bytes

__all__ = [
    "Sink", "FileSink", "MemorySink", "MemoryRecording", "GrpcSink", "BacklogSink", "default_grpc_url",
    "FileSinkSpec", "GrpcSinkSpec", "open_file_sink", "shared_file_sink", "child_path", "describe_h2_answer",
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
        """Bytes of the stream encoded so far (a file sink may still be writing the last ones)."""
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

    def write_chunk(self, store, chunk, batch, enc, ledger: Optional[LossLedger] = None) -> None:
        with self._lock:
            if self._closed:
                return
            self.add_store(store)
            self._enc.add_encoded(store, chunk, batch, enc)
            self._write_encoded(enc, chunk.num_rows, ledger)

    def _write_encoded(self, enc, rows: int, ledger: Optional[LossLedger]) -> None:
        """Write one encoded chunk message (already counted by the encoder); `rows`
        and `ledger` say what a later failure of this write loses, and where it is
        counted (None: this sink's own ledger)."""
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
    (no intermediate copy of the pixels). Messages of 1 MiB or more are written by a
    thread of the file's own, so the recording's thread builds and encodes the next
    chunk while the kernel copies this one (raw 1080p frames: about a sixth more
    frames/s on two cores); smaller ones, when nothing is queued, are written at once
    (there a hand-off costs more than it saves). At most `MAX_QUEUED_BYTES` wait for
    the writer; more waits the recording's thread, which is back-pressure on ``log``.

    The first failed write stops the file there (its offsets would be wrong from then
    on): that chunk and every later one are counted as lost, naming the error. A path
    that cannot be opened raises `PixelrunSaveError` naming it. Prefer
    `open_file_sink`, which never lets two writers in this process truncate each
    other's file.
    """

    MAX_QUEUED_BYTES = 64 << 20
    INLINE_BYTES = 1 << 20  # smaller messages are written on the caller's thread when nothing waits

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
        # the writer thread's queue: (EncodedChunk or list of parts, rows, bytes,
        # stream offset after it, ledger); an item leaves it once written or counted
        self._wcond = threading.Condition()
        self._wq: collections.deque = collections.deque()
        self._wbytes = 0
        self._wthread: Optional[threading.Thread] = None
        self._wstop = False
        self._failed = ""  # why writing stopped: every later chunk is counted as lost with it
        self._close_deadline: Optional[float] = None

    # -- producer side (under self._lock)

    def _write(self, parts: list) -> None:
        # stream header, store infos, End + footer: in order with the chunks
        self._queue_write(parts, 0, sum(len(p) for p in parts), None)

    def _write_encoded(self, enc, rows: int, ledger: Optional[LossLedger]) -> None:
        self._queue_write(enc, rows, enc.size, ledger)

    def _queue_write(self, obj, rows: int, nbytes: int, ledger: Optional[LossLedger]) -> None:
        item = (obj, rows, nbytes, self.offset, ledger)
        if self._failed:  # counted with the first failure's reason: one line in the summary
            self._count_lost(item, self._failed)
            return
        # Written here: a small message (LZ4-compressed frame, header) with nothing queued
        # before it, where a hand-off would cost more than the write (the writer must win
        # the GIL back to go on); or anything once there is no writer thread (interpreter
        # exit, or it died), after what it had queued, in order.
        if (nbytes < self.INLINE_BYTES and not self._wq) or not self._writer_alive():
            with self._wcond:
                pending = list(self._wq)
                self._wq.clear()
                self._wbytes = 0
            for it in [*pending, item]:
                self._write_item(it)
            return
        with self._wcond:
            while (self._wq and self._wbytes + nbytes > self.MAX_QUEUED_BYTES
                   and self._wthread is not None and self._wthread.is_alive()):
                self._wcond.wait(0.05)  # back-pressure: the disk is behind
            self._wq.append(item)
            self._wbytes += nbytes
            self._wcond.notify_all()

    def _writer_alive(self) -> bool:
        if self._wthread is None and not self._wstop:
            t = threading.Thread(target=self._writer, name=f"pixelrun-file {os.path.basename(self.path)}",
                                 daemon=True)
            try:
                t.start()
            except RuntimeError:  # interpreter shutting down
                return False
            self._wthread = t
        return self._wthread is not None and self._wthread.is_alive()

    # -- writer thread

    def _write_item(self, item) -> None:
        obj, rows, nbytes, end, ledger = item
        if self._failed:
            self._count_lost(item, self._failed)
            return
        try:
            if isinstance(obj, list):
                for p in obj:
                    self._f.write(p)
            else:
                obj.write_to(self._f)  # straight from the chunk's buffers: no joined copy
            if self._f.tell() != end:  # the footer's offsets must be exact
                raise IOError(f"{self.path}: wrote {self._f.tell()} bytes, expected {end}")
        except Exception as exc:
            self._failed = f"writing failed: {type(exc).__name__}: {exc}"
            self._count_lost(item, self._failed)

    def _count_lost(self, item, why: str) -> None:
        obj, rows, nbytes, _, ledger = item
        if not isinstance(obj, list):  # stream header, store infos, End: not data
            (ledger or self.loss).add(self.place, why, chunks=1, rows=rows, nbytes=nbytes)

    def _writer(self) -> None:
        while True:
            with self._wcond:
                while not self._wq and not self._wstop:
                    self._wcond.wait(1.0)
                if not self._wq:
                    return
                item = self._wq[0]  # stays queued (and counted by abandon) until written
            self._write_item(item)
            with self._wcond:
                if self._wq and self._wq[0] is item:
                    self._wq.popleft()
                    self._wbytes -= item[2]
                self._wcond.notify_all()

    def _drain(self, deadline: Optional[float]) -> bool:
        """Wait until the writer has written everything queued (or `deadline`)."""
        with self._wcond:
            while self._wq and self._wthread is not None and self._wthread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._wcond.wait(0.05 if left is None else min(left, 0.05))
            return not self._wq

    def flush(self, timeout: Optional[float] = None) -> None:
        """Wait until every queued byte is in the kernel (at most `timeout` s)."""
        self._drain(None if timeout is None else time.monotonic() + timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        self._close_deadline = None if timeout is None else time.monotonic() + timeout
        super().close(timeout)

    def _finish(self) -> None:
        if not self._drain(self._close_deadline):
            self.abandon()  # the writer is stuck in a write: count what waits, leave the file open
            return
        with self._wcond:
            self._wstop = True
            self._wcond.notify_all()
        if self._wthread is not None:
            self._wthread.join(1.0)  # it has nothing left to write
        self._f.close()

    def abandon(self) -> None:
        with self._wcond:
            if not self._failed:
                self._failed = "not written within the close timeout (a write did not return)"
            for k, item in enumerate(list(self._wq)):
                # the first one is in a write that has not returned: counted (it may
                # still land, but the file gets no footer to index it), left to the thread
                self._count_lost(item, self._failed)
                if k:
                    self._wq.remove(item)
                    self._wbytes -= item[2]
            self._wstop = True
            self._wcond.notify_all()
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
        # a failed write is counted in this recording's ledger (several may share the file)
        self.inner.write_chunk(store, chunk, batch, enc, self.loss)

    def flush(self, timeout: Optional[float] = None) -> None:
        self.inner.flush(timeout)

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
            self.inner.bind(self.loss)  # what the close drops or says is this recording's
            self.inner.close(timeout)

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


# ------------------------------------------------------------ streaming queue

# Item kinds, also the kinds of the frames a forked child writes to its relay (`RELAY_FRAME`).
FRAME_STORE, FRAME_STATIC, FRAME_TEMPORAL, FRAME_CLOSE = 1, 2, 3, 4


class _Item:
    """One queued .rrd message (its parts): a store info, a static or a temporal chunk."""

    __slots__ = ("parts", "size", "rows", "kind", "key", "attempts")

    def __init__(self, parts: list, rows: int, kind: int, key: str = "") -> None:
        self.parts = parts
        self.size = sum(len(p) for p in parts)
        self.rows = rows
        self.kind = kind
        self.key = key  # stores and static chunks: what a later one of the same key replaces
        self.attempts = 0

    @property
    def static(self) -> bool:
        """Kept for every new connection (store infos and the latest static chunks)."""
        return self.kind != FRAME_TEMPORAL


def _store_key(store: rrd.StoreInfo) -> str:
    return json.dumps(store.store_key)


def _static_key(store: rrd.StoreInfo, chunk: Chunk) -> str:
    # a later static chunk of the same entity and components replaces this one (Rerun's rule)
    return json.dumps([*store.store_key, chunk.entity_path, *sorted(chunk.components)])


class _QueuedSink(Sink):
    """The bounded queue of the streaming sinks (GrpcSink, and a forked child's
    `_RelaySink`); a subclass's `_run` is the sender thread that owns the connection.

    `write_chunk` only queues (the chunk's own buffers, no copy), bounded by
    `max_queue_bytes`: while a live peer is behind, the writer waits up to
    `backpressure_secs` for room (through the batcher's in-flight bound so does ``log``,
    as with Rerun's SDK), then the oldest temporal chunks are dropped and counted. Store
    infos and the latest static chunk per (recording, entity, components) are kept and
    start every new connection (`_preamble`), so a peer that comes back sees a
    consistent recording; a chunk whose send broke is sent again on the next one.
    `flush` and `close` are bounded; what is still queued at close is counted.
    """

    def _init_queue(self, thread_name: str, why: str) -> None:
        """The queue, counters and sender thread (`why`: what drops say until the
        first attempt); starts the thread."""
        self.dropped = 0
        self.dropped_rows = 0
        self.dropped_bytes = 0
        self.connected = False
        self.connections = 0
        self.peer_problem = ""  # why the last peer was refused (not a Rerun gRPC server)
        self._why = why
        self._gone = ""  # set when nothing can ever be sent again: every later chunk is dropped with it
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._queue_bytes = 0
        self._stores: dict[str, _Item] = {}
        self._static: dict[str, _Item] = {}
        self._closing = False
        self._deadline: Optional[float] = None
        self._sending = False
        self._loss = LossLedger()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def bind(self, ledger: LossLedger) -> None:
        with self._cond:  # the sender thread counts under the same lock
            super().bind(ledger)

    # -- producer side

    def add_store(self, store) -> None:
        self.queue_store(_store_key(store), rrd.encode_store_info(store))

    def queue_store(self, key: str, message: bytes) -> None:
        """Queue an encoded SetStoreInfo message (once per `key`)."""
        with self._cond:
            if key not in self._stores:
                item = self._stores[key] = _Item([message], 0, FRAME_STORE, key)
                self._push(item)

    def write_chunk(self, store, chunk, batch, enc) -> None:
        # the encoded payload is already a buffer of its own: queue it, don't copy it
        self.queue_chunk(enc.parts, chunk.num_rows, _static_key(store, chunk) if chunk.is_static else "")

    def queue_chunk(self, parts: list, rows: int, static_key: str = "") -> None:
        """Queue one encoded chunk message (a static one when `static_key` is set),
        with back-pressure while a connected peer is behind (see the class)."""
        item = _Item(parts, rows, FRAME_STATIC if static_key else FRAME_TEMPORAL, static_key)
        deadline = time.monotonic() + self.backpressure_secs
        with self._cond:
            while (self.connected and not self._closing and self._queue
                   and self._queue_bytes + item.size > self.max_queue_bytes):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.05))
            if item.static:
                self._static[static_key] = item
            self._push(item)

    def _drop(self, item: _Item, why: str) -> None:
        """Count one dropped chunk (under `_cond`)."""
        self.dropped += 1
        self.dropped_rows += item.rows
        self.dropped_bytes += item.size
        self.loss.add(self.place, why, chunks=1, rows=item.rows, nbytes=item.size)

    def _push(self, item: _Item) -> None:
        if self._gone:
            if item.kind != FRAME_STORE:  # store infos are not data
                self._drop(item, self._gone)
            return
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

    def _give_up(self, why: str) -> None:
        """(Under `_cond`.) Nothing can be sent any more: count what is queued and,
        from now on, every chunk at once (never a queue that only grows)."""
        self._gone = why
        self.connected = False
        for it in self._queue:
            if it.kind != FRAME_STORE:
                self._drop(it, why)
        self._queue.clear()
        self._queue_bytes = 0
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
        timeout = 2.0 if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._deadline = deadline
            self._cond.notify_all()
        # the sender checks the deadline at least every 0.1 s; the extra second is slack
        # for a loaded machine, never a wait on the peer
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        self.abandon(f"still queued at close, not sent within {timeout:.1f} s ({self._why})")

    def abandon(self, why: str = "") -> None:
        with self._cond:
            for it in self._queue:
                if it.kind != FRAME_STORE:  # store infos are not data
                    self._drop(it, why or f"still queued when the close timed out ({self._why})")
            self._queue.clear()
            self._queue_bytes = 0
            self._cond.notify_all()

    # -- sender thread

    def _left(self) -> Optional[float]:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _done(self) -> bool:
        """Closing, and nothing (more) can be sent: queue empty or time is up."""
        left = self._left()
        return self._closing and (not self._queue or (left is not None and left <= 0))

    def _preamble(self) -> list:
        """(Under `_cond`.) What a fresh connection starts with: the store infos, then
        the latest static chunks; queued store/static items are covered by it and
        leave the queue."""
        pre = [*self._stores.values(), *self._static.values()]
        self._queue = collections.deque(it for it in self._queue if not it.static)
        self._queue_bytes = sum(it.size for it in self._queue)
        return pre

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
# What pixelrun viewers before gRPC said first on every connection: recognised only to
# name such a viewer in the warning (pixelrun no longer speaks that raw stream).
_OLD_VIEWER_GREETING = b"PIXELRUN-VIEWER/1\n"
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
    if data.startswith(_OLD_VIEWER_GREETING[: len(data)]) and data:
        return "an older pixelrun viewer (raw TCP only): start a current `pixelrun view`"
    if data.startswith(b"HTTP/"):
        line = data.split(b"\r\n", 1)[0].decode("latin-1")[:60]
        return f"an HTTP/1 server (it answered {line!r}), not a gRPC server"
    return f"it answered {data[:24]!r}, not HTTP/2"


class GrpcSink(_QueuedSink):
    """Streams the recording to a Rerun-compatible gRPC server: Rerun's viewer or
    ``rerun --serve-grpc``, or ``pixelrun view`` (Rerun 0.41's MessageProxyService
    ``WriteMessages``; see engine/grpc/wire.py). What ``rr.connect_grpc``,
    ``rr.spawn`` and ``rr.GrpcSink`` use.

    The queue is `_QueuedSink`'s: `write_chunk` queues (bounded by `max_queue_bytes`; a
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

    After ``os.fork()`` the child streams through a relay process (`_RelaySink`):
    grpcio is not fork-safe.
    """

    def __init__(self, url: Optional[str] = None, *, max_queue_bytes: int = 256 << 20,
                 retry_secs: float = 0.5, connect_timeout: float = 2.0,
                 handshake_timeout: float = 5.0, backpressure_secs: float = 2.0,
                 place: Optional[str] = None) -> None:
        self.url = str(url) if url is not None else default_grpc_url()
        self.backpressure_secs = backpressure_secs
        self.addr, self.secure = wire.parse_url(self.url)
        host, _, port = self.addr.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.place = place or f"grpc {self.url}"
        self.max_queue_bytes = max_queue_bytes
        self.retry_secs = retry_secs
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self._token: Optional[object] = None  # the live call's; its request generator checks it
        self._inflight: Optional[_Item] = None  # yielded to gRPC, send not yet completed
        self._last_sent: Optional[_Item] = None  # the last one whose send completed on this call
        self._call_sent = [0, 0, 0]  # chunks, rows, bytes sent on the current call
        self._init_queue("pixelrun-grpc", f"no gRPC server connected at {self.addr} yet")

    def settings(self) -> dict:
        """The keyword arguments that make another sink like this one (a relay's)."""
        return dict(max_queue_bytes=self.max_queue_bytes, retry_secs=self.retry_secs,
                    connect_timeout=self.connect_timeout, handshake_timeout=self.handshake_timeout,
                    backpressure_secs=self.backpressure_secs)

    def for_child(self) -> Optional[Callable[[], Sink]]:
        """grpcio is not fork-safe (a forked child's first channel hung about one run
        in eight), so a child never makes a channel: it streams to the same URL through
        a relay process of its own (`_RelaySink`), started at its first chunk."""
        url, kw = self.url, self.settings()
        return lambda: _RelaySink(url, **kw)

    # -- sender thread

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

    def _probe(self) -> str:
        """'' when an HTTP/2 server answers at the address; else why not (and `_why`)."""
        sock = self._dial("gRPC server")
        if sock is None:
            return "unreachable"
        got = b""
        closed = False
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
                    closed = True
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
        elif closed:
            problem = "it closed the connection without answering the HTTP/2 preface"
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
            pre = self._preamble()
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



# ------------------------------------------------------------ forked child's relay

# A frame on the pipe from a forked child to its relay process (sdk/fork_relay.py):
# kind (FRAME_STORE, FRAME_STATIC, FRAME_TEMPORAL or FRAME_CLOSE), rows, key length, body length; then the
# key (utf-8: a store's or static chunk's identity) and the body (one .rrd message:
# its 16-byte header and payload; for FRAME_CLOSE the relay's time budget, a float64).
RELAY_FRAME = struct.Struct("<BIIQ")
RELAY_CLOSE = struct.Struct("<d")
RELAY_MAX_KEY = 1 << 16
RELAY_MAX_BODY = 1 << 32  # a frame claiming more is not ours: the relay refuses the stream
RELAY_MODULE = "pixelrun.fork_relay"
_CATEGORIES = {c.__name__: c for c in (PixelrunWarning, DataLossWarning)}


def relay_place(url: str, relay_pid: int) -> str:
    """How a forked child's stream is named in messages (the child's and its relay's alike)."""
    return f"grpc {url} (through relay process {relay_pid})"


class _RelaySink(_QueuedSink):
    """A forked child's stream to a gRPC server, through a relay process.

    grpcio is not fork-safe: a channel made in a forked child can hang for good. So
    the child never makes one: this sink starts a fresh interpreter (``python -m
    pixelrun.fork_relay``; fork+exec is safe after a fork, and grpcio starts clean
    there) that owns an ordinary GrpcSink to the same URL (TLS too), and writes the
    child's messages into that process's stdin in `RELAY_FRAME`s. The queue is
    `_QueuedSink`'s, with the parent sink's bounds: a relay that is behind gets the
    same back-pressure budget, then the oldest chunks are dropped and counted here.
    Pipe writes never block (non-blocking, bounded by the close deadline).

    The relay reports what it drops and what it warns as JSON lines on its stdout;
    they are counted in the child's ledger as they come (so ``rec.dropped_rows`` and
    the close summary include them). The relay lives as long as its stdin: it ends
    with the child however the child ends (os._exit too), sending what it holds
    within a bounded time; when the child died without closing, it prints its own
    loss summary on stderr (inherited from the child).
    """

    def __init__(self, url: str, *, max_queue_bytes: int = 256 << 20, retry_secs: float = 0.5,
                 connect_timeout: float = 2.0, handshake_timeout: float = 5.0,
                 backpressure_secs: float = 2.0) -> None:
        self.url = url
        self.addr = f"the relay process for {url}"
        self.max_queue_bytes = max_queue_bytes
        self.backpressure_secs = backpressure_secs
        self._settings = dict(max_queue_bytes=max_queue_bytes, retry_secs=retry_secs,
                              connect_timeout=connect_timeout, handshake_timeout=handshake_timeout,
                              backpressure_secs=backpressure_secs)
        # Our own pipes, used through their raw fds only: no buffered file object whose
        # lock a thread could hold when this process forks again.
        to_relay_r, self._to_relay = os.pipe()
        self._from_relay, from_relay_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", RELAY_MODULE, json.dumps(dict(url=url, child=os.getpid(), **self._settings))],
                stdin=to_relay_r, stdout=from_relay_w, close_fds=True)
        except BaseException:
            for fd in (self._to_relay, self._from_relay):
                os.close(fd)
            raise
        finally:
            os.close(to_relay_r)
            os.close(from_relay_w)
        os.set_blocking(self._to_relay, False)
        try:  # fewer wake-ups per 1080p frame where Linux allows a larger pipe
            fcntl.fcntl(self._to_relay, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except OSError:
            pass
        self.relay_pid = self._proc.pid
        self.place = relay_place(url, self.relay_pid)
        self._reported = threading.Event()  # the relay's final "closed" report arrived
        self._finished = False  # close() is over: later reports go to stderr, nobody sums them up
        self._init_queue("pixelrun-relay", f"the relay process {self.relay_pid} is starting")
        if _grpc_fork.FORK_HANDLERS_ON:  # this stream is safe; the processes around the fork may not be
            self.loss.notice("pixelrun: grpc was imported before pixelrun, so grpcio's fork handlers are on; "
                             "they can crash a process that forks while it streams (see pixelrun/_grpc_fork.py). "
                             "Import pixelrun first or set GRPC_ENABLE_FORK_SUPPORT=false", PixelrunWarning)
        threading.Thread(target=self._read_reports, name="pixelrun-relay-reports", daemon=True).start()

    def for_child(self) -> Optional[Callable[[], Sink]]:
        """Forked again: the grandchild lets go of this relay's pipes (so the relay still
        ends with its child) and gets a relay of its own."""
        self._let_go("_to_relay")
        self._let_go("_from_relay")
        url, kw = self.url, dict(self._settings)
        return lambda: _RelaySink(url, **kw)

    def _let_go(self, attr: str) -> None:
        """Close the pipe end in `attr` once; -1 marks it closed first, so that a process
        forked later never closes whatever reuses the number."""
        fd = getattr(self, attr)
        setattr(self, attr, -1)
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the relay's reports (a thread of their own; ends when the relay exits)

    def _read_reports(self) -> None:
        pending = b""
        try:
            while True:
                data = os.read(self._from_relay, 1 << 16)
                if not data:
                    break
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    self._report(line)
        except OSError:
            pass
        self._let_go("_from_relay")
        try:
            code = self._proc.wait(5)  # it closed its stdout: it is exiting
        except subprocess.TimeoutExpired:
            code = None
        with self._cond:
            if not self._reported.is_set() and not self._finished:
                self._relay_exited(code)
        self._reported.set()

    def _relay_exited(self, code: Optional[int]) -> None:
        """(Under `_cond`.) The relay ended before the close (killed, crashed): what it
        held is lost and only it knew how much; from now on every chunk is counted."""
        if self._gone:
            return
        self._give_up(f"the relay process {self.relay_pid} exited" + ("" if code is None else f" (code {code})"))
        self.loss.notice(f"pixelrun: {self.place}: the relay process exited unexpectedly"
                         + ("" if code is None else f" (code {code})") + "; what it had not sent yet is lost "
                         "uncounted (only it knew), every later row is dropped and counted", DataLossWarning)

    def _report(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return  # not one of ours
        if not isinstance(msg, dict):
            return
        if "loss" in msg:
            place, reason, chunks, rows, nbytes = msg["loss"]
            with self._cond:
                late = self._finished
                self.dropped += chunks
                self.dropped_rows += rows
                self.dropped_bytes += nbytes
                self.loss.add(place, reason, chunks=chunks, rows=rows, nbytes=nbytes)
            if late:  # after our close: the recording's summary is out already
                sys.stderr.write(f"pixelrun: {place}: {rows} row(s) in {chunks} chunk(s) were not delivered: "
                                 f"{reason}\n")
        elif "notice" in msg:
            self.loss.notice(str(msg["notice"]), _CATEGORIES.get(msg.get("category"), PixelrunWarning))
        elif msg.get("closed"):
            self._reported.set()

    # -- sender thread: the pipe

    def _write_all(self, parts: list) -> str:
        """Write `parts` into the pipe: '' when done, "broken" (the relay is gone) or
        "late" (the close deadline passed mid-frame). Never blocks longer than 0.1 s
        at a time, so a relay that stops reading cannot hold the close."""
        for part in parts:
            view = memoryview(part).cast("B")
            while len(view):
                try:
                    n = os.write(self._to_relay, view)
                except BlockingIOError:
                    n = 0
                except OSError:
                    return "broken"
                if n:
                    view = view[n:]
                    continue
                with self._cond:
                    left = self._left()
                if self._closing and left is not None and left <= 0:
                    return "late"
                select.select([], [self._to_relay], [], 0.1 if left is None else max(0.0, min(0.1, left)))
        return ""

    def _send(self, item: _Item) -> str:
        key = item.key.encode()
        return self._write_all([RELAY_FRAME.pack(item.kind, item.rows, len(key), item.size), key, *item.parts])

    def _run(self) -> None:
        with self._cond:
            pre = self._preamble()
            self.connected = True
            self.connections += 1
            self._why = f"the relay process {self.relay_pid} is not keeping up"
            self._cond.notify_all()
        failed = next((r for r in map(self._send, pre) if r), "")
        while not failed:
            with self._cond:
                while not self._queue and not self._closing and not self._gone:
                    self._cond.wait(0.2)
                if self._done() or self._gone:
                    break
                item = self._queue.popleft()
                self._queue_bytes -= item.size
                self._sending = True
            failed = self._send(item)
            with self._cond:
                self._sending = False
                if failed:
                    self._drop(item, f"the relay process {self.relay_pid} exited" if failed == "broken"
                               else f"still being written to the relay process {self.relay_pid} when the "
                               "close timed out")
                self._cond.notify_all()
        self._finish(failed)

    def _finish(self, failed: str) -> None:
        """The close: ask the relay to finish within what is left of our time (its
        share leaves room for its report to reach us), wait for its report at most
        until the deadline, then close the pipe (EOF ends the relay in any case)."""
        if failed == "broken":
            with self._cond:
                self._relay_exited(None)
        elif not failed and not self._gone:
            with self._cond:
                left = max(0.0, self._left() or 0.0)
            budget = max(0.0, left - min(1.0, left / 4))
            if not self._write_all([RELAY_FRAME.pack(FRAME_CLOSE, 0, 0, RELAY_CLOSE.size), RELAY_CLOSE.pack(budget)]):
                with self._cond:
                    left = max(0.0, self._left() or 0.0)
                self._reported.wait(left)
        self._let_go("_to_relay")
        with self._cond:
            self.connected = False
            self._finished = True
            self._cond.notify_all()
        if not self._reported.is_set() and not self._gone:
            self.loss.notice(f"pixelrun: {self.place}: the relay had not reported by the end of the close; "
                             "it finishes on its own and prints on stderr what it could not deliver",
                             PixelrunWarning)


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

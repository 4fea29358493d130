"""Where encoded recordings go: a file, memory, a TCP connection, or a backlog.

Every sink receives the same .rrd encoding (engine/rrd.py): stream header, one
SetStoreInfo per recording, ArrowMsg chunks, and (files and memory) the End message
plus stream footer on close that Rerun 0.41's ``rrd verify`` requires.

Sinks are driven by one recording stream's background thread (the batcher), never
by the thread calling ``log``; a file shared by several recordings (PIXELRUN_SAVE)
serialises writers with a lock.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
import warnings
from typing import Optional

import pyarrow as pa

from pixelrun.engine import rrd
from pixelrun.engine.chunk import Chunk
from pixelrun.engine.rrd_footer import ManifestBuilder, footer_body, stream_footer
from pixelrun.errors import PixelrunWarning

__all__ = ["Sink", "FileSink", "MemorySink", "MemoryRecording", "TcpSink", "BacklogSink", "shared_file_sink"]


class Sink:
    """Interface: add_store / write_chunk / flush / close. All called from one thread
    per recording (a shared sink locks internally)."""

    def add_store(self, store: rrd.StoreInfo) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def write_chunk(self, store: rrd.StoreInfo, chunk: Chunk, batch: pa.RecordBatch,
                    enc: rrd.EncodedChunk) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def flush(self, timeout: Optional[float] = None) -> None:
        pass

    def close(self) -> None:
        pass


class _StreamWriter(Sink):
    """A complete .rrd stream with footer, written through `_write(parts)`.

    Tracks byte offsets and one manifest per recording so `close` can write the End
    message and stream footer (one stream may hold several recordings).
    """

    def __init__(self, compression: bool = False) -> None:
        self._lock = threading.RLock()
        self.compression = compression
        self.offset = 0
        self._manifests: dict[tuple, ManifestBuilder] = {}
        self._closed = False
        self._started = False

    def _write(self, parts: list) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _emit(self, parts: list) -> None:
        self._write(parts)
        self.offset += sum(len(p) if not isinstance(p, pa.Buffer) else p.size for p in parts)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._emit([rrd.stream_header(self.compression)])

    def add_store(self, store: rrd.StoreInfo) -> None:
        with self._lock:
            if self._closed or store.store_key in self._manifests:
                return
            self._start()
            self._manifests[store.store_key] = ManifestBuilder(store)
            self._emit([rrd.encode_store_info(store)])

    def write_chunk(self, store, chunk, batch, enc) -> None:
        with self._lock:
            if self._closed:
                return
            if store.store_key not in self._manifests:
                self.add_store(store)
            body_offset = self.offset + rrd.MESSAGE_HEADER_SIZE
            self._manifests[store.store_key].add(
                chunk, batch, body_offset, enc.size - rrd.MESSAGE_HEADER_SIZE, enc.uncompressed_size
            )
            self._write_encoded(enc)

    def _write_encoded(self, enc) -> None:
        """Write one encoded chunk message (and advance the offset)."""
        self._emit(enc.parts)

    def _end_bytes(self) -> bytes:
        """End message + stream footer for everything written so far."""
        body = footer_body(list(self._manifests.values()))
        body_offset = self.offset + rrd.MESSAGE_HEADER_SIZE
        return rrd.message_header(rrd.KIND_END, len(body)) + body + stream_footer(body_offset, body)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._start()
            self._emit([self._end_bytes()])
            self._closed = True
            self._finish()

    def _finish(self) -> None:
        pass


class FileSink(_StreamWriter):
    """Writes the stream to a file as it goes (a killed process leaves every complete
    message readable); the footer is written on close.

    The file is a pyarrow native file: writes are unbuffered system calls made with
    the GIL released, and chunk payloads are streamed from the chunk's own buffers
    (no intermediate copy of the pixels).
    """

    def __init__(self, path: str, compression: bool = False) -> None:
        super().__init__(compression)
        self.path = os.fspath(path)
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        self._f = pa.OSFile(self.path, "wb")
        self._refs = 1

    def _write(self, parts: list) -> None:
        for p in parts:
            self._f.write(p)

    def _write_encoded(self, enc) -> None:
        # straight from the chunk's buffers into the file: no joined copy of the pixels
        enc.write_to(self._f)
        self.offset += enc.size
        if self._f.tell() != self.offset:  # the footer's offsets must be exact
            raise IOError(f"{self.path}: wrote {self._f.tell()} bytes, expected {self.offset}")

    def flush(self, timeout: Optional[float] = None) -> None:
        pass  # unbuffered: the kernel has every byte already

    def _finish(self) -> None:
        self._f.close()


_SHARED: dict[str, FileSink] = {}
_SHARED_LOCK = threading.Lock()


class _SharedFileSink(Sink):
    """One stream's handle on a file shared by several recordings (PIXELRUN_SAVE)."""

    def __init__(self, inner: FileSink) -> None:
        self.inner = inner
        self._closed = False

    def add_store(self, store) -> None:
        self.inner.add_store(store)

    def write_chunk(self, store, chunk, batch, enc) -> None:
        self.inner.write_chunk(store, chunk, batch, enc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _SHARED_LOCK:
            self.inner._refs -= 1
            last = self.inner._refs == 0
            if last:
                _SHARED.pop(os.path.abspath(self.inner.path), None)
        if last:
            self.inner.close()


def shared_file_sink(path: str, compression: bool = False) -> Sink:
    """A handle on one file per path in this process; the footer is written when the
    last recording using it closes."""
    key = os.path.abspath(path)
    with _SHARED_LOCK:
        inner = _SHARED.get(key)
        if inner is None or inner._closed:
            inner = FileSink(path, compression)
            _SHARED[key] = inner
        else:
            inner._refs += 1
    return _SharedFileSink(inner)


class MemorySink(_StreamWriter):
    """Keeps the encoded stream in memory."""

    def __init__(self, compression: bool = False) -> None:
        super().__init__(compression)
        self._parts: list = []

    def _write(self, parts: list) -> None:
        self._parts.extend(parts)

    def snapshot(self) -> bytes:
        """The stream so far, completed with an End message and footer."""
        with self._lock:
            if self._closed:
                return b"".join(bytes(p) if isinstance(p, pa.Buffer) else p for p in self._parts)
            self._start()
            data = b"".join(bytes(p) if isinstance(p, pa.Buffer) else p for p in self._parts)
            return data + self._end_bytes()


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


class BacklogSink(Sink):
    """Holds chunks while no sink is set (Rerun's buffered sink), bounded: past
    `max_bytes` the oldest temporal chunks are dropped and counted."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self.items: collections.deque = collections.deque()
        self.stores: list = []
        self.nbytes = 0
        self.dropped = 0
        self._warned = False

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
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"pixelrun: no sink is set (call save/connect/spawn/memory_recording); "
                    f"buffered data passed {self.max_bytes >> 20} MiB and the oldest chunks "
                    "are being dropped", PixelrunWarning, stacklevel=2,
                )

    def replay_into(self, sink: Sink) -> None:
        for s in self.stores:
            sink.add_store(s)
        for store, chunk, batch, enc in self.items:
            sink.write_chunk(store, chunk, batch, enc)
        self.items.clear()
        self.nbytes = 0


class TcpSink(Sink):
    """Streams the .rrd encoding to a viewer over TCP (``rr.connect``).

    A sender thread owns the socket: `write_chunk` only queues (bounded by
    `max_queue_bytes`; beyond it the oldest temporal chunks are dropped and counted
    in `dropped`). When the connection fails the sender retries every
    `retry_secs`; a new connection starts with a fresh stream header, the store
    infos and the latest static chunks, so a viewer that comes back sees a
    consistent recording. Never blocks the caller beyond `flush`'s timeout.
    """

    def __init__(self, addr: str = "127.0.0.1:9876", *, max_queue_bytes: int = 256 << 20,
                 retry_secs: float = 0.5, connect_timeout: float = 2.0) -> None:
        host, _, port = addr.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.max_queue_bytes = max_queue_bytes
        self.retry_secs = retry_secs
        self.connect_timeout = connect_timeout
        self.dropped = 0
        self.connected = False
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._queue_bytes = 0
        self._stores: list = []
        self._static: dict = {}  # (store, entity, components) -> latest static chunk
        self._closing = False
        self._sending = False
        self._thread = threading.Thread(target=self._run, name="pixelrun-tcp", daemon=True)
        self._thread.start()

    # -- producer side

    def add_store(self, store) -> None:
        with self._cond:
            if store not in self._stores:
                self._stores.append(store)
                self._push(("store", rrd.encode_store_info(store)), static=True)

    def write_chunk(self, store, chunk, batch, enc) -> None:
        parts = [bytes(p) if isinstance(p, pa.Buffer) else p for p in enc.parts]
        with self._cond:
            if chunk.is_static:
                key = (store.store_key, chunk.entity_path, tuple(sorted(chunk.components)))
                self._static[key] = parts
            self._push(("chunk", parts), static=chunk.is_static)

    def _push(self, item, static: bool) -> None:
        size = sum(len(p) for p in (item[1] if isinstance(item[1], list) else [item[1]]))
        self._queue.append((item, size, static))
        self._queue_bytes += size
        while self._queue_bytes > self.max_queue_bytes and len(self._queue) > 1:
            idx = next((i for i, it in enumerate(self._queue) if not it[2]), None)
            if idx is None:
                break
            _, sz, _ = self._queue[idx]
            del self._queue[idx]
            self._queue_bytes -= sz
            self.dropped += 1
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

    def close(self) -> None:
        self.flush(timeout=2.0)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)

    # -- sender thread

    def _connect(self) -> Optional[socket.socket]:
        try:
            s = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(None)
            return s
        except OSError:
            return None

    def _run(self) -> None:
        sock = None
        while True:
            with self._cond:
                if self._closing:
                    break
            if sock is None:
                sock = self._connect()
                if sock is None:
                    with self._cond:
                        self._cond.wait(self.retry_secs)
                    continue
                try:
                    with self._cond:
                        # Fresh stream: header, store infos, latest statics; queued
                        # store/static items are covered by this preamble.
                        pre = [rrd.stream_header(False)]
                        pre += [rrd.encode_store_info(s) for s in self._stores]
                        for parts in self._static.values():
                            pre += parts
                        self._queue = collections.deque(it for it in self._queue if not it[2])
                        self._queue_bytes = sum(it[1] for it in self._queue)
                    for p in pre:
                        sock.sendall(p)
                    with self._cond:
                        self.connected = True
                except OSError:
                    sock.close()
                    sock = None
                    continue
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait(0.2)
                if not self._queue:
                    continue
                item, size, static = self._queue.popleft()
                self._queue_bytes -= size
                self._sending = True
            try:
                payload = item[1] if isinstance(item[1], list) else [item[1]]
                for p in payload:
                    sock.sendall(p)
            except OSError:
                self.dropped += 1
                try:
                    sock.close()
                finally:
                    sock = None
                with self._cond:
                    self.connected = False
            finally:
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        with self._cond:
            self.connected = False
            self._cond.notify_all()

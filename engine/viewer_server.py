"""The viewer's TCP listener: SDK processes stream .rrd bytes in, chunks come out.

One accept thread, one reader thread per connection (several programs may stream into
one viewer at once). Each reader feeds the bytes it receives to its own incremental
.rrd decoder and hands every decoded chunk to ``on_chunks`` (the viewer ingests them
into its store from that thread, never from the window's thread).

Failure behaviour: anything wrong with one connection — malformed or hostile bytes,
a message longer than ``max_message_bytes``, a decoder error, a callback error —
closes that connection only, with a warning naming the peer, and is counted in
``stats``; the listener and every other connection keep going. Connections past
``max_connections`` are refused so a hostile client cannot exhaust threads.

The listener binds 127.0.0.1 unless told otherwise: a viewer must not be reachable
from other machines unless the user asks for it.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Protocol

from pixelrun.engine import rrd
from pixelrun.engine.chunk import Chunk

__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_PORT",
    "StreamDecoder",
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
RECV_BYTES = 1 << 20


class StreamDecoder(Protocol):
    """What the server needs from an incremental .rrd decoder."""

    def feed(self, data: bytes) -> Iterable[Chunk]:
        """Consume bytes; return the chunks completed so far. Raise on malformed data."""


class PortInUseError(OSError):
    """The port is taken (usually: another viewer is already running)."""


@dataclass
class ServerStats:
    """Counters shown in the viewer's status line (read without locking: ints)."""

    connections_total: int = 0
    connections_open: int = 0
    connections_dropped: int = 0  # closed because of bad data or an error
    connections_refused: int = 0  # over max_connections
    bytes_received: int = 0
    chunks_received: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)  # the last few, for the UI

    def note_error(self, msg: str) -> None:
        self.last_error = msg
        self.errors.append(msg)
        del self.errors[:-20]


class StreamError(ValueError):
    """The bytes of one connection are not a valid .rrd stream; that connection ends."""


class RrdStreamDecoder:
    """`engine/rrd.py`'s incremental decoder with the live-stream policy on top.

    A file reader skips a corrupt message and goes on; a live connection that sends
    one is not trusted further: the first problem the decoder reports (bad magic,
    unknown kind, a length over `max_message_bytes`, an undecodable body) raises
    `StreamError`, which ends that connection. Blueprint chunks are ignored (the
    viewer has a fixed layout).
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:

        self._rrd = rrd
        self._dec = rrd.RrdDecoder(max_message_bytes=max_message_bytes)
        self.messages = 0

    def _check(self) -> None:
        if self._dec.problems:
            raise StreamError(self._dec.problems[0])

    def feed(self, data: bytes) -> list[Chunk]:
        msgs = self._dec.feed(data)
        self._check()
        self.messages += len(msgs)
        return [
            m.chunk
            for m in msgs
            if isinstance(m, self._rrd.ChunkMsg) and m.store.kind != "blueprint"
        ]

    def close(self) -> list[Chunk]:
        """End of the connection: a partial message at the end is a dropped tail."""
        problems = self._dec.finish()
        # A writer killed mid-message (or a stream without footer) is normal for a
        # live sink: nothing to ingest, nothing to report beyond the log.
        for p in problems:
            if p.startswith("truncated"):
                log.info("viewer: %s", p)
        return []


def default_decoder_factory() -> StreamDecoder:
    """A fresh decoder for one connection."""
    return RrdStreamDecoder()


class ViewerServer:
    """Listen on (host, port) and decode what every client sends.

    on_chunks(chunks, peer) is called from the connection's thread for every batch of
    decoded chunks; it may raise, which drops that connection only.
    """

    def __init__(
        self,
        on_chunks: Callable[[list[Chunk], str], None],
        *,
        host: str = DEFAULT_BIND,
        port: int = DEFAULT_PORT,
        decoder_factory: Callable[[], StreamDecoder] = default_decoder_factory,
        max_connections: int = 64,
        on_event: Optional[Callable[[str], None]] = None,
    ) -> None:
        self._on_chunks = on_chunks
        self._decoder_factory = decoder_factory
        self._max_connections = max_connections
        self._on_event = on_event
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._conns: dict[int, socket.socket] = {}
        self._stopping = threading.Event()
        self._sock = self._listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
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
        sock.listen(16)
        sock.settimeout(0.25)  # so stop() is noticed
        return sock

    def start(self) -> "ViewerServer":
        self._accept_thread.start()
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _event(self, msg: str) -> None:
        if self._on_event is not None:
            try:
                self._on_event(msg)
            except Exception:  # the UI hook must never stop ingest
                log.exception("viewer event hook failed")

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            peer = f"{addr[0]}:{addr[1]}"
            with self._lock:
                if len(self._conns) >= self._max_connections:
                    self.stats.connections_refused += 1
                    conn.close()
                    log.warning("viewer: refused %s: already %d connections", peer, self._max_connections)
                    continue
                self._conns[id(conn)] = conn
                self.stats.connections_total += 1
                self.stats.connections_open += 1
            conn.settimeout(None)
            threading.Thread(
                target=self._serve, args=(conn, peer), name=f"pixelrun-viewer-{peer}", daemon=True
            ).start()
            self._event(f"connected: {peer}")

    def _serve(self, conn: socket.socket, peer: str) -> None:
        reason = ""
        try:
            decoder = self._decoder_factory()
            while not self._stopping.is_set():
                data = conn.recv(RECV_BYTES)
                if not data:
                    break
                self.stats.bytes_received += len(data)
                chunks = list(decoder.feed(data))
                if chunks:
                    self.stats.chunks_received += len(chunks)
                    self._on_chunks(chunks, peer)
            # A clean close in the middle of a message is just a truncated stream.
            finish = getattr(decoder, "close", None)
            if finish is not None:
                tail = finish()
                if tail:
                    self._on_chunks(list(tail), peer)
        except (ConnectionError, OSError) as exc:
            if not self._stopping.is_set():
                reason = f"connection error: {exc}"
        except Exception as exc:  # malformed/hostile data: drop this connection only
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            # Account first, then close: whoever sees the close sees the counts too.
            with self._lock:
                self._conns.pop(id(conn), None)
                self.stats.connections_open -= 1
                if reason:
                    self.stats.connections_dropped += 1
                    self.stats.note_error(f"dropped connection {peer}: {reason}")
            try:
                conn.close()
            except OSError:
                pass
            if reason:
                log.warning("viewer: dropped connection %s: %s", peer, reason)
                self._event(f"dropped connection {peer}: {reason}")
            else:
                self._event(f"disconnected: {peer}")

    def stop(self) -> None:
        """Close the listener and every connection (threads exit on their own)."""
        self._stopping.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        if self._accept_thread.is_alive():
            self._accept_thread.join(timeout=2)

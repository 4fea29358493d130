"""Servers for the streaming tests: a minimal Rerun-compatible gRPC viewer that decodes
what it receives (can be slow, killed mid-stream, or speak TLS), something else on a
port, and a bounded poll."""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures
from typing import Optional

import grpc

from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER, buffer_row
from pixelrun.engine.grpc import wire


def wait_until(pred, timeout=20.0) -> bool:
    """Poll `pred` until true, at most `timeout` s (a bounded wait on a condition)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return bool(pred())


class Viewer:
    """A minimal Rerun-compatible gRPC server (MessageProxyService.WriteMessages) that
    decodes what each call carries. `close_after`: the server stops (every connection
    and the listener go) once that many chunks have arrived: a viewer killed mid-stream.
    `tls`: (private key, certificate) PEM: a ``rerun+https`` server."""

    def __init__(self, port: int = 0, close_after=None, delay: float = 0.0,
                 tls: Optional[tuple[bytes, bytes]] = None):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(wire.SERVICE, {
            "WriteMessages": grpc.stream_unary_rpc_method_handler(self._write)})
        self.server.add_generic_rpc_handlers((handler,))
        address = f"127.0.0.1:{port}"
        self.port = (self.server.add_secure_port(address, grpc.ssl_server_credentials([tls])) if tls
                     else self.server.add_insecure_port(address))
        self.delay = delay  # seconds per message: a server slower than its client
        assert self.port, f"could not listen on {port}"
        self.close_after = close_after
        self.msgs: list = []
        self.problems: list = []
        self.calls = 0
        self.cond = threading.Condition()
        self.server.start()

    def _write(self, requests, context):
        with self.cond:
            self.calls += 1
        dec = rrd.RrdDecoder()
        dec.feed(rrd.stream_header(False))  # a call is one stream (as the pixelrun viewer reads it)
        try:
            for req in requests:
                if self.delay:
                    time.sleep(self.delay)
                kind, body, header = wire.frame_from_request(req)
                out = dec.feed(bytes(header) + bytes(body))
                with self.cond:
                    self.msgs.extend(out)
                    self.cond.notify_all()
                if self.close_after is not None and len(self.entities()) >= self.close_after:
                    threading.Thread(target=self.close, daemon=True).start()
                    break
        finally:
            with self.cond:
                self.problems.extend(p for p in dec.finish() if "footer" not in p)
        return b""

    def wait_for(self, pred, timeout=20):
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)

    def entities(self):
        return [m.chunk.entity_path for m in self.msgs if isinstance(m, rrd.ChunkMsg)]

    def rows(self, entity):
        return sum(m.chunk.num_rows for m in self.msgs
                   if isinstance(m, rrd.ChunkMsg) and m.chunk.entity_path == entity)

    def images(self, entity: str) -> list[bytes]:
        """Every image row of `entity` received, as bytes, in order."""
        return [bytes(buffer_row(m.chunk.components[IMAGE_BUFFER], i)) for m in self.msgs
                if isinstance(m, rrd.ChunkMsg) and m.chunk.entity_path == entity
                and IMAGE_BUFFER in m.chunk.components for i in range(m.chunk.num_rows)]

    def close(self):
        self.server.stop(0).wait(10)


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Listener:
    """Something else on the port: accepts, records what it receives, and answers
    with `on_connect` bytes at once and `on_data` bytes to the first bytes it gets
    (then closes); `close_at_once` closes every connection without a byte."""

    def __init__(self, on_connect: bytes = b"", on_data=None, close_at_once: bool = False):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.received = bytearray()
        self.on_connect, self.on_data, self.close_at_once = on_connect, on_data, close_at_once
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            if self.close_at_once:
                return
            try:
                if self.on_connect:
                    conn.sendall(self.on_connect)
                while True:
                    data = conn.recv(1 << 16)
                    if not data:
                        return
                    self.received += data
                    if self.on_data is not None:
                        conn.sendall(self.on_data)
                        return
            except OSError:
                return

    def close(self):
        _shut(self.srv)

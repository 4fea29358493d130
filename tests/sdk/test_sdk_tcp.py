"""The TCP sink (rr.connect_tcp): same encoding as files, reconnects, bounded buffering,
every drop counted and reported, peers that are not a pixelrun viewer named."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sdk_helpers import PROPERTIES

import pixelrun as rr
from pixelrun.engine import rrd
from pixelrun.sinks import GREETING, TcpSink
from tests.net_helpers import free_port

# Tests that count drops make their recordings with send_properties=False: the counts are
# of the rows each test logs (the start-time row rr.init sends is checked where streamed).

ROOT = Path(__file__).resolve().parents[2]
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"


def wait_until(pred, timeout=20.0) -> bool:
    """Poll `pred` until true, at most `timeout` s (a bounded wait on a condition)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return bool(pred())


class Viewer:
    """A minimal pixelrun viewer: greets, accepts one connection at a time and decodes
    the stream. `close_after` closes the connection and the listener once that many
    chunks have arrived (a viewer killed mid-stream)."""

    def __init__(self, port: int = 0, greet: bool = True, close_after=None):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.greet = greet
        self.close_after = close_after
        self.msgs: list = []
        self.problems: list = []
        self.connections = 0
        self.cond = threading.Condition()
        self.conn = None
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        for conn in _accepted(self.srv):
            self.conn = conn
            with self.cond:
                self.connections += 1
            dec = rrd.RrdDecoder()
            try:
                if self.greet:
                    conn.sendall(GREETING)
                while True:
                    data = conn.recv(1 << 16)
                    if not data:
                        break
                    out = dec.feed(data)
                    with self.cond:
                        self.msgs.extend(out)
                        self.cond.notify_all()
                    if self.close_after is not None and len(self.entities()) >= self.close_after:
                        self.close()
                        return
            except OSError:
                pass
            with self.cond:
                self.problems.extend(dec.finish())

    def wait_for(self, pred, timeout=20):
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)

    def entities(self):
        return [m.chunk.entity_path for m in self.msgs if isinstance(m, rrd.ChunkMsg)]

    def rows(self, entity):
        return sum(m.chunk.num_rows for m in self.msgs
                   if isinstance(m, rrd.ChunkMsg) and m.chunk.entity_path == entity)

    def close(self):
        # The listener first, with shutdown: on Linux, close() alone leaves a socket
        # that a thread is blocked accept()ing on listening, and the sink would
        # reconnect into this "closed" viewer.
        _shut(self.srv)
        if self.conn is not None:
            _shut(self.conn)
        if threading.current_thread() is not self.th:
            self.th.join(10)


def _accepted(srv):
    """The connections accepted on listener `srv`, until it is closed."""
    while True:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        yield conn


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Listener:
    """Something else on the port: accepts, records what it receives, and answers
    with `on_connect` bytes at once and `on_data` bytes to the first bytes it gets
    (then closes, like Rerun's gRPC server answering `HTTP/1.1 400`)."""

    def __init__(self, on_connect: bytes = b"", on_data=None):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.received = bytearray()
        self.on_connect, self.on_data = on_connect, on_data
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        for conn in _accepted(self.srv):
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
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



def _img():
    return rr.Image(np.zeros((2, 2), np.uint8))


def _counts_in(messages) -> list[int]:
    """The row counts a loss message states (the total first, then per reason)."""
    return [int(n) for m in messages for n in re.findall(r"(\d+) row\(s\)", m)]


def test_streams_the_rrd_encoding():
    v = Viewer()
    rec = rr.RecordingStream("tcp", recording_id="t1")
    sink = TcpSink(f"127.0.0.1:{v.port}", expect_greeting=True)  # a greeting viewer passes the check
    rec._set_sinks([sink])
    rec.log("a", _img())
    rec.log("b", _img())
    rec.flush()
    assert v.wait_for(lambda s: len(s.entities()) == 3)
    assert isinstance(v.msgs[0], rrd.StoreInfoMsg) and v.msgs[0].info.recording_id == "t1"
    assert sorted(v.entities()) == [PROPERTIES, "/a", "/b"]  # the recording's start time goes too
    assert sink.peer_problem == "" and sink.dropped == 0
    rec.close()
    v.close()


def test_streams_into_the_real_viewer_server():
    from pixelrun.engine.viewer.server import ViewerServer

    rows, lock = {}, threading.Lock()

    def on_chunks(chunks, peer):
        with lock:
            for c in chunks:
                rows[c.entity_path] = rows.get(c.entity_path, 0) + c.num_rows

    srv = ViewerServer(on_chunks, port=0).start()
    try:
        rec = rr.RecordingStream("tcp-real")
        with warnings.catch_warnings():
            warnings.simplefilter("error", rr.PixelrunWarning)  # nothing is named or dropped
            rec.connect_tcp(f"127.0.0.1:{srv.port}")
            for i in range(5):
                rec.set_time("i", sequence=i)
                rec.log("cam", _img())
            rec.flush()
            assert wait_until(lambda: rows.get("/cam") == 5)
            rec.close()
        assert rec.dropped_rows == 0 and rec.losses() == {}
    finally:
        srv.stop()


def test_no_viewer_never_blocks_and_drops_with_a_count():
    port = free_port()  # nothing listens here
    sink = TcpSink(f"127.0.0.1:{port}", max_queue_bytes=5000, retry_secs=0.05)
    rec = rr.RecordingStream("tcp", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    rec._set_sinks([sink])
    with pytest.warns(rr.DataLossWarning, match=rf"127\.0\.0\.1:{port}: dropping data: no viewer listening"):
        for _ in range(50):
            rec.log("a", rr.Image(np.zeros((10, 100), np.uint8)))  # ~1 KiB each
        rec.flush()  # returns although nobody listens
        # the sink's thread counts its first drop on its own schedule (slow on a loaded
        # machine); once it has, the next log surfaces the warning on this thread
        deadline = time.monotonic() + 30
        while sink.dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        rec.log("a", rr.Image(np.zeros((10, 100), np.uint8)))  # the warning surfaces here at the latest
    assert sink.dropped > 0
    assert sink._queue_bytes <= 5000
    with pytest.warns(rr.DataLossWarning) as w:
        rec.close(timeout=0.5)
    summary = [str(x.message) for x in w if "not delivered" in str(x.message)]
    # every one of the 51 rows is either dropped by the full queue or still queued at
    # close: all of them are counted, and the summary says so
    assert _counts_in(summary)[0] == 51 == rec.dropped_rows == sink.dropped_rows
    assert rec.dropped_chunks == sink.dropped == 51  # readable after close
    assert "still queued at close" in summary[0] and "oldest chunks are dropped" in summary[0]


def test_chunks_queued_at_close_are_counted():
    port = free_port()
    sink = TcpSink(f"127.0.0.1:{port}", retry_secs=0.05)  # a queue large enough for all
    rec = rr.RecordingStream("tcp", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    rec._set_sinks([sink])
    for i in range(20):
        rec.set_time("i", sequence=i)
        rec.log("a", _img())
    with pytest.warns(rr.DataLossWarning, match=r"20 row\(s\) in 20 chunk\(s\).*still queued at close"):
        rec.close(timeout=0.5)
    assert rec.dropped_rows == 20 and rec.dropped_chunks == 20 and sink.dropped == 20


def test_viewer_killed_mid_stream_drops_are_counted_and_reported():
    v = Viewer(close_after=1)  # takes one chunk, then the connection and listener go
    sink = TcpSink(f"127.0.0.1:{v.port}", max_queue_bytes=3000, retry_secs=0.05)
    rec = rr.RecordingStream("tcp", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    rec._set_sinks([sink])
    rec.log("first", _img())
    rec.flush()
    assert v.wait_for(lambda s: "/first" in s.entities())
    assert wait_until(lambda: sink.connections == 1 and not sink.connected)
    with pytest.warns(rr.DataLossWarning, match="dropping data"):
        for i in range(40):
            rec.set_time("i", sequence=i)
            rec.log("after", rr.Image(np.zeros((10, 100), np.uint8)))
        rec.flush()
        rec.log("after", rr.Image(np.zeros((10, 100), np.uint8)))
    with pytest.warns(rr.DataLossWarning) as w:
        rec.close(timeout=0.5)
    summary = [str(x.message) for x in w if "not delivered" in str(x.message)]
    assert len(summary) == 1
    # 41 rows after the viewer went: each is counted, none reached it
    assert _counts_in(summary)[0] == 41 == rec.dropped_rows == sink.dropped_rows
    assert v.rows("/after") == 0


def test_reconnects_when_the_viewer_comes_back():
    v1 = Viewer()
    port = v1.port
    rec = rr.RecordingStream("tcp", recording_id="t2")
    sink = TcpSink(f"127.0.0.1:{port}", retry_secs=0.05)
    rec._set_sinks([sink])
    rec.log("fmt", rr.components.ImageFormat(2, 2, color_model="L", channel_datatype="U8"), static=True)
    rec.log("before", _img())
    rec.flush()
    assert v1.wait_for(lambda s: "/before" in s.entities())
    v1.close()
    # The sink notices the closed connection on its own (no send needed)...
    assert wait_until(lambda: not sink.connected)
    # ...and keeps what is logged meanwhile for the next viewer.
    for _ in range(20):
        rec.log("during", _img())
    rec.flush(timeout_sec=5)
    v2 = Viewer(port)
    rec.log("after", _img())
    rec.flush()
    assert v2.wait_for(lambda s: "/after" in s.entities())
    # The new connection starts with a stream header, the store info and the static data.
    assert isinstance(v2.msgs[0], rrd.StoreInfoMsg) and v2.msgs[0].info.recording_id == "t2"
    assert "/fmt" in v2.entities()
    assert v2.rows("/during") == 20  # nothing logged while no viewer was there is lost
    assert v2.problems == [] and sink.dropped == 0
    rec.close()
    v2.close()


def test_a_silent_peer_is_named_when_the_viewer_greets():
    srv = Listener()  # accepts and reads, never answers
    sink = TcpSink(f"127.0.0.1:{srv.port}", expect_greeting=True, handshake_timeout=0.3,
                   retry_secs=0.05, max_queue_bytes=3000)
    rec = rr.RecordingStream("peer", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    with pytest.warns(rr.PixelrunWarning, match=rf"127\.0\.0\.1:{srv.port} is not a pixelrun viewer: "
                                                r"it sent nothing within 0\.3 s"):
        rec._set_sinks([sink])  # the warning comes with the first SDK call after the check
        rec.log("x", _img())
        assert wait_until(lambda: sink.peer_problem != "")
        rec.log("x", _img())
    for _ in range(10):
        rec.log("x", rr.Image(np.zeros((10, 100), np.uint8)))
    with pytest.warns(rr.DataLossWarning, match="is not a pixelrun viewer"):
        rec.close(timeout=0.5)
    assert rec.dropped_rows == 12
    assert bytes(srv.received).replace(rrd.stream_header(False), b"") == b""  # no data went there
    srv.close()


@pytest.mark.parametrize("what, on_connect, on_data, named", [
    ("rerun-like http", b"", b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n", "an HTTP server"),
    ("http/2 settings", b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64", None, "an HTTP/2 server"),
    ("ssh", b"SSH-2.0-OpenSSH_9.6\r\n", None, "it sent b'SSH-2.0"),
])
def test_a_peer_that_answers_otherwise_is_named(what, on_connect, on_data, named):
    srv = Listener(on_connect, on_data)
    sink = TcpSink(f"127.0.0.1:{srv.port}", retry_secs=0.05)  # default check, no greeting required
    rec = rr.RecordingStream("peer", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    with pytest.warns(rr.PixelrunWarning, match=rf"is not a pixelrun viewer: {re.escape(named)}"):
        rec._set_sinks([sink])  # the warning comes with the first SDK call after the check
        rec.log("x", _img())
        assert wait_until(lambda: sink.peer_problem != "")
        rec.log("x", _img())
    with pytest.warns(rr.DataLossWarning, match=r"2 row\(s\)"):
        rec.close(timeout=0.5)
    assert b"".join(srv.received.split(rrd.stream_header(False))) == b""
    srv.close()


@pytest.mark.skipif(not RERUN_PY.exists(), reason="real rerun 0.41 not installed in .venv-rerun")
def test_reruns_own_grpc_server_is_named(tmp_path):
    port = free_port()
    code = ("import rerun as rr, sys, time; rr.init('probe'); rr.serve_grpc(grpc_port=int(sys.argv[1])); "
            "print('up', flush=True); time.sleep(60)")
    proc = subprocess.Popen([str(RERUN_PY), "-c", code, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        rec = rr.RecordingStream("peer", send_properties=False)
        with pytest.warns(rr.PixelrunWarning, match=rf"127\.0\.0\.1:{port} is not a pixelrun viewer: an HTTP"):
            rec.connect_tcp(f"127.0.0.1:{port}")  # raw TCP: Rerun's server is named
            rec.log("x", _img())
            sink = rec._sinks[0]
            assert wait_until(lambda: sink.peer_problem != "")
            rec.log("x", _img())
        with pytest.warns(rr.DataLossWarning):
            rec.close(timeout=0.5)
        assert rec.dropped_rows == 2
    finally:
        proc.kill()
        proc.wait(30)


def test_connect_is_ignored_under_pixelrun_save(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELRUN_SAVE", str(tmp_path / "cap.rrd"))
    rec = rr.RecordingStream("cap")
    rec.connect("127.0.0.1:1")  # would never connect: must be a no-op
    rec.spawn()
    rec.log("x", _img())
    rec.close()
    got = rrd.read_rrd(tmp_path / "cap.rrd")
    assert [c.entity_path for c in got.chunks] == [PROPERTIES, "/x"] and got.problems == []


def test_spawn_without_viewer_module_or_display_warns_once(monkeypatch):
    # the module, not the function: `pixelrun.spawn` the attribute is rr.spawn()
    sp = sys.modules["pixelrun.spawn"]
    monkeypatch.delenv("PIXELRUN_SAVE", raising=False)
    monkeypatch.setattr(sp, "_warned", set())
    monkeypatch.setattr(sp, "is_listening", lambda port, **_: False)
    monkeypatch.setattr(sp, "viewer_available", lambda: False)
    with pytest.warns(rr.PixelrunWarning, match="no viewer is available"):
        assert sp.spawn_viewer(1) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sp.spawn_viewer(1) is False  # second time: silent
    monkeypatch.setattr(sp, "viewer_available", lambda: True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.warns(rr.PixelrunWarning, match="no display"):
        assert sp.spawn_viewer(1) is False


def test_importing_the_spawn_module_keeps_rr_spawn_a_function():
    """The submodule pixelrun.spawn shares its name with rr.spawn(): importing it on
    first use (as RecordingStream.spawn once did) replaced the function with the module."""
    code = "import pixelrun as rr, pixelrun.spawn; f = rr.spawn; print(callable(f), type(f).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "function"], out.stdout + out.stderr


def test_spawn_into_a_port_taken_by_something_else_says_so(monkeypatch):
    srv = Listener(b"", b"HTTP/1.1 400 Bad Request\r\n\r\n")
    monkeypatch.delenv("PIXELRUN_SAVE", raising=False)
    rec = rr.RecordingStream("spawned")
    with pytest.warns(rr.PixelrunWarning, match=rf"127\.0\.0\.1:{srv.port} is not a Rerun-compatible gRPC server"):
        rec.spawn(port=srv.port)  # something listens: no viewer is started, the sink checks it
        rec.log("x", _img())
        assert wait_until(lambda: rec._sinks[0].peer_problem != "")
        rec.log("x", _img())
    with pytest.warns(rr.DataLossWarning):
        rec.close(timeout=0.5)
    srv.close()

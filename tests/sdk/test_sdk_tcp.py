"""The TCP sink (rr.connect): same encoding as files, reconnects, bounded buffering."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

import pixelrun as rr
from pixelrun.engine import rrd
from pixelrun.sinks import TcpSink


class Viewer:
    """A minimal viewer: accepts one connection at a time and decodes the stream."""

    def __init__(self, port: int = 0):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.msgs: list = []
        self.problems: list = []
        self.connections = 0
        self.cond = threading.Condition()
        self.conn = None
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conn = conn
            with self.cond:
                self.connections += 1
            dec = rrd.RrdDecoder()
            while True:
                try:
                    data = conn.recv(1 << 16)
                except OSError:
                    break
                if not data:
                    break
                out = dec.feed(data)
                with self.cond:
                    self.msgs.extend(out)
                    self.cond.notify_all()
            with self.cond:
                self.problems.extend(dec.finish())

    def wait_for(self, pred, timeout=20):
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)

    def entities(self):
        return [m.chunk.entity_path for m in self.msgs if isinstance(m, rrd.ChunkMsg)]

    def close(self):
        if self.conn is not None:
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.conn.close()
        self.srv.close()


def _img():
    return rr.Image(np.zeros((2, 2), np.uint8))


def test_streams_the_rrd_encoding():
    v = Viewer()
    rec = rr.RecordingStream("tcp", recording_id="t1")
    rec.connect(f"127.0.0.1:{v.port}")
    rec.log("a", _img())
    rec.log("b", _img())
    rec.flush()
    assert v.wait_for(lambda s: len(s.entities()) == 2)
    assert isinstance(v.msgs[0], rrd.StoreInfoMsg) and v.msgs[0].info.recording_id == "t1"
    assert sorted(v.entities()) == ["/a", "/b"]
    rec.close()
    v.close()


def test_no_viewer_never_blocks_and_drops_with_a_count():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here after the with-block
    sink = TcpSink(f"127.0.0.1:{port}", max_queue_bytes=5000, retry_secs=0.05)
    rec = rr.RecordingStream("tcp")
    rec._set_sinks([sink])
    for _ in range(50):
        rec.log("a", rr.Image(np.zeros((10, 100), np.uint8)))  # ~1 KiB each
    rec.flush()  # returns although nobody listens
    assert sink.dropped > 0
    assert sink._queue_bytes <= 5000
    rec.close()


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
    # Viewer gone: logging goes on; eventually a send fails and the sink notices.
    for _ in range(20):
        rec.log("during", _img())
        rec.flush()
    v2 = Viewer(port)
    rec.log("after", _img())
    rec.flush()
    assert v2.wait_for(lambda s: "/after" in s.entities())
    # The new connection starts with a stream header, the store info and the static data.
    assert isinstance(v2.msgs[0], rrd.StoreInfoMsg) and v2.msgs[0].info.recording_id == "t2"
    assert "/fmt" in v2.entities()
    assert v2.problems == []
    rec.close()
    v2.close()


def test_connect_is_ignored_under_pixelrun_save(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELRUN_SAVE", str(tmp_path / "cap.rrd"))
    rec = rr.RecordingStream("cap")
    rec.connect("127.0.0.1:1")  # would never connect: must be a no-op
    rec.spawn()
    rec.log("x", _img())
    rec.close()
    got = rrd.read_rrd(tmp_path / "cap.rrd")
    assert [c.entity_path for c in got.chunks] == ["/x"] and got.problems == []


def test_spawn_without_viewer_module_or_display_warns_once(monkeypatch):
    import pixelrun.spawn as sp

    monkeypatch.delenv("PIXELRUN_SAVE", raising=False)
    monkeypatch.setattr(sp, "_warned", set())
    monkeypatch.setattr(sp, "is_listening", lambda port, **_: False)
    monkeypatch.setattr(sp, "viewer_available", lambda: False)
    with pytest.warns(rr.PixelrunWarning, match="no viewer is available"):
        assert sp.spawn_viewer(1) is False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sp.spawn_viewer(1) is False  # second time: silent
    monkeypatch.setattr(sp, "viewer_available", lambda: True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.warns(rr.PixelrunWarning, match="no display"):
        assert sp.spawn_viewer(1) is False

"""Live streaming (gRPC, the one protocol): same encoding as files, reconnects, bounded
buffering, every drop counted and reported, peers that are not a Rerun-compatible gRPC
server named, Rerun's own server taken, and ``connect_tcp`` as a deprecated alias.

(Ported from the raw-TCP sink's tests when that stream was retired: each guarantee
they checked is checked here against GrpcSink / connect_grpc.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from grpc_helpers import RERUN_BIN, RerunSaver
from sdk_helpers import PROPERTIES
from stream_helpers import Listener, Viewer, wait_until

import pixelrun as rr
import pixelrun.recording as recording_module
from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER, buffer_row
from pixelrun.engine.viewer.server import ViewerServer
from pixelrun.sinks import _H2_PREFACE, GrpcSink
from tests.net_helpers import free_port

# Tests that count drops make their recordings with send_properties=False: the counts are
# of the rows each test logs (the start-time row rr.init sends is checked where streamed).

needs_rerun = pytest.mark.skipif(not RERUN_BIN.exists(), reason="real rerun 0.41 not installed in .venv-rerun")


def _img():
    return rr.Image(np.zeros((2, 2), np.uint8))


def _url(port: int) -> str:
    return f"rerun+http://127.0.0.1:{port}/proxy"


def _counts_in(messages) -> list[int]:
    """The row counts a loss message states (the total first, then per reason)."""
    return [int(n) for m in messages for n in re.findall(r"(\d+) row\(s\)", m)]


def _images(path) -> list[bytes]:
    return [bytes(buffer_row(c.components[IMAGE_BUFFER], i)) for c in rrd.read_rrd(path).chunks
            if IMAGE_BUFFER in c.components for i in range(c.num_rows)]


def test_streams_the_rrd_encoding():
    v = Viewer()
    rec = rr.RecordingStream("stream", recording_id="t1")
    sink = GrpcSink(_url(v.port))
    rec._set_sinks([sink])
    rec.log("a", _img())
    rec.log("b", _img())
    rec.flush()
    assert v.wait_for(lambda s: len(s.entities()) == 3)
    assert isinstance(v.msgs[0], rrd.StoreInfoMsg) and v.msgs[0].info.recording_id == "t1"
    assert sorted(v.entities()) == [PROPERTIES, "/a", "/b"]  # the recording's start time goes too
    assert sink.peer_problem == "" and sink.dropped == 0
    rec.close()
    assert v.problems == []
    v.close()


def test_streams_into_the_real_viewer_server():
    rows, lock = {}, threading.Lock()

    def on_chunks(chunks, peer):
        with lock:
            for c in chunks:
                rows[c.entity_path] = rows.get(c.entity_path, 0) + c.num_rows

    srv = ViewerServer(on_chunks, port=0).start()
    try:
        rec = rr.RecordingStream("stream-real")
        with warnings.catch_warnings():
            warnings.simplefilter("error", rr.PixelrunWarning)  # nothing is named or dropped
            rec.connect_grpc(_url(srv.port))
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
    sink = GrpcSink(_url(port), max_queue_bytes=5000, retry_secs=0.05)
    rec = rr.RecordingStream("stream", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    rec._set_sinks([sink])
    with pytest.warns(rr.DataLossWarning, match=rf"dropping data: no gRPC server listening at 127\.0\.0\.1:{port}"):
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
    sink = GrpcSink(_url(port), retry_secs=0.05)  # a queue large enough for all
    rec = rr.RecordingStream("stream", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    rec._set_sinks([sink])
    for i in range(20):
        rec.set_time("i", sequence=i)
        rec.log("a", _img())
    with pytest.warns(rr.DataLossWarning, match=r"20 row\(s\) in 20 chunk\(s\).*still queued at close"):
        rec.close(timeout=0.5)
    assert rec.dropped_rows == 20 and rec.dropped_chunks == 20 and sink.dropped == 20


def test_viewer_killed_mid_stream_drops_are_counted_and_reported():
    v = Viewer(close_after=1)  # takes one chunk, then every connection and the listener go
    sink = GrpcSink(_url(v.port), max_queue_bytes=3000, retry_secs=0.05)
    rec = rr.RecordingStream("stream", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
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
        assert wait_until(lambda: sink.dropped > 0)
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
    rec = rr.RecordingStream("stream", recording_id="t2")
    sink = GrpcSink(_url(port), retry_secs=0.05)
    rec._set_sinks([sink])
    rec.log("fmt", rr.components.ImageFormat(2, 2, color_model="L", channel_datatype="U8"), static=True)
    rec.log("before", _img())
    rec.flush()
    assert v1.wait_for(lambda s: "/before" in s.entities())
    v1.close()
    # The sink notices the ended call on its own (no send needed)...
    assert wait_until(lambda: not sink.connected)
    # ...and keeps what is logged meanwhile for the next viewer.
    for _ in range(20):
        rec.log("during", _img())
    rec.flush(timeout_sec=5)
    v2 = Viewer(port)
    rec.log("after", _img())
    rec.flush()
    assert v2.wait_for(lambda s: "/after" in s.entities() and s.rows("/during") == 20)
    # The new call starts with the store info and the static data.
    assert isinstance(v2.msgs[0], rrd.StoreInfoMsg) and v2.msgs[0].info.recording_id == "t2"
    assert "/fmt" in v2.entities()
    assert v2.rows("/during") == 20  # nothing logged while no viewer was there is lost
    assert sink.dropped == 0 and sink.connections >= 2
    rec.close()
    assert v2.problems == []
    v2.close()


@pytest.mark.parametrize("what, kw, named", [
    ("http/1 400", dict(on_data=b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n"), "an HTTP/1 server"),
    ("ssh", dict(on_connect=b"SSH-2.0-OpenSSH_9.6\r\n"), "it answered b'SSH-2.0"),
    ("closes at once", dict(close_at_once=True), "it closed the connection without answering"),
    ("silent", dict(), r"it sent nothing within 0\.3 s"),
])
def test_a_peer_that_answers_otherwise_is_named(what, kw, named):
    srv = Listener(**kw)
    sink = GrpcSink(_url(srv.port), retry_secs=0.05, handshake_timeout=0.3)
    rec = rr.RecordingStream("peer", batcher_config=rr.BatcherConfig(flush_num_rows=1), send_properties=False)
    with pytest.warns(rr.PixelrunWarning, match=rf"127\.0\.0\.1:{srv.port} is not a Rerun-compatible gRPC "
                                                rf"server: {named}"):
        rec._set_sinks([sink])  # the warning comes with the first SDK call after the check
        rec.log("x", _img())
        assert wait_until(lambda: sink.peer_problem != "")
        rec.log("x", _img())
    with pytest.warns(rr.DataLossWarning, match=r"2 row\(s\)"):
        rec.close(timeout=0.5)
    assert rec.dropped_rows == 2 and sink.connections == 0
    # nothing but the HTTP/2 preface ever went there: no data
    assert bytes(srv.received).replace(_H2_PREFACE, b"") == b""
    srv.close()


@needs_rerun
def test_reruns_own_server_takes_the_stream_now(tmp_path):
    """Rerun's gRPC server used to be named and refused (it spoke no raw TCP): one protocol now."""
    port = free_port()
    out = tmp_path / "rerun_saw.rrd"
    frame = np.random.default_rng(2).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    with RerunSaver(port, out) as server:
        rec = rr.RecordingStream("to-rerun", send_properties=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", rr.DataLossWarning)
            rec.connect_grpc(f"127.0.0.1:{port}")  # "host:port" too, as rr.connect(addr) always took
            rec.log("x", rr.Image(frame))
            rec.close()
        assert rec.dropped_rows == 0
        assert wait_until(lambda: out.exists() and _images(out) == [frame.tobytes()], 30)
        server.stop()


def test_connect_tcp_is_a_deprecated_alias_that_streams_over_grpc(monkeypatch):
    got = []
    srv = ViewerServer(lambda chunks, peer: got.extend(chunks), port=0).start()
    monkeypatch.setattr(recording_module, "_warned_tcp_retired", False)
    try:
        rec = rr.RecordingStream("alias", send_properties=False)
        with pytest.warns(rr.PixelrunWarning, match=r"connect_tcp\('127\.0\.0\.1:\d+'\) is deprecated: the raw "
                                                    r".*retired; streaming over gRPC to rerun\+http://127\.0\.0\.1:"
                                                    rf"{srv.port}/proxy"):
            rec.connect_tcp(f"127.0.0.1:{srv.port}")
        assert isinstance(rec._sinks[0], GrpcSink) and rec._sinks[0].url == _url(srv.port)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per process
            rr.connect_tcp(f"127.0.0.1:{srv.port}", recording=rec)
        rec.log("cam", _img())
        rec.close()
        assert rec.dropped_rows == 0
        assert wait_until(lambda: [c.entity_path for c in got] == ["/cam"])
    finally:
        srv.stop()


def test_connect_is_an_alias_of_connect_grpc():
    rec = rr.RecordingStream("alias2", send_properties=False)
    rec.connect("127.0.0.1:1")
    assert isinstance(rec._sinks[0], GrpcSink) and rec._sinks[0].addr == "127.0.0.1:1"
    rec.close(timeout=0.2)


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
    srv = Listener(on_data=b"HTTP/1.1 400 Bad Request\r\n\r\n")
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

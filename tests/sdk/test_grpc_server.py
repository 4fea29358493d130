"""gRPC into pixelrun's viewer: real rerun-sdk 0.41 scripts stream into `pixelrun view`
(and its server), the viewer restarting mid-stream, and hostile gRPC clients that
must never take the viewer down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_helpers import RERUN_BIN, RERUN_PY, kill_rerun, listening, start_rerun, wait_until

import pixelrun as rr
from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER, buffer_row
from pixelrun.engine.grpc import wire
from pixelrun.engine.viewer.server import ServerLimits, ViewerServer
from pixelrun.sinks import GrpcSink
from tests.net_helpers import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from test_viewer_window import LiveViewer, window_pixel

needs_rerun_sdk = pytest.mark.skipif(not RERUN_PY.exists(), reason="real rerun-sdk 0.41 not installed in .venv-rerun")


class Collect:
    def __init__(self, fail_first: bool = False) -> None:
        self.chunks: list = []
        self.peers: set = set()
        self.fail_first = fail_first

    def __call__(self, chunks, peer) -> None:
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("store exploded")
        self.chunks.extend(chunks)
        self.peers.add(peer)

    def images(self, entity: str = "/cam") -> list[bytes]:
        return [bytes(buffer_row(c.components[IMAGE_BUFFER], i)) for c in self.chunks
                if c.entity_path == entity and IMAGE_BUFFER in c.components for i in range(c.num_rows)]


@pytest.fixture
def server():
    sink = Collect()
    srv = ViewerServer(sink, port=0).start()
    srv.sink = sink
    yield srv
    srv.stop()


def _stream_good(port: int, n: int = 2, seed: int = 0) -> list[bytes]:
    frames = [np.random.default_rng(seed + i).integers(0, 255, (32, 48, 3), dtype=np.uint8) for i in range(n)]
    rec = rr.RecordingStream("good", recording_id=f"good-{seed}")
    rec.connect_grpc(f"rerun+http://127.0.0.1:{port}/proxy")
    for i, f in enumerate(frames):
        rec.set_time("t", sequence=i)
        rec.log("cam", rr.Image(f))
    rec.close()
    assert rec.dropped_rows == 0
    return [f.tobytes() for f in frames]


def _call(port: int, requests, timeout: float = 20.0):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return ch.stream_unary(wire.WRITE_MESSAGES)(iter(requests), timeout=timeout)


# ----------------------------------------------------------- real Rerun SDK in


RERUN_SCRIPT = r'''
import sys, numpy as np, rerun as rr
rr.init("from_rerun", recording_id="rerun-rid")
rr.connect_grpc(f"rerun+http://127.0.0.1:{sys.argv[1]}/proxy")
img = np.zeros((150, 200, 3), np.uint8)
img[:, :] = (255, 0, 0)
img[50:150, 50:150] = (0, 255, 0)
rr.log("logo", rr.Image(np.full((4, 4, 3), 7, np.uint8)), static=True)
for i in range(3):
    rr.set_time("frame", sequence=i)
    rr.log("cam", rr.Image(img if i == 2 else img // 2))
rr.disconnect()  # flushes and ends the stream
print("sent", flush=True)
'''


def _rerun_sdk(port: int, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "rerun_script.py"
    script.write_text(RERUN_SCRIPT)
    env = dict(os.environ, RERUN_TELEMETRY_ENABLED="false")
    return subprocess.run([str(RERUN_PY), str(script), str(port)], capture_output=True, text=True,
                          timeout=120, env=env)


@needs_rerun_sdk
def test_rerun_sdk_streams_into_the_viewer_server(server, tmp_path):
    r = _rerun_sdk(server.port, tmp_path)
    assert r.returncode == 0 and "sent" in r.stdout, r.stderr
    assert wait_until(lambda: len(server.sink.images()) == 3)
    img = np.zeros((150, 200, 3), np.uint8)
    img[:, :] = (255, 0, 0)
    img[50:150, 50:150] = (0, 255, 0)
    assert server.sink.images() == [(img // 2).tobytes()] * 2 + [img.tobytes()]
    assert server.sink.images("/logo") == [np.full((4, 4, 3), 7, np.uint8).tobytes()]
    s = server.stats_snapshot()
    assert s.messages_malformed == 0 and s.connections_dropped == 0 and s.errors == []


@needs_rerun_sdk
def test_rerun_sdk_into_pixelrun_view_shows_the_image(xvfb_display, tmp_path):
    viewer = LiveViewer(tmp_path)
    try:
        r = _rerun_sdk(viewer.port, tmp_path)
        assert r.returncode == 0 and "sent" in r.stdout, r.stderr

        def shows(png) -> bool:
            return window_pixel(png, 10, 10) == (255, 0, 0, 255) and window_pixel(png, 100, 100) == (0, 255, 0, 255)

        png = viewer.screenshot_until(shows)
        assert window_pixel(png, 10, 10) == (255, 0, 0, 255)
        assert window_pixel(png, 100, 100) == (0, 255, 0, 255)
        assert viewer.proc.poll() is None
    finally:
        viewer.stop()


# ----------------------------------------------------- the viewer goes and comes


def test_viewer_restarted_mid_stream_gets_the_rest_and_the_static_data():
    port = free_port()
    first = Collect()
    srv = ViewerServer(first, port=port).start()
    rec = rr.RecordingStream("restart", recording_id="restart-rid")
    sink = GrpcSink(f"rerun+http://127.0.0.1:{port}/proxy", retry_secs=0.05)
    rec._set_sinks([sink])
    frames = [np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8) for i in range(6)]
    static = np.full((4, 4, 3), 9, np.uint8)
    rec.log("logo", rr.Image(static), static=True)
    for i in range(3):
        rec.set_time("t", sequence=i)
        rec.log("cam", rr.Image(frames[i]))
    rec.flush()
    assert wait_until(lambda: len(first.images()) == 3)
    srv.stop()  # the viewer goes away mid-stream
    assert wait_until(lambda: not sink.connected, 10)
    for i in range(3, 6):
        rec.set_time("t", sequence=i)
        rec.log("cam", rr.Image(frames[i]))
    second = Collect()
    srv = ViewerServer(second, port=port).start()  # and comes back on the same port
    try:
        assert wait_until(lambda: len(second.images()) == 3)
        rec.close()
        assert rec.dropped_rows == 0 and sink.connections == 2
        assert second.images() == [f.tobytes() for f in frames[3:]]
        assert second.images("/logo") == [static.tobytes()]  # resent on the new connection
    finally:
        srv.stop()


# ------------------------------------------------------------ hostile clients


def test_a_malformed_request_ends_that_call_only(server):
    with pytest.raises(grpc.RpcError) as err:
        _call(server.port, [b"\x12\x00"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tag byte 0x12" in err.value.details()
    assert wait_until(lambda: server.stats.messages_malformed == 1)
    assert "tag byte" in server.stats.last_error
    assert server.sink.images() == [] and _stream_good(server.port) == server.sink.images()


def test_an_undecodable_message_ends_that_call_only(server):
    store = rrd.StoreInfo("hostile", "h")
    bad = rrd.message_header(rrd.KIND_ARROW_MSG, 5) + b"\xff" * 5
    with pytest.raises(grpc.RpcError) as err:
        _call(server.port, [wire.request_from_frame([rrd.encode_store_info(store)]), wire.request_from_frame([bad])])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _stream_good(server.port) == server.sink.images()


def test_a_message_over_the_limit_is_refused_and_the_viewer_goes_on():
    sink = Collect()
    srv = ViewerServer(sink, port=0, limits=ServerLimits(max_message_bytes=1 << 20,
                                                        max_inflight_bytes=1 << 21)).start()
    try:
        rec = rr.RecordingStream("big")
        gs = GrpcSink(f"rerun+http://127.0.0.1:{srv.port}/proxy", retry_secs=0.05)
        rec._set_sinks([gs])
        noise = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
        rec.log("cam", rr.Image(noise))  # 3 MiB that LZ4 cannot shrink: over the limit
        assert wait_until(lambda: gs.dropped == 1, 20)
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            rec.close(timeout=1)
        assert rec.dropped_rows == 1 and gs.peer_problem == ""  # the message, not the server, is refused
        assert any("refuses a message of this size" in str(w.message) for w in got)
        assert wait_until(lambda: srv.stats.messages_too_large == 1)  # the viewer counts it too
        assert _stream_good(srv.port) == sink.images()
    finally:
        srv.stop()


def test_a_failing_callback_ends_that_call_only():
    sink = Collect(fail_first=True)
    srv = ViewerServer(sink, port=0).start()
    try:
        store = rrd.StoreInfo("cb", "cb")
        rec = rr.RecordingStream("cb")
        mem = rec.memory_recording()
        rec.set_time("t", sequence=0)
        rec.log("cam", rr.Image(np.zeros((2, 2, 3), np.uint8)))
        chunk = rrd.read_rrd(mem.rrd_bytes()).chunks[0]
        rec.close()
        enc = rrd.encode_chunk(chunk, store)
        with pytest.raises(grpc.RpcError) as err:
            _call(srv.port, [wire.request_from_frame([rrd.encode_store_info(store)]),
                             wire.request_from_frame(enc.parts)])
        assert err.value.code() == grpc.StatusCode.INTERNAL and "store exploded" in err.value.details()
        assert _stream_good(srv.port) == sink.images()
    finally:
        srv.stop()


def _h2_socket(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    return s


def _closed(s: socket.socket, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def test_garbage_after_the_http2_preface_closes_that_connection(server):
    s = _h2_socket(server.port)
    s.sendall(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert _closed(s)
    s.close()
    assert _stream_good(server.port) == server.sink.images()


def test_a_silent_grpc_connection_times_out():
    sink = Collect()
    srv = ViewerServer(sink, port=0, limits=ServerLimits(idle_timeout_s=0.5, handshake_timeout_s=1)).start()
    try:
        s = _h2_socket(srv.port)
        assert _closed(s)
        s.close()
        assert wait_until(lambda: srv.stats.connections_timed_out == 1)
        assert "idle" in srv.stats.last_error
    finally:
        srv.stop()


def test_idle_grpc_connections_cannot_lock_out_a_real_client():
    sink = Collect()
    srv = ViewerServer(sink, port=0, limits=ServerLimits(max_connections=2)).start()
    try:
        idle = [_h2_socket(srv.port) for _ in range(2)]
        assert wait_until(lambda: srv.stats.connections_open == 2)
        assert _stream_good(srv.port) == sink.images()  # evicts idle ones to get in
        assert srv.stats.connections_evicted >= 1
        for s in idle:
            s.close()
    finally:
        srv.stop()


def _answer_to_raw_bytes(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """What a server sends a TCP client that opens with `data`, until it closes (or `timeout`)."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            while part := s.recv(65536):
                got += part
        except (socket.timeout, ConnectionResetError):
            pass
    return got


def test_a_raw_tcp_client_gets_http_400_as_from_rerun_and_the_viewer_goes_on(server, tmp_path):
    raw = rrd.encode_recording(rrd.StoreInfo("raw", "raw"), [])  # pixelrun's former raw .rrd stream
    got = _answer_to_raw_bytes(server.port, raw)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    assert b"connection: close" in head and b"gRPC" in body and b"rr.connect_grpc" in body
    assert wait_until(lambda: server.stats.connections_not_grpc == 1)
    assert "not a gRPC client" in server.stats.last_error and "RRF2" in server.stats.last_error
    assert _stream_good(server.port) == server.sink.images()
    if RERUN_BIN.exists():  # Rerun's own gRPC server answers the same bytes with the same status line
        port = free_port()
        proc = start_rerun(["--serve-grpc", "--port", str(port)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: listening(port), 60)
            theirs = _answer_to_raw_bytes(port, raw)
        finally:
            kill_rerun(proc)  # nothing to save: no need for an orderly end
        assert theirs.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request", theirs


# --------------------------------------------- the same script, both SDKs, one viewer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _images_by_entity(collect: Collect) -> dict:
    """entity -> sorted list of (format struct, buffer bytes) of every Image row received."""
    from pixelrun.engine.chunk import IMAGE_FORMAT

    out: dict = {}
    for c in collect.chunks:
        if IMAGE_BUFFER not in c.components:
            continue
        fmts = c.components.get(IMAGE_FORMAT)
        for i in range(c.num_rows):
            buf = buffer_row(c.components[IMAGE_BUFFER], i)
            if buf is None:
                continue
            fmt = fmts[i].as_py() if fmts is not None else None
            out.setdefault(c.entity_path, []).append((repr(fmt), bytes(buf)))
    return {k: sorted(v) for k, v in out.items()}


@needs_rerun_sdk
@pytest.mark.parametrize("example", ["current_image_simple", "current_image_formats", "current_image_send_columns"])
def test_an_example_sends_the_same_images_through_pixelrun_and_rerun_sdks(example, tmp_path):
    # Rerun's documented form of the blob column (the example's 4-D array is pixelrun's extension)
    source = (EXAMPLES / f"{example}.py").read_text().replace(
        "rr.Image.columns(buffer=images)", "rr.Image.columns(buffer=images.view(np.uint8).reshape(len(times), -1))")
    got = {}
    for sdk in ("pixelrun", "rerun"):
        sink = Collect()
        srv = ViewerServer(sink, port=0).start()
        try:
            if sdk == "pixelrun":  # unchanged: spawn() finds the viewer through PIXELRUN_PORT and streams over gRPC
                cmd, text = [sys.executable], source
            else:  # Rerun's spawn() has no port setting: connect to the same viewer instead
                cmd = [str(RERUN_PY)]
                text = source.replace("import pixelrun as rr", "import rerun as rr").replace(
                    "rr.spawn()", f"rr.connect_grpc('rerun+http://127.0.0.1:{srv.port}/proxy')")
                text += "\nrr.disconnect()\n"
            script = tmp_path / f"{sdk}_{example}.py"
            script.write_text(text)
            env = dict(os.environ, PIXELRUN_PORT=str(srv.port), RERUN_TELEMETRY_ENABLED="false")
            env.pop("PIXELRUN_SAVE", None)
            r = subprocess.run([*cmd, str(script)], capture_output=True, text=True, timeout=120, env=env)
            assert r.returncode == 0, r.stderr
            assert "Warning" not in r.stderr, r.stderr
            assert wait_until(lambda sink=sink, srv=srv: sink.chunks and srv.stats.connections_open == 0, 30)
            got[sdk] = _images_by_entity(sink)
        finally:
            srv.stop()
    assert got["pixelrun"] and got["pixelrun"] == got["rerun"]


def test_one_connection_cannot_take_every_call_slot():
    """A client that opens many idle calls on one connection gets a few; others still get in."""
    import threading

    sink = Collect()
    srv = ViewerServer(sink, port=0, limits=ServerLimits(max_connections=3)).start()
    stop = threading.Event()

    def idle():
        while not stop.is_set():
            stop.wait(0.1)
        return
        yield  # a request generator that never yields: the call stays open, idle

    ch = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    try:
        method = ch.stream_unary(wire.WRITE_MESSAGES)
        hogs = [method.future(idle()) for _ in range(12)]  # 12 calls: 3 connections' worth of slots
        time.sleep(0.5)
        assert _stream_good(srv.port) == sink.images()  # a real client is still served
        assert not any(h.done() and h.exception() is None for h in hogs)
    finally:
        stop.set()
        ch.close()
        srv.stop()

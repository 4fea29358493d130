"""The viewer's gRPC listener against hostile and degenerate clients.

Every test keeps a good client in the picture: while the hostile ones do their worst,
a real frame sent by a gRPC client on a fresh connection must still arrive (a bounded
wait, not a timing), byte for byte. Raw sockets stand in for clients that never send
the HTTP/2 preface, and tests/net_helpers.py's bare HTTP/2 client for those that send
it and then misbehave. Memory is checked by what the server reserves (the in-flight
counters) and what the decoder is asked to inflate, never by time.
"""

from __future__ import annotations

import socket
import threading
import time

import grpc
import lz4.block
import numpy as np
import pytest
from viewer_helpers import Sink, image_chunk, in_background, rrd_stream, wait_until

from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER
from pixelrun.engine.rrd import ipc
from pixelrun.engine.viewer import server as vs
from pixelrun.engine.viewer.server import GRPC_CALLS_PER_CONNECTION, RrdStreamDecoder, ServerLimits, ViewerServer
from pixelrun.kernels.formats import ImageFormat
from tests.net_helpers import H2_PREFACE, H2Conn, grpc_send, rrd_messages

RGB = ImageFormat(4, 3, color_model="RGB", channel_datatype="U8")
MiB = 1 << 20
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


@pytest.fixture
def servers():
    """Factory: a started server with the given ServerLimits fields; stopped after."""
    made = []

    def make(decoder_factory=None, on_chunks=None, **limits):
        sink = Sink()
        srv = ViewerServer(on_chunks or sink, port=0, limits=ServerLimits(**limits),
                           decoder_factory=decoder_factory).start()
        srv.sink = sink
        made.append(srv)
        return srv

    yield make
    for srv in made:
        assert srv.stop(timeout=10), "server threads did not exit"


@pytest.fixture
def clients():
    """Raw sockets (and bare HTTP/2 connections) opened by a test, closed after it."""
    socks = []

    def connect(port, h2=False, preface=True):
        s = H2Conn(port, preface=preface) if h2 else socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        return s

    yield connect
    for s in socks:
        s.close()


def _buffer_bytes(chunk) -> bytes:
    return bytes(chunk.components[IMAGE_BUFFER].to_pylist()[0][0])


def store_info(rec: str = "hostile", compressed: bool = False) -> bytes:
    """The SetStoreInfo message every SDK sends first."""
    return rrd.encode_store_info(rrd.StoreInfo("test", rec), row_id=(1, 1))


def assert_good_frame_arrives(srv) -> None:
    """A real gRPC client's frame, sent now on a fresh connection, arrives intact."""
    px = np.random.default_rng(len(srv.sink)).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    before = len(srv.sink)
    grpc_send(srv.port, rrd_messages(rrd_stream([image_chunk("good", px, RGB, step=1)], rec="good")))
    assert wait_until(lambda: len(srv.sink) > before), srv.stats_snapshot().status_line()
    assert _buffer_bytes(srv.sink.chunks[before]) == px.tobytes()


def closed_by_server(s, timeout: float = 20.0) -> bool:
    """The server closed `s` (a raw socket or an H2Conn: EOF or reset) within `timeout` s."""
    if isinstance(s, H2Conn):
        return s.wait_closed(timeout)
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def big_image(nbytes: int, step: int = 0, entity: str = "big", fill=None):
    """An RGBA image chunk of about `nbytes` pixel bytes (zeros unless `fill`)."""
    w = 256
    h = max(1, nbytes // (w * 4))
    px = np.zeros(w * h * 4, np.uint8) if fill is None else fill(w * h * 4)
    return image_chunk(entity, px, ImageFormat(w, h, color_model="RGBA", channel_datatype="U8"), step=step), px


def encoded_message(chunk, compression: bool = False) -> bytes:
    enc = rrd.RrdEncoder(rrd.StoreInfo("test", "hostile"), compression=compression)
    return b"".join(bytes(p) for p in enc.chunk(chunk))


def in_thread(target, *args) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


# --------------------------------------------------------------- many connections


def test_64_idle_pre_preface_connections_do_not_lock_out_a_real_client(servers, clients):
    srv = servers()  # the defaults: 64 connections, 10 s handshake
    for _ in range(70):
        clients(srv.port)
    assert wait_until(lambda: srv.stats.connections_total == 70)
    assert_good_frame_arrives(srv)
    # 71 arrivals for 64 places: 7 idle ones made room, nobody was refused
    assert wait_until(lambda: srv.stats.connections_evicted == 7), srv.stats_snapshot().status_line()
    assert srv.stats.connections_refused == 0
    assert srv.stats.connections_open <= 64
    assert "no HTTP/2 preface yet" in srv.stats.last_error


def test_connections_that_sent_only_the_preface_still_make_room(servers, clients):
    srv = servers(max_connections=8)
    held = []
    for _ in range(8):  # preface + SETTINGS, then nothing: not yet a data source
        c = clients(srv.port, h2=True)
        assert c.settings()  # relayed: grpcio answered
        held.append(c)
    assert_good_frame_arrives(srv)
    assert wait_until(lambda: srv.stats.connections_evicted == 1)
    assert closed_by_server(held[0])  # the one idle the longest went
    assert "no chunk yet" in srv.stats.last_error


def test_when_every_connection_delivers_data_a_newcomer_is_refused_and_counted(servers, clients):
    srv = servers(max_connections=3)
    for k in range(3):  # three calls that delivered a chunk and stay open
        c = clients(srv.port, h2=True)
        c.open_call(1)
        for m in rrd_messages(rrd_stream([image_chunk(f"live{k}", np.zeros((3, 4, 3), np.uint8), RGB, step=0)],
                                         rec=f"live-{k}", end=False)):
            c.send_message(1, m)
    assert wait_until(lambda: len(srv.sink) == 3)
    extra = clients(srv.port)
    assert closed_by_server(extra)
    assert wait_until(lambda: srv.stats.connections_refused == 1)
    assert srv.stats.connections_evicted == 0
    assert "refused" in srv.stats_snapshot().status_line()


def test_sdk_client_gets_its_frames_through_70_idle_connections(servers, clients):
    import pixelrun as rr

    srv = servers()
    for _ in range(70):
        clients(srv.port)
    assert wait_until(lambda: srv.stats.connections_total == 70)
    rec = rr.new_recording("hostile_sdk", recording_id="sdk-1")
    try:
        rec.connect_grpc(f"rerun+http://127.0.0.1:{srv.port}/proxy")
        px = np.random.default_rng(3).integers(0, 256, (3, 4, 3), dtype=np.uint8)
        rec.set_time("step", sequence=0)
        rec.log("sdk/cam", rr.Image(px))
        rec.flush(timeout_sec=10)
        assert wait_until(lambda: any(c.entity_path.strip("/") == "sdk/cam" for c in list(srv.sink.chunks)))
    finally:
        rec.disconnect()


def test_a_connection_holds_at_most_a_few_calls(servers, clients):
    srv = servers()
    c = clients(srv.port, h2=True)
    assert c.settings()[3] == GRPC_CALLS_PER_CONNECTION  # SETTINGS_MAX_CONCURRENT_STREAMS
    streams = [1 + 2 * k for k in range(GRPC_CALLS_PER_CONNECTION + 1)]
    for sid in streams:
        c.open_call(sid)
    assert c.wait_call_end(streams[-1])[0] == "rst"  # one past the limit is reset
    assert all(c.call_end(sid) is None for sid in streams[:-1])  # the others stay open
    assert wait_until(lambda: srv.stats.calls_open == GRPC_CALLS_PER_CONNECTION)
    assert_good_frame_arrives(srv)


# ------------------------------------------------------------------ timeouts


def test_a_silent_connection_is_closed_after_the_handshake_timeout(servers, clients):
    srv = servers(handshake_timeout_s=1)
    s = clients(srv.port)
    assert closed_by_server(s)
    assert wait_until(lambda: srv.stats.connections_timed_out == 1)
    assert "no HTTP/2 preface" in srv.stats.last_error and "0 of 24 bytes" in srv.stats.last_error


def test_a_connection_that_sends_the_preface_then_nothing_is_closed_when_idle(servers, clients):
    srv = servers(idle_timeout_s=1)
    c = clients(srv.port, h2=True)
    assert closed_by_server(c)
    assert wait_until(lambda: srv.stats.connections_timed_out == 1)
    assert "idle" in srv.stats.last_error


def test_a_real_connection_silent_past_the_idle_timeout_is_closed(servers, clients):
    srv = servers(idle_timeout_s=1)
    c = clients(srv.port, h2=True)
    c.open_call(1)
    for m in rrd_messages(rrd_stream([image_chunk("once", np.zeros((3, 4, 3), np.uint8), RGB, step=0)], end=False)):
        c.send_message(1, m)
    assert wait_until(lambda: len(srv.sink) == 1)
    assert closed_by_server(c)
    assert wait_until(lambda: srv.stats.connections_timed_out == 1)
    assert "idle" in srv.stats.last_error
    assert wait_until(lambda: srv.stats.calls_open == 0)  # its call ended with it


def test_slowloris_prefaces_are_timed_out_while_a_real_client_is_served(servers, clients):
    srv = servers(handshake_timeout_s=2)
    socks = [clients(srv.port) for _ in range(8)]

    def trickle(stop):  # one byte of the preface per second, to each connection
        for i in range(len(H2_PREFACE)):
            if stop.wait(1.0):
                return
            for s in socks:
                try:
                    s.send(H2_PREFACE[i : i + 1])
                except OSError:
                    pass

    with in_background(trickle):
        assert_good_frame_arrives(srv)
        assert all(closed_by_server(s) for s in socks)
        assert wait_until(lambda: srv.stats.connections_timed_out == 8), srv.stats_snapshot().status_line()
    assert srv.stats.connections_not_grpc == 0
    assert "no HTTP/2 preface" in srv.stats.last_error


def test_a_message_stalled_halfway_holds_no_budget_and_goes_with_the_idle_timeout(servers, clients):
    srv = servers(max_message_bytes=8 * MiB, max_inflight_bytes=8 * MiB, idle_timeout_s=2)
    chunk, px = big_image(6 * MiB, entity="waiting", fill=lambda n: np.full(n, 7, np.uint8))
    msg = encoded_message(chunk)
    holder = clients(srv.port, h2=True)
    holder.open_call(1)
    holder.send_message(1, store_info())
    holder.send_message(1, msg, cut=1000)  # 1000 bytes of a 6 MiB message, then nothing
    assert wait_until(lambda: srv.stats.messages_received == 1)
    # another client's 6 MiB message does not wait for the stalled one: budget is only
    # reserved for whole messages
    grpc_send(srv.port, [store_info("waiter"), msg])
    assert wait_until(lambda: len(srv.sink) == 1), srv.stats_snapshot().status_line()
    assert _buffer_bytes(srv.sink.chunks[0]) == px.tobytes()
    assert closed_by_server(holder)
    assert wait_until(lambda: srv.stats.connections_timed_out == 1)
    assert srv.stats.inflight_bytes == 0


# ------------------------------------------------------------ sizes and memory


@pytest.mark.parametrize("claim", [16 * MiB + 65, 1 << 31, (1 << 32) - 1])  # +64: the request's own framing
def test_a_declared_length_over_the_limit_is_refused_before_its_bytes_arrive(servers, clients, claim):
    srv = servers(max_message_bytes=16 * MiB, max_inflight_bytes=32 * MiB)
    c = clients(srv.port, h2=True)
    c.open_call(1)
    c.send_message(1, store_info())
    c.send_message(1, encoded_message(big_image(1000)[0]), declared=claim, cut=100)  # 100 bytes follow
    assert c.wait_call_end(1) == ("grpc-status", RESOURCE_EXHAUSTED)  # at once: no body is waited for
    assert str(claim) in c.grpc_message(1) and "larger than max" in c.grpc_message(1)
    assert srv.stats.inflight_peak_bytes == 0 and len(srv.sink) == 0
    # the listener saw the claim pass and counted the refusal, naming the size
    assert wait_until(lambda: srv.stats.messages_too_large == 1)
    assert f"declaring {claim} bytes" in srv.stats.last_error and "127.0.0.1:" in srv.stats.last_error
    assert_good_frame_arrives(srv)


def test_three_parallel_huge_messages_share_one_in_flight_budget(servers):
    budget = 10 * MiB
    srv = servers(max_message_bytes=8 * MiB, max_inflight_bytes=budget)
    msgs, pixels = [], []
    for k in range(3):
        chunk, px = big_image(6 * MiB, entity=f"huge{k}", fill=lambda n, k=k: np.full(n, k + 1, np.uint8))
        msgs.append(encoded_message(chunk))
        pixels.append(px)
    senders = [in_thread(grpc_send, srv.port, [store_info(f"huge-{k}"), m]) for k, m in enumerate(msgs)]
    assert wait_until(lambda: len(srv.sink) == 3), srv.stats_snapshot().status_line()
    for t in senders:
        t.join(20)
    got = {c.entity_path.strip("/"): _buffer_bytes(c) for c in srv.sink.chunks}
    assert all(got[f"huge{k}"] == pixels[k].tobytes() for k in range(3))
    # one 6 MiB message at a time fits in 10 MiB: the other two waited instead of adding up
    assert 6 * MiB <= srv.stats.inflight_peak_bytes <= budget
    assert srv.stats.inflight_bytes == 0
    assert srv.stats.connections_total == 3  # three clients, three connections


def _h2_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def _grpc_message(body: bytes, declared=None) -> bytes:
    return b"\x00" + (len(body) if declared is None else declared).to_bytes(4, "big") + body


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_the_relay_follows_grpc_messages_through_http2_frames(piece):
    """_H2Watch: message prefixes found across frames, padding and interleaved streams,
    whatever pieces the bytes come in; over-limit claims reported; cut-short calls counted."""
    msgs = {1: [b"a" * 300, b"b" * 5], 3: [b"c" * 1000], 5: [b"d" * 50]}
    stream1 = b"".join(_grpc_message(m) for m in msgs[1])
    data = b"".join([
        _h2_frame(4, 0, 0, b""),  # SETTINGS
        _h2_frame(1, 4, 1, b"\x00" * 20), _h2_frame(1, 4, 3, b"\x00" * 20), _h2_frame(1, 4, 5, b"\x00" * 20),
        _h2_frame(0, 0, 1, stream1[:3]),  # a prefix split across frames
        _h2_frame(0, 0x8, 3, bytes([9]) + _grpc_message(msgs[3][0])[:600] + b"\xee" * 9),  # padded: 9 bytes
        _h2_frame(0, 0, 1, stream1[3:200]),
        _h2_frame(0, 0, 5, _grpc_message(b"", declared=999)),  # over the limit of 500
        _h2_frame(0, 0x1, 1, stream1[200:]),  # ends stream 1 on a message boundary
        _h2_frame(0, 0, 3, _grpc_message(msgs[3][0])[600:]),
        _h2_frame(0, 0x8, 3, bytes([0]) + _grpc_message(b"e" * 20)[:10]),  # padded, no padding; cut short
        _h2_frame(3, 0, 3, (8).to_bytes(4, "big")),  # RST_STREAM CANCEL inside that message
        _h2_frame(0, 0, 7, _grpc_message(b"f" * 100)[:30]),  # the connection ends inside this one
    ])
    watch = vs._H2Watch(limit=564)  # stream 3's 1000-byte message and stream 5's claim are over it
    refused = []
    for i in range(0, len(data), piece):
        watch.feed(memoryview(data)[i : i + piece])
        refused += watch.take_refused()
    assert refused == [(3, 1000), (5, 999)]
    assert watch.truncated == 0  # stream 3 was refused, not cut short, when it was reset
    assert watch.mid_message() == 1  # stream 7
    watch2 = vs._H2Watch(limit=10_000)
    for i in range(0, len(data), piece):
        watch2.feed(memoryview(data)[i : i + piece])
    assert watch2.take_refused() == [] and watch2.truncated == 1 and watch2.mid_message() == 2  # 7, and 5's 999


class _DecompressSpy:
    """Wraps both ways the decoder inflates LZ4 (python-lz4's decompress, and the native
    call into a pooled buffer that engine/rrd/ipc.py makes for large payloads): the
    sizes asked for and the most at once."""

    def __init__(self, monkeypatch, delay: float = 0.0):
        self.delay = delay
        self.lock = threading.Lock()
        self.sizes, self.active, self.most = [], 0, 0
        real_block = lz4.block.decompress
        native = ipc._native_lz4()
        monkeypatch.setattr(lz4.block, "decompress",
                            lambda *a, **k: self._call(k.get("uncompressed_size", -1), real_block, a, k))
        if native is not None:
            monkeypatch.setattr(ipc, "_native_lz4", lambda: lambda *a: self._call(a[3], native, a, {}))

    def _call(self, size, fn, args, kwargs):
        with self.lock:
            self.sizes.append(size)
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(self.delay)  # widen the window in which decodes could overlap
            return fn(*args, **kwargs)
        finally:
            with self.lock:
                self.active -= 1


def test_an_lz4_bomb_past_the_limit_is_refused_before_inflating(servers, monkeypatch):
    spy = _DecompressSpy(monkeypatch)
    limit = 8 * MiB
    srv = servers(max_message_bytes=limit, max_inflight_bytes=2 * limit, max_decompressed_bytes=limit)
    chunk, _ = big_image(64 * MiB)  # zeros: 64 MiB of pixels in ~0.3 MB of LZ4
    bomb = encoded_message(chunk, compression=True)
    assert len(bomb) < limit // 16
    with pytest.raises(grpc.RpcError) as err:
        grpc_send(srv.port, [store_info("bomb"), bomb])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert wait_until(lambda: srv.stats.messages_malformed == 1)
    assert srv.stats.calls_dropped == 1
    assert all(size <= limit for size in spy.sizes), spy.sizes
    assert len(srv.sink) == 0
    assert_good_frame_arrives(srv)


def test_parallel_lz4_messages_inflate_one_at_a_time(servers, monkeypatch):
    spy = _DecompressSpy(monkeypatch, delay=0.3)
    srv = servers(max_message_bytes=8 * MiB, max_inflight_bytes=16 * MiB)

    def half_random(n):  # compresses about 2:1, like camera data, not a bomb
        rng = np.random.default_rng(n)
        blocks = rng.integers(0, 256, (n // 2048, 1024), dtype=np.uint8)
        return np.concatenate([blocks, np.zeros_like(blocks)], axis=1).reshape(-1)

    data = [encoded_message(big_image(4 * MiB, entity=f"z{k}", fill=half_random)[0], compression=True)
            for k in range(3)]
    senders = [in_thread(grpc_send, srv.port, [store_info(f"lz4-{k}"), d]) for k, d in enumerate(data)]
    assert wait_until(lambda: len(srv.sink) == 3), srv.stats_snapshot().status_line()
    assert len(spy.sizes) == 3, "the decoder inflates LZ4 some other way now: update this spy"
    assert spy.most == 1
    for t in senders:
        t.join(20)


# ------------------------------------------------------------- decoding


class _RecordingDecoder(RrdStreamDecoder):
    feeds: list = []

    def feed(self, data):
        self.feeds.append(len(data))
        return super().feed(data)


def test_each_message_reaches_the_decoder_whole_in_one_feed(servers):
    _RecordingDecoder.feeds = []
    srv = servers(decoder_factory=lambda: _RecordingDecoder(64 * MiB), max_message_bytes=64 * MiB,
                  max_inflight_bytes=64 * MiB)
    chunk, _ = big_image(24 * MiB, fill=lambda n: np.full(n, 9, np.uint8))
    msg = encoded_message(chunk)
    grpc_send(srv.port, [store_info(), msg])
    assert wait_until(lambda: len(srv.sink) == 1)
    # the call's stream header, the store info, the 24 MiB message: three feeds, no partial pieces
    assert _RecordingDecoder.feeds == [12, len(store_info()), len(msg)]


def _arrow(body: bytes) -> bytes:
    return rrd.message_header(rrd.KIND_ARROW_MSG, len(body)) + body


DEGENERATE = {
    "no messages": ([], "closed"),
    "store info only": ([store_info()], "closed"),
    "zero-length ArrowMsg": ([store_info(), _arrow(b"")], "malformed"),
    "undecodable ArrowMsg": ([store_info(), _arrow(b"\xff" * 40)], "malformed"),
    "ArrowMsg before any store info": ([encoded_message(big_image(1000)[0])], "closed"),
    "5000 store infos": ([store_info()] * 5000, "closed"),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_calls_are_handled_and_counted(servers, name):
    msgs, fate = DEGENERATE[name]
    srv = servers()
    if fate == "malformed":
        with pytest.raises(grpc.RpcError) as err:
            grpc_send(srv.port, msgs)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert wait_until(lambda: srv.stats.messages_malformed == 1)
        assert srv.stats.calls_dropped == 1
    else:
        grpc_send(srv.port, msgs)
        assert srv.stats.calls_dropped == 0 and srv.stats.messages_malformed == 0
        assert srv.stats.messages_received == len(msgs)
    assert wait_until(lambda: srv.stats.connections_open == 0 and srv.stats.calls_open == 0)
    assert srv.stats.connections_dropped == 0
    assert srv.stats.inflight_bytes == 0
    assert_good_frame_arrives(srv)


# ------------------------------------------------------------------ shutdown


def test_stop_is_bounded_with_connections_in_every_state(servers, clients):
    entered, release = threading.Event(), threading.Event()

    class SlowDecoder(RrdStreamDecoder):  # holds the in-flight budget while "decoding" the first big message
        def feed(self, data):
            if len(data) > MiB and not entered.is_set():
                entered.set()
                release.wait(20)
            return super().feed(data)

    srv = servers(decoder_factory=lambda: SlowDecoder(8 * MiB), max_message_bytes=8 * MiB,
                  max_inflight_bytes=8 * MiB)
    clients(srv.port)  # silent, before the preface
    clients(srv.port).sendall(H2_PREFACE[:10])  # half a preface
    assert clients(srv.port, h2=True).settings()  # preface, then idle
    mid = clients(srv.port, h2=True)  # a call inside a message
    mid.open_call(1)
    mid.send_message(1, store_info())
    mid.send_message(1, encoded_message(big_image(2 * MiB)[0]), cut=4096)
    msg = encoded_message(big_image(6 * MiB)[0])
    decoding = in_thread(lambda: pytest.raises(grpc.RpcError, grpc_send, srv.port, [store_info("a"), msg]))
    assert entered.wait(20)  # a call decoding, holding 6 MiB of the 8 MiB budget
    waiting = in_thread(lambda: pytest.raises(grpc.RpcError, grpc_send, srv.port, [store_info("b"), msg]))
    assert wait_until(lambda: srv.stats.connections_open == 6 and srv.stats.calls_open == 3)
    in_thread(lambda: (time.sleep(0.5), release.set()))  # the decode ends while stop waits
    assert srv.stop(timeout=5) is True
    assert srv.stats.connections_open == 0 and srv.stats.calls_open == 0
    assert srv.stats.inflight_bytes == 0
    decoding.join(10)
    waiting.join(10)


def test_stop_returns_within_its_bound_while_a_callback_hangs(servers):
    release = threading.Event()
    entered = threading.Event()

    def stuck(chunks, peer):
        entered.set()
        release.wait(30)  # the viewer's ingest, stuck

    srv = ViewerServer(stuck, port=0).start()
    try:
        sender = in_thread(lambda: pytest.raises(grpc.RpcError, grpc_send, srv.port,
                                                 rrd_messages(rrd_stream([image_chunk(
                                                     "x", np.zeros((3, 4, 3), np.uint8), RGB, step=0)]))))
        assert entered.wait(20)
        assert srv.stop(timeout=1) is False  # reports the busy call instead of hanging
    finally:
        release.set()
    sender.join(10)


def test_a_failing_callback_ends_that_call_only(servers):
    calls = []

    def boom(chunks, peer):
        calls.append(peer)
        if len(calls) == 1:
            raise RuntimeError("store exploded")

    srv = servers(on_chunks=boom)
    msgs = rrd_messages(rrd_stream([image_chunk("x", np.zeros((3, 4, 3), np.uint8), RGB, step=0)]))
    with pytest.raises(grpc.RpcError) as err:
        grpc_send(srv.port, msgs)
    assert err.value.code() == grpc.StatusCode.INTERNAL and "store exploded" in err.value.details()
    assert wait_until(lambda: srv.stats.calls_dropped == 1)
    assert srv.stats.connections_dropped == 0 and "store exploded" in srv.stats.last_error
    grpc_send(srv.port, msgs)
    assert wait_until(lambda: len(calls) == 2)

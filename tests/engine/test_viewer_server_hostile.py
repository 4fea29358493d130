"""The viewer's TCP listener against hostile and degenerate clients.

Every test keeps a good client in the picture: while the hostile ones do their worst,
a real frame sent on a fresh connection must still arrive (a bounded wait, not a
timing), byte for byte. Memory is checked by what the server allocates and reserves
(tracemalloc, the in-flight counters), ingest cost by what is copied, never by time.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc

import lz4.block
import numpy as np
import pytest
from viewer_helpers import Sink, image_chunk, in_background, rrd_stream, send, wait_until

from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER
from pixelrun.engine.viewer import server as vs
from pixelrun.engine.viewer.server import GREETING, RrdStreamDecoder, ServerLimits, ViewerServer
from pixelrun.kernels.formats import ImageFormat

RGB = ImageFormat(4, 3, color_model="RGB", channel_datatype="U8")
MiB = 1 << 20


@pytest.fixture
def servers():
    """Factory: a started server with the given ServerLimits fields; stopped after."""
    made = []

    def make(decoder_factory=None, **limits):
        sink = Sink()
        srv = ViewerServer(sink, port=0, limits=ServerLimits(**limits), decoder_factory=decoder_factory).start()
        srv.sink = sink
        made.append(srv)
        return srv

    yield make
    for srv in made:
        assert srv.stop(timeout=10), "server threads did not exit"


@pytest.fixture
def clients():
    """Sockets opened by a test, closed after it."""
    socks = []

    def connect(port):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        return s

    yield connect
    for s in socks:
        s.close()


def _buffer_bytes(chunk) -> bytes:
    return bytes(chunk.components[IMAGE_BUFFER].to_pylist()[0][0])


def assert_good_frame_arrives(srv) -> None:
    """A real client's frame, sent now on a fresh connection, arrives intact."""
    px = np.random.default_rng(len(srv.sink)).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    before = len(srv.sink)
    send(srv.port, rrd_stream([image_chunk("good", px, RGB, step=1)], rec="good"))
    assert wait_until(lambda: len(srv.sink) > before), srv.stats_snapshot().status_line()
    assert _buffer_bytes(srv.sink.chunks[before]) == px.tobytes()


def closed_by_server(s: socket.socket, timeout: float = 20.0) -> bool:
    """The server closed `s` (EOF or reset) within `timeout` s, having sent at most
    its greeting."""
    deadline = time.monotonic() + timeout
    got = b""
    try:
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            part = s.recv(64)
            if not part:
                break
            got += part
        else:
            return False
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    assert GREETING.startswith(got), f"the server sent {got!r}"
    return True



def valid_start(rec: str = "hostile") -> bytes:
    """A valid stream header and SetStoreInfo message: what every SDK sends first
    (a fixed row id, so that its length is the same every time)."""
    return rrd.stream_header() + rrd.encode_store_info(rrd.StoreInfo("test", rec), row_id=(1, 1))


def big_image(nbytes: int, step: int = 0, entity: str = "big", fill=None):
    """An RGBA image chunk of about `nbytes` pixel bytes (zeros unless `fill`)."""
    w = 256
    h = max(1, nbytes // (w * 4))
    px = np.zeros(w * h * 4, np.uint8) if fill is None else fill(w * h * 4)
    return image_chunk(entity, px, ImageFormat(w, h, color_model="RGBA", channel_datatype="U8"), step=step), px


def encoded_message(chunk, compression: bool = False) -> bytes:
    enc = rrd.RrdEncoder(rrd.StoreInfo("test", "hostile"), compression=compression)
    return b"".join(bytes(p) for p in enc.chunk(chunk))


# --------------------------------------------------------------- many connections


def test_64_idle_connections_do_not_lock_out_a_real_client(servers, clients):
    srv = servers()  # the defaults: 64 connections, 10 s handshake
    for _ in range(70):
        clients(srv.port)
    assert wait_until(lambda: srv.stats.connections_total == 70)
    assert_good_frame_arrives(srv)
    # 71 arrivals for 64 places: 7 idle ones made room, nobody was refused
    assert wait_until(lambda: srv.stats.connections_evicted == 7), srv.stats_snapshot().status_line()
    assert srv.stats.connections_refused == 0
    assert srv.stats.connections_open <= 64


def test_idle_connections_that_sent_a_stream_header_still_make_room(servers, clients):
    srv = servers(max_connections=8)
    held = []
    for k in range(8):  # header + store info, then nothing: not yet a data source
        s = clients(srv.port)
        s.sendall(valid_start(f"idle-{k}"))
        held.append(s)
        want = (k + 1) * len(valid_start("idle-0"))
        assert wait_until(lambda want=want: srv.stats.bytes_received == want)
    assert_good_frame_arrives(srv)
    assert wait_until(lambda: srv.stats.connections_evicted == 1)
    assert closed_by_server(held[0])  # the one idle the longest went
    assert "no chunk yet" in srv.stats.last_error


def test_when_every_connection_delivers_data_a_newcomer_is_refused_and_counted(servers, clients):
    srv = servers(max_connections=3)
    for k in range(3):
        s = clients(srv.port)
        s.sendall(rrd_stream([image_chunk(f"live{k}", np.zeros((3, 4, 3), np.uint8), RGB, step=0)],
                             rec=f"live-{k}", end=False))
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
        rec.connect(f"127.0.0.1:{srv.port}")
        px = np.random.default_rng(3).integers(0, 256, (3, 4, 3), dtype=np.uint8)
        rec.set_time("step", sequence=0)
        rec.log("sdk/cam", rr.Image(px))
        rec.flush(timeout_sec=10)
        assert wait_until(lambda: any(c.entity_path.strip("/") == "sdk/cam" for c in list(srv.sink.chunks)))
    finally:
        rec.disconnect()


# ------------------------------------------------------------------ timeouts


def test_a_silent_connection_is_closed_after_the_handshake_timeout(servers, clients):
    srv = servers(handshake_timeout_s=1)
    s = clients(srv.port)
    assert closed_by_server(s)
    assert wait_until(lambda: srv.stats.connections_timed_out == 1)
    assert "no valid .rrd stream" in srv.stats.last_error


def test_a_real_connection_silent_past_the_idle_timeout_is_closed(servers, clients):
    srv = servers(idle_timeout_s=1)
    s = clients(srv.port)
    s.sendall(rrd_stream([image_chunk("once", np.zeros((3, 4, 3), np.uint8), RGB, step=0)], end=False))
    assert wait_until(lambda: len(srv.sink) == 1)
    assert closed_by_server(s)
    assert wait_until(lambda: srv.stats.connections_timed_out == 1)
    assert "idle" in srv.stats.last_error


def test_slowloris_stream_headers_are_timed_out_while_a_real_client_is_served(servers, clients):
    srv = servers(handshake_timeout_s=2, read_timeout_s=2)
    socks = [clients(srv.port) for _ in range(8)]
    header = valid_start()

    def trickle(stop):  # one byte of the stream header per second, to each connection
        for i in range(len(header)):
            if stop.wait(1.0):
                return
            for s in socks:
                try:
                    s.send(header[i : i + 1])
                except OSError:
                    pass

    with in_background(trickle):
        assert_good_frame_arrives(srv)
        assert all(closed_by_server(s) for s in socks)
        assert wait_until(lambda: srv.stats.connections_timed_out == 8), srv.stats_snapshot().status_line()


@pytest.mark.parametrize("mode", ["header-trickle", "body-trickle", "body-stall"])
def test_mid_stream_slowloris_is_closed_and_its_budget_returned(servers, clients, mode):
    srv = servers(read_timeout_s=2, min_bytes_per_s=64 << 10)
    s = clients(srv.port)
    s.sendall(valid_start())
    assert wait_until(lambda: srv.stats.bytes_received == len(valid_start()))
    chunk, _ = big_image(2 * MiB)
    msg = encoded_message(chunk)

    def slow(stop):
        try:
            if mode == "header-trickle":  # 2 bytes/s of the next message header
                for i in range(16):
                    if stop.wait(0.5):
                        return
                    s.send(msg[i : i + 1])
            elif mode == "body-trickle":  # 500 bytes/s of a 2 MiB body
                s.sendall(msg[:16])
                for i in range(16, len(msg), 100):
                    if stop.wait(0.2):
                        return
                    s.send(msg[i : i + 100])
            else:  # half the body, then nothing
                s.sendall(msg[: len(msg) // 2])
        except OSError:
            pass

    with in_background(slow):
        assert_good_frame_arrives(srv)
        assert closed_by_server(s)
        assert wait_until(lambda: srv.stats.connections_timed_out == 1)
        expected = "stalled" if mode == "body-stall" else "too slow"
        assert expected in srv.stats.last_error, srv.stats.last_error
        assert srv.stats.inflight_bytes == 0


# ------------------------------------------------------------ sizes and memory


@pytest.mark.parametrize("claim", [16 * MiB + 1, 1 << 40, (1 << 64) - 1])
def test_a_declared_length_over_the_limit_is_refused_without_allocating(servers, clients, claim):
    srv = servers(max_message_bytes=16 * MiB, max_inflight_bytes=32 * MiB)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        s = clients(srv.port)
        s.sendall(valid_start() + struct.pack("<QQ", rrd.KIND_ARROW_MSG, claim))
        assert closed_by_server(s)  # at once: no body is waited for
        assert wait_until(lambda: srv.stats.connections_dropped == 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB, f"{peak} bytes allocated while refusing a {claim}-byte claim"
    assert srv.stats.messages_malformed == 1
    assert srv.stats.inflight_peak_bytes == 0
    assert f"claims {claim} bytes" in srv.stats.last_error and "limit" in srv.stats.last_error
    assert_good_frame_arrives(srv)


def test_three_parallel_huge_messages_share_one_in_flight_budget(servers, clients):
    budget = 10 * MiB
    srv = servers(max_message_bytes=8 * MiB, max_inflight_bytes=budget)
    msgs, pixels = [], []
    for k in range(3):
        chunk, px = big_image(6 * MiB, entity=f"huge{k}", fill=lambda n, k=k: np.full(n, k + 1, np.uint8))
        msgs.append(encoded_message(chunk))
        pixels.append(px)
    socks = [clients(srv.port) for _ in range(3)]
    for s, m in zip(socks, msgs):  # all three announce a 6 MiB message before any body
        s.sendall(valid_start() + m[:16])
    assert wait_until(lambda: srv.stats.bytes_received == 3 * (len(valid_start()) + 16))
    senders = [threading.Thread(target=s.sendall, args=(m[16:],), daemon=True) for s, m in zip(socks, msgs)]
    for t in senders:
        t.start()
    assert wait_until(lambda: len(srv.sink) == 3), srv.stats_snapshot().status_line()
    for t in senders:
        t.join(10)
    got = {c.entity_path.strip("/"): _buffer_bytes(c) for c in srv.sink.chunks}
    assert all(got[f"huge{k}"] == pixels[k].tobytes() for k in range(3))
    # one 6 MiB body at a time fits in 10 MiB: the other two waited instead of adding up
    assert 6 * MiB <= srv.stats.inflight_peak_bytes <= budget
    assert srv.stats.inflight_bytes == 0


def test_a_stalled_huge_message_holds_the_budget_only_until_its_read_timeout(servers, clients):
    srv = servers(max_message_bytes=8 * MiB, max_inflight_bytes=8 * MiB, read_timeout_s=1)
    chunk, px = big_image(6 * MiB, entity="waiting", fill=lambda n: np.full(n, 7, np.uint8))
    msg = encoded_message(chunk)
    holder = clients(srv.port)
    holder.sendall(valid_start() + msg[:1000])  # takes 6 MiB of the budget, then stalls
    assert wait_until(lambda: srv.stats.bytes_received == len(valid_start()) + 1000)
    waiter = clients(srv.port)
    sender = threading.Thread(target=waiter.sendall, args=(valid_start("waiter") + msg,), daemon=True)
    sender.start()
    assert wait_until(lambda: len(srv.sink) == 1), srv.stats_snapshot().status_line()
    assert _buffer_bytes(srv.sink.chunks[0]) == px.tobytes()
    assert closed_by_server(holder)
    assert srv.stats.connections_timed_out == 1
    sender.join(10)


class _DecompressSpy:
    """Wraps lz4.block.decompress: the sizes asked for and the most at once."""

    def __init__(self, real, delay: float = 0.0):
        self.real, self.delay = real, delay
        self.lock = threading.Lock()
        self.sizes, self.active, self.most = [], 0, 0

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.sizes.append(kwargs.get("uncompressed_size", -1))
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(self.delay)  # widen the window in which decodes could overlap
            return self.real(*args, **kwargs)
        finally:
            with self.lock:
                self.active -= 1


def test_an_lz4_bomb_past_the_limit_is_refused_before_inflating(servers, clients, monkeypatch):
    spy = _DecompressSpy(lz4.block.decompress)
    monkeypatch.setattr(lz4.block, "decompress", spy)
    limit = 8 * MiB
    srv = servers(max_message_bytes=limit, max_inflight_bytes=2 * limit, max_decompressed_bytes=limit)
    chunk, _ = big_image(64 * MiB)  # zeros: 64 MiB of pixels in ~0.3 MB of LZ4
    bomb = encoded_message(chunk, compression=True)
    assert len(bomb) < limit // 16
    s = clients(srv.port)
    s.sendall(rrd.stream_header(compressed=True) + rrd.encode_store_info(rrd.StoreInfo("test", "bomb")) + bomb)
    assert closed_by_server(s)
    assert wait_until(lambda: srv.stats.messages_malformed == 1)
    assert all(size <= limit for size in spy.sizes), spy.sizes
    assert len(srv.sink) == 0
    assert_good_frame_arrives(srv)


def test_parallel_lz4_messages_inflate_one_at_a_time(servers, clients, monkeypatch):
    spy = _DecompressSpy(lz4.block.decompress, delay=0.3)
    monkeypatch.setattr(lz4.block, "decompress", spy)
    srv = servers(max_message_bytes=8 * MiB, max_inflight_bytes=16 * MiB)

    def half_random(n):  # compresses about 2:1, like camera data, not a bomb
        rng = np.random.default_rng(n)
        blocks = rng.integers(0, 256, (n // 2048, 1024), dtype=np.uint8)
        return np.concatenate([blocks, np.zeros_like(blocks)], axis=1).reshape(-1)

    data = [encoded_message(big_image(4 * MiB, entity=f"z{k}", fill=half_random)[0], compression=True)
            for k in range(3)]
    head = rrd.stream_header(compressed=True) + rrd.encode_store_info(rrd.StoreInfo("test", "lz4"))
    socks = [clients(srv.port) for _ in range(3)]
    senders = [threading.Thread(target=s.sendall, args=(head + d,), daemon=True) for s, d in zip(socks, data)]
    for t in senders:
        t.start()
    assert wait_until(lambda: len(srv.sink) == 3), srv.stats_snapshot().status_line()
    assert len(spy.sizes) == 3, "the decoder no longer calls lz4.block.decompress: update this spy"
    assert spy.most == 1
    for t in senders:
        t.join(10)


# ------------------------------------------------------------- ingest copies


class _InstrumentedSocket:
    """Just enough of a socket: serves `data` through recv_into in uneven pieces and
    records every target buffer. It has no recv(): using it would raise."""

    def __init__(self, data: bytes, piece: int = 65521):
        self.data = memoryview(data)
        self.pos = 0
        self.piece = piece
        self.targets = []  # (underlying object, bytes written)

    def recv_into(self, buf, nbytes=0):
        n = min(len(buf), self.piece, len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        self.targets.append((buf.obj, n))
        return n


def test_a_large_message_is_received_once_into_one_buffer_of_its_size():
    chunk, px = big_image(8 * MiB, fill=lambda n: np.full(n, 5, np.uint8))
    msg = encoded_message(chunk)
    stream = valid_start() + msg
    sock = _InstrumentedSocket(stream)
    limits = ServerLimits(max_message_bytes=16 * MiB, max_inflight_bytes=16 * MiB)
    stats = vs.ServerStats()
    link = vs._Link(sock, "fake:1", time.monotonic())
    reader = vs._UnitReader(link, limits, vs._Budget(limits.max_inflight_bytes, stats, threading.Lock()),
                            count_bytes=lambda n: None, cancelled=lambda: False)
    units = []
    while (u := reader.next_unit()) is not None:
        units.append(u)
    assert [len(u.data) for u in units] == [12, len(valid_start()) - 12, len(msg)]
    big = units[-1].data
    body_targets = [(obj, n) for obj, n in sock.targets if obj is big.obj]
    # every byte came out of the socket exactly once, the body straight into its buffer
    assert sum(n for _, n in sock.targets) == len(stream)
    assert sum(n for _, n in body_targets) == len(msg) - 16
    assert len(big) == len(msg) and bytes(big) == msg
    chunks = RrdStreamDecoder(16 * MiB)
    for u in units:
        out = chunks.feed(u.data)
    assert _buffer_bytes(out[0]) == px.tobytes()
    assert stats.inflight_peak_bytes == len(msg) - 16


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
    start = valid_start()
    send(srv.port, start + msg)
    assert wait_until(lambda: len(srv.sink) == 1)
    # stream header, store info, the 24 MiB message: three feeds, no partial pieces
    assert _RecordingDecoder.feeds == [12, len(start) - 12, len(msg)]


# ------------------------------------------------------------ degenerate input


DEGENERATE = {
    "nothing": (b"", "closed"),
    "stream header only": (rrd.stream_header(), "closed"),
    "half a message header": (valid_start() + b"\x02\x00\x00", "truncated"),
    "zero-length ArrowMsg": (valid_start() + struct.pack("<QQ", rrd.KIND_ARROW_MSG, 0), "malformed"),
    "unknown kind": (valid_start() + struct.pack("<QQ", 7, 10) + b"x" * 10, "malformed"),
    # an HTTP/2 preface is a gRPC client now: tests/sdk/test_grpc_server.py
    "End message then garbage": (valid_start() + struct.pack("<QQ", rrd.KIND_END, 0) + b"\xff" * 40, "malformed"),
    "5000 store infos": (rrd.stream_header() + rrd.encode_store_info(rrd.StoreInfo("a", "b")) * 5000, "closed"),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_input_is_handled_and_counted(servers, name):
    data, fate = DEGENERATE[name]
    srv = servers()
    send(srv.port, data)
    assert wait_until(lambda: srv.stats.connections_open == 0 and srv.stats.connections_total == 1)
    if fate == "malformed":  # the server may stop reading at the first bad byte
        assert srv.stats.bytes_received <= len(data)
        assert wait_until(lambda: srv.stats.messages_malformed == 1)
        assert srv.stats.connections_dropped == 1
    else:
        assert srv.stats.bytes_received == len(data)
        assert srv.stats.connections_dropped == 0 and srv.stats.messages_malformed == 0
        assert srv.stats.messages_truncated == (fate == "truncated")
    if name == "5000 store infos":
        assert srv.stats.messages_received == 5000
    assert srv.stats.inflight_bytes == 0
    assert_good_frame_arrives(srv)


# ------------------------------------------------------------------ shutdown


def test_stop_is_bounded_with_connections_in_every_state(servers, clients):
    srv = servers(max_message_bytes=8 * MiB, max_inflight_bytes=8 * MiB)
    clients(srv.port)  # silent
    clients(srv.port).sendall(valid_start())  # valid, idle
    chunk, _ = big_image(6 * MiB)
    msg = encoded_message(chunk)
    clients(srv.port).sendall(valid_start() + msg[:4096])  # mid-body, holds the budget
    assert wait_until(lambda: srv.stats.bytes_received == 2 * len(valid_start()) + 4096)
    waiter = clients(srv.port)
    waiter.sendall(valid_start() + msg[:16])  # waits for the budget
    assert wait_until(lambda: srv.stats.bytes_received == 3 * len(valid_start()) + 4096 + 16)
    assert srv.stats.connections_open == 4
    assert srv.stop(timeout=5) is True
    assert srv.stats.connections_open == 0
    assert srv.stats.inflight_bytes == 0


def test_stop_returns_within_its_bound_while_a_callback_hangs():
    release = threading.Event()
    entered = threading.Event()

    def stuck(chunks, peer):
        entered.set()
        release.wait(30)  # the viewer's ingest, stuck

    srv = ViewerServer(stuck, port=0).start()
    try:
        send(srv.port, rrd_stream([image_chunk("x", np.zeros((3, 4, 3), np.uint8), RGB, step=0)]))
        assert entered.wait(20)
        assert srv.stop(timeout=1) is False  # reports the busy reader instead of hanging
    finally:
        release.set()

"""The viewer's TCP listener: decoding, several clients, and hostile input.

No window here: the server hands chunks to a callback, which these tests record.
"""

from __future__ import annotations

import os
import socket
import struct

import numpy as np
import pytest
from viewer_helpers import Sink, close_in_order, image_chunk, rrd_stream, send, wait_until

from pixelrun.engine.chunk import IMAGE_BUFFER
from pixelrun.engine.viewer.server import GREETING, PortInUseError, ViewerServer
from pixelrun.kernels.formats import ImageFormat

RGB = ImageFormat(4, 3, color_model="RGB", channel_datatype="U8")


@pytest.fixture
def server():
    sink = Sink()
    srv = ViewerServer(sink, port=0).start()
    srv.sink = sink
    yield srv
    srv.stop()


def pixels(seed):
    return np.random.default_rng(seed).integers(0, 256, (3, 4, 3), dtype=np.uint8)


def _buffer_bytes(chunk) -> bytes:
    return bytes(chunk.components[IMAGE_BUFFER].to_pylist()[0][0])


def test_binds_loopback_by_default(server):
    assert server.host == "127.0.0.1"
    assert server.port > 0


def test_a_stream_arrives_as_chunks_with_their_bytes(server):
    px = pixels(1)
    send(server.port, rrd_stream([image_chunk("cam", px, RGB, step=0)]))
    assert wait_until(lambda: len(server.sink.chunks) == 1)
    c = server.sink.chunks[0]
    assert c.entity_path.strip("/") == "cam"
    assert _buffer_bytes(c) == px.tobytes()
    assert wait_until(lambda: server.stats.connections_open == 0)
    assert server.stats.connections_dropped == 0


def test_bytes_split_at_every_size_still_decode(server):
    data = rrd_stream([image_chunk("a", pixels(2), RGB, step=i) for i in range(3)])
    s = socket.create_connection(("127.0.0.1", server.port))
    for i in range(0, len(data), 7):  # 7-byte pieces: headers split everywhere
        s.sendall(data[i : i + 7])
    close_in_order(s)
    assert wait_until(lambda: len(server.sink.chunks) == 3)


def test_several_clients_at_once(server):
    streams = {
        f"cam{k}": [image_chunk(f"cam{k}", pixels(10 + k), RGB, step=i) for i in range(5)]
        for k in range(4)
    }
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in streams]
    encoded = [rrd_stream(chs, rec=f"rec-{k}", end=False) for k, chs in enumerate(streams.values())]
    # interleave the four byte streams in small pieces
    pos = [0] * len(socks)
    while any(p < len(e) for p, e in zip(pos, encoded)):
        for k, s in enumerate(socks):
            if pos[k] < len(encoded[k]):
                s.sendall(encoded[k][pos[k] : pos[k] + 1000])
                pos[k] += 1000
    assert wait_until(lambda: len(server.sink.chunks) == 20)
    assert wait_until(lambda: server.stats.connections_open == 4)
    for s in socks:
        s.close()
    got = sorted(e.strip("/") for e in server.sink.entities())
    assert got == sorted(c.entity_path for chs in streams.values() for c in chs)


def _good_client_still_served(server, n_before):
    px = pixels(99)
    send(server.port, rrd_stream([image_chunk("after", px, RGB, step=1)]))
    assert wait_until(lambda: len(server.sink.chunks) == n_before + 1)
    assert _buffer_bytes(server.sink.chunks[-1]) == px.tobytes()


def test_random_bytes_drop_that_connection_only(server):
    rng = np.random.default_rng(5)
    for _ in range(5):
        send(server.port, rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    send(server.port, b"RRF2" + os.urandom(4000))  # right magic, garbage after it
    assert wait_until(lambda: server.stats.connections_dropped == 6)
    # the five random streams fail at their first 4 bytes; the sixth later
    assert sum("not an .rrd stream" in e for e in server.stats.errors) == 5, server.stats.errors
    _good_client_still_served(server, 0)


def test_truncated_streams_keep_complete_messages_and_the_server_alive(server):
    data = rrd_stream([image_chunk("t", pixels(i), RGB, step=i) for i in range(3)], end=False)
    # cut inside the last chunk message: the first two arrive, the tail is dropped
    send(server.port, data[: len(data) - 10])
    assert wait_until(lambda: len(server.sink.chunks) == 2)
    for cut in (1, 5, 12, 20, 40):
        send(server.port, data[:cut])
    assert wait_until(lambda: server.stats.connections_open == 0 and server.stats.connections_total == 6)
    # every cut inside a unit is counted (12 ends exactly after the stream header)
    assert server.stats.messages_truncated == 5
    assert server.stats.connections_dropped == 0
    _good_client_still_served(server, 2)


def test_an_absurd_length_is_refused_without_waiting_for_it(server):
    header = rrd_stream([], end=False)
    s = send(server.port, header + struct.pack("<QQ", 2, 1 << 60), close=False)
    # the server closes on its own: the client sees its greeting, then EOF, without
    # sending more
    s.settimeout(10)
    got = b""
    while chunk := s.recv(64):
        got += chunk
    assert got == GREETING
    s.close()
    assert server.stats.connections_dropped == 1
    assert "limit" in server.stats.last_error
    _good_client_still_served(server, 0)


def test_a_failing_callback_drops_the_connection_not_the_server():
    calls = []

    def boom(chunks, peer):
        calls.append(peer)
        if len(calls) == 1:
            raise RuntimeError("store exploded")

    srv = ViewerServer(boom, port=0).start()
    try:
        send(srv.port, rrd_stream([image_chunk("x", pixels(0), RGB, step=0)]))
        assert wait_until(lambda: srv.stats.connections_dropped == 1)
        send(srv.port, rrd_stream([image_chunk("x", pixels(0), RGB, step=0)]))
        assert wait_until(lambda: len(calls) == 2)
    finally:
        srv.stop()


def test_every_connection_is_greeted_with_what_the_sdk_expects(server):
    from pixelrun import sinks

    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    got = b""
    while len(got) < len(GREETING):
        part = s.recv(len(GREETING) - len(got))
        assert part, f"closed after {got!r}"
        got += part
    assert got == GREETING == sinks.GREETING
    assert sinks._server_greets()  # the SDK sees that this viewer greets
    s.sendall(rrd_stream([image_chunk("greeted", pixels(7), RGB, step=0)]))
    s.close()  # greeting read: an orderly close
    assert wait_until(lambda: len(server.sink.chunks) == 1)
    assert wait_until(lambda: server.stats.connections_open == 0)
    assert server.stats.connections_dropped == 0


def test_port_in_use_is_a_clear_error(server):
    with pytest.raises(PortInUseError, match="already in use"):
        ViewerServer(lambda c, p: None, port=server.port)

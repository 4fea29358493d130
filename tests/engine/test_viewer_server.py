"""The viewer's listener: gRPC in, chunks out; several clients; clients that do not speak gRPC.

No window here: the server hands chunks to a callback, which these tests record.
Messages are sent as WriteMessages requests (tests/net_helpers.py), by a real grpcio
client or, for what no real client sends, by a bare HTTP/2 client on a raw socket.
"""

from __future__ import annotations

import logging
import socket
import threading

import grpc
import numpy as np
import pytest
from viewer_helpers import Sink, image_chunk, rrd_stream, wait_until

from pixelrun.engine.chunk import IMAGE_BUFFER
from pixelrun.engine.viewer.server import H2_PREFACE, PortInUseError, ServerStats, ViewerServer, not_grpc_answer
from pixelrun.kernels.formats import ImageFormat
from tests.net_helpers import H2Conn, grpc_send, rrd_messages

RGB = ImageFormat(4, 3, color_model="RGB", channel_datatype="U8")


@pytest.fixture
def server():
    sink = Sink()
    srv = ViewerServer(sink, port=0).start()
    srv.sink = sink
    yield srv
    assert srv.stop(timeout=10)


def pixels(seed):
    return np.random.default_rng(seed).integers(0, 256, (3, 4, 3), dtype=np.uint8)


def _buffer_bytes(chunk) -> bytes:
    return bytes(chunk.components[IMAGE_BUFFER].to_pylist()[0][0])


def _raw_exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh TCP connection, half-close, return all the server sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while part := s.recv(65536):
            got += part
        return got


def test_binds_loopback_by_default(server):
    assert server.host == "127.0.0.1"
    assert server.port > 0


def test_a_stream_arrives_as_chunks_with_their_bytes(server):
    px = pixels(1)
    grpc_send(server.port, rrd_messages(rrd_stream([image_chunk("cam", px, RGB, step=0)])))
    assert wait_until(lambda: len(server.sink.chunks) == 1)
    c = server.sink.chunks[0]
    assert c.entity_path.strip("/") == "cam"
    assert _buffer_bytes(c) == px.tobytes()
    assert wait_until(lambda: server.stats.connections_open == 0)
    s = server.stats_snapshot()
    assert s.connections_dropped == s.calls_dropped == s.connections_not_grpc == 0
    assert s.messages_received == 2 and s.chunks_received == 1  # store info + the chunk


def test_several_clients_at_once(server):
    streams = {
        f"cam{k}": [image_chunk(f"cam{k}", pixels(10 + k), RGB, step=i) for i in range(5)]
        for k in range(4)
    }
    msgs = [rrd_messages(rrd_stream(chs, rec=f"rec-{k}", end=False)) for k, chs in enumerate(streams.values())]
    gate = threading.Barrier(4, timeout=20)

    def client(k):
        def requests():  # each client sends its first message, then all four go on together
            yield msgs[k][0]
            gate.wait()
            yield from msgs[k][1:]
        grpc_send(server.port, requests())

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(server.sink.chunks) == 20)
    for t in threads:
        t.join(20)
    got = sorted(e.strip("/") for e in server.sink.entities())
    assert got == sorted(c.entity_path for chs in streams.values() for c in chs)
    assert server.stats.connections_total == 4


def _good_client_still_served(server, n_before):
    px = pixels(99)
    grpc_send(server.port, rrd_messages(rrd_stream([image_chunk("after", px, RGB, step=1)])))
    assert wait_until(lambda: len(server.sink.chunks) == n_before + 1)
    assert _buffer_bytes(server.sink.chunks[-1]) == px.tobytes()


def test_a_client_that_is_not_grpc_gets_http_400_is_counted_and_logged_once(server, caplog):
    rng = np.random.default_rng(5)
    others = [b"hello", b"GET / HTTP/1.1\r\nHost: viewer\r\n\r\n",
              rrd_stream([image_chunk("raw", pixels(3), RGB, step=0)]),  # pixelrun's former raw .rrd stream
              H2_PREFACE[:10] + b"garbage"]  # starts like HTTP/2, then is not
    others += [b"\x50" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes() for _ in range(3)]
    caplog.set_level(logging.WARNING, logger="pixelrun.viewer")
    for data in others:
        got = _raw_exchange(server.port, data)
        assert got == not_grpc_answer(f"127.0.0.1:{server.port}"), got
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"gRPC" in body and b"rr.connect_grpc(\"rerun+http://127.0.0.1:" in body
    assert wait_until(lambda: server.stats.connections_not_grpc == len(others))
    s = server.stats_snapshot()
    assert s.connections_open == 0 and s.connections_dropped == 0 and s.bytes_received == 0
    assert server.sink.chunks == []
    assert "not a gRPC client" in s.last_error and "HTTP 400" in s.last_error
    assert "not gRPC" in s.status_line()
    # one line in the log for the peer host, with its address; the rest are only counted
    lines = [r.getMessage() for r in caplog.records if "not a gRPC client" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1:" in lines[0] and "b'hello'" in lines[0], lines
    _good_client_still_served(server, 0)


def test_connections_that_close_before_speaking_are_not_counted_as_problems(server):
    assert _raw_exchange(server.port, b"") == b""  # a port probe
    assert _raw_exchange(server.port, H2_PREFACE[:7]) == b""  # half a preface
    assert not _raw_exchange(server.port, H2_PREFACE).startswith(b"HTTP/1.1")  # a bare preface: no 400
    assert wait_until(lambda: server.stats.connections_total == 3 and server.stats.connections_open == 0)
    s = server.stats_snapshot()
    assert s.connections_not_grpc == s.connections_dropped == s.connections_timed_out == 0
    assert s.errors == []
    _good_client_still_served(server, 0)


def test_a_call_cut_short_keeps_its_complete_messages_and_the_server_alive(server):
    msgs = rrd_messages(rrd_stream([image_chunk("t", pixels(i), RGB, step=i) for i in range(3)], end=False))
    c = H2Conn(server.port)
    c.open_call(1)
    for m in msgs[:-1]:
        c.send_message(1, m)
    c.send_message(1, msgs[-1], cut=100)  # the client dies inside the last message
    assert wait_until(lambda: len(server.sink.chunks) == 2)
    c.close()
    assert wait_until(lambda: server.stats.connections_open == 0 and server.stats.calls_open == 0)
    assert [_buffer_bytes(ch) for ch in server.sink.chunks] == [pixels(0).tobytes(), pixels(1).tobytes()]
    assert server.stats.connections_dropped == 0
    assert server.stats.messages_truncated == 1  # the cut message is counted, not silently gone
    _good_client_still_served(server, 2)


def test_an_absurd_length_is_refused_without_waiting_for_it(server):
    c = H2Conn(server.port)
    c.open_call(1)
    start = rrd_messages(rrd_stream([], end=False))[0]
    c.send_message(1, start, declared=(1 << 32) - 1, cut=10)  # 4 GiB claimed, 10 bytes sent
    assert c.wait_call_end(1) == ("grpc-status", grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert "larger than max" in c.grpc_message(1)
    c.close()
    assert server.stats.inflight_peak_bytes == 0 and server.sink.chunks == []
    assert wait_until(lambda: server.stats.messages_too_large == 1)
    _good_client_still_served(server, 0)


def test_port_in_use_is_a_clear_error(server):
    with pytest.raises(PortInUseError, match="already in use"):
        ViewerServer(lambda c, p: None, port=server.port)


def test_the_status_line_names_every_fate():
    line = ServerStats(connections_open=1, connections_total=9, connections_refused=2, connections_evicted=3,
                       connections_timed_out=4, connections_dropped=5, connections_not_grpc=6, calls_open=7,
                       calls_dropped=8, messages_malformed=1, messages_too_large=12, bytes_received=2_500_000,
                       messages_received=11, chunks_received=10, messages_truncated=13).status_line()
    for part in ("1 open", "9 accepted", "2 refused", "3 evicted", "4 timed out", "5 dropped", "6 not gRPC",
                 "calls: 7 open, 8 dropped (1 malformed), 12 messages too large", "2.5 MB", "11 messages",
                 "10 chunks", "13 cut short"):
        assert part in line, (part, line)

"""Viewer server ingest: seconds from the first byte sent to the decoded chunk, by size.

One uncompressed image message of each size goes over loopback gRPC (one WriteMessages
call) into a running `ViewerServer` (fresh connection each run, like an SDK connecting) and is timed until
`on_chunks` receives the decoded chunk. Peer, measured in the same run: the copy
ceiling — the same bytes over a loopback socket into a preallocated buffer with
``recv_into`` (no framing, no decode). Ingest that is linear in the message size keeps
the ratio flat as sizes grow; re-copying partial data on every recv makes it grow
with the size.

    python3 benchmarks/viewer_ingest.py [--quick] [--sizes 16,64,256]
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _bench import Timing, bench_args, measure, print_table

from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn, buffer_column, format_column
from pixelrun.engine.grpc import wire
from pixelrun.engine.rrd.messages import MESSAGE_HEADER
from pixelrun.engine.viewer.server import ServerLimits, ViewerServer
from pixelrun.kernels.formats import ImageFormat

WAIT_S = 120.0  # bound on any single transfer


def _message(mb: int) -> tuple[bytes, int]:
    """A whole .rrd stream (header, store info, one image chunk of `mb` MiB) and the
    size of its chunk message."""
    n = mb << 20
    width = 1024
    height = n // (width * 4)
    px = np.random.default_rng(mb).integers(0, 256, width * height * 4, dtype=np.uint8)
    fmt = ImageFormat(width, height, color_model="RGBA", channel_datatype="U8")
    chunk = Chunk(
        "bench/img", np.array([[1, mb]], np.uint64),
        {"step": TimeColumn("sequence", np.array([0], np.int64))},
        {IMAGE_BUFFER: buffer_column([px]), IMAGE_FORMAT: format_column([fmt])},
        chunk_id=mb.to_bytes(16, "big"),
    )
    enc = rrd.RrdEncoder(rrd.StoreInfo("bench", "ingest"))
    msg = b"".join(bytes(p) for p in enc.chunk(chunk))
    return enc.stream_header() + enc.store_info() + msg, len(msg)


def _send(port: int, data: bytes) -> None:
    """Connect, send, close (the copy ceiling's client)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as s:
        s.sendall(data)


def _grpc_send(port: int, data: bytes) -> None:
    """The .rrd stream's messages as one WriteMessages call, on a connection of its own."""
    msgs, pos = [], rrd.STREAM_HEADER_SIZE
    while pos < len(data):
        _, length = MESSAGE_HEADER.unpack_from(data, pos)
        msgs.append(memoryview(data)[pos : pos + rrd.MESSAGE_HEADER_SIZE + length])
        pos += rrd.MESSAGE_HEADER_SIZE + length
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        ch.stream_unary(wire.WRITE_MESSAGES)((wire.request_from_frame([m]) for m in msgs), timeout=WAIT_S)


class _CopyCeiling:
    """A loopback listener that only recv_into's the bytes into a preallocated buffer."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def transfer(self, data: bytes) -> None:
        buf = memoryview(np.empty(len(data), np.uint8))
        done = threading.Event()

        def receive():
            conn, _ = self.sock.accept()
            with conn:
                got = 0
                while got < len(data):
                    n = conn.recv_into(buf[got:])
                    if not n:
                        break
                    got += n
            done.set()

        t = threading.Thread(target=receive, daemon=True)
        t.start()
        _send(self.port, data)
        if not done.wait(WAIT_S):
            raise RuntimeError(f"copy ceiling: {len(data)} bytes not received within {WAIT_S} s")
        t.join(WAIT_S)


class _FramingOnly:
    """A decoder that decodes nothing: signals when a unit of `size` bytes arrives
    (isolates the server's framing and receive path from engine/rrd/decode.py's decode)."""

    size = 0
    arrived = threading.Event()

    def feed(self, data):
        if len(data) == _FramingOnly.size:
            _FramingOnly.arrived.set()
        return []


def _size_rows(mb: int, server: ViewerServer, framing: ViewerServer, got: threading.Event,
               ceiling: _CopyCeiling, repeat: int) -> list[Timing]:
    """The copy ceiling, framing only and full ingest of one message of `mb` MiB."""
    data, _FramingOnly.size = _message(mb)

    def ingest():
        got.clear()
        _grpc_send(server.port, data)
        if not got.wait(WAIT_S):
            raise RuntimeError(f"{mb} MiB message not ingested within {WAIT_S} s: "
                               f"{server.stats_snapshot().status_line()}")

    def receive_only():
        _FramingOnly.arrived.clear()
        _grpc_send(framing.port, data)
        if not _FramingOnly.arrived.wait(WAIT_S):
            raise RuntimeError(f"{mb} MiB message not framed within {WAIT_S} s")

    group = f"{len(data) / 1e6:.0f} MB"
    peer = measure("loopback recv_into (copy ceiling)", lambda: ceiling.transfer(data),
                   group=group, peer=True, repeat=repeat)
    recv = measure("ViewerServer framing + receive (no decode)", receive_only, group=group,
                   repeat=repeat)
    mine = measure("ViewerServer ingest (receive + rrd decode)", ingest, group=group, repeat=repeat)
    for r in (peer, recv, mine):
        r.extra["MB/s"] = f"{len(data) / 1e6 / r.median:.0f}"
    return [peer, recv, mine]


def measure_ingest(sizes_mb: list[int], repeat: int = 5) -> list[Timing]:
    """Time server ingest and the copy ceiling for each size (MiB); print the table."""
    got = threading.Event()
    limits = ServerLimits(max_message_bytes=2 << 30, max_inflight_bytes=2 << 30)
    server = ViewerServer(lambda chunks, peer: got.set(), port=0, limits=limits).start()
    framing = ViewerServer(lambda chunks, peer: None, port=0, limits=limits,
                           decoder_factory=_FramingOnly).start()
    ceiling = _CopyCeiling()
    rows: list[Timing] = []
    try:
        for mb in sizes_mb:
            # one function per size, so its closures hold that size's message, never a later one's
            rows += _size_rows(mb, server, framing, got, ceiling, repeat)
    finally:
        server.stop()
        framing.stop()
        ceiling.sock.close()
    stats = server.stats_snapshot()
    print_table(rows, title="Viewer server ingest: first byte sent -> decoded chunk",
                footer=f"_server: {stats.status_line()}; in-flight peak {stats.inflight_peak_bytes / 1e6:.0f} MB._")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--sizes", default="", help="message sizes in MiB, comma separated "
                   "(default 8,32,128,512; --quick: 8,32,128)")
    args = bench_args(__doc__, parser=p, repeat=5, quick_repeat=2)
    sizes = [int(x) for x in args.sizes.split(",") if x] or ([8, 32, 128] if args.quick else [8, 32, 128, 512])
    measure_ingest(sizes, repeat=args.repeat)


if __name__ == "__main__":
    main()

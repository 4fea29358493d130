"""engine/prefault.py (ready-touched buffers) and the decoders that use it: LZ4 into a
pooled buffer, and large uncompressed payloads left in the buffer the viewer hands over."""

from __future__ import annotations

import time

import lz4.block
import numpy as np
import pytest
from viewer_helpers import image_chunk, rrd_stream, wait_until

from pixelrun.engine import rrd
from pixelrun.engine.chunk import IMAGE_BUFFER
from pixelrun.engine.prefault import PrefaultPool
from pixelrun.engine.rrd import decode as rrd_decode
from pixelrun.engine.rrd.ipc import lz4_decompress
from pixelrun.engine.rrd.messages import MESSAGE_HEADER
from pixelrun.engine.viewer.server import RrdStreamDecoder
from pixelrun.kernels.formats import ImageFormat

MB = 1 << 20


def test_pool_hands_out_touched_buffers_of_the_asked_size_and_refills():
    pool = PrefaultPool(per_size=2, sizes=2, max_bytes=16 * MB, min_bytes=MB)
    first = pool.take(3 * MB)  # a size not seen before: a plain allocation, and a refill starts
    assert first.shape == (3 * MB,) and first.dtype == np.uint8
    assert (pool.hits, pool.misses) == (0, 1)
    assert wait_until(lambda: pool.reserved_bytes() == 2 * 3 * MB, timeout=10)
    ready = pool.take(3 * MB)
    assert pool.hits == 1
    assert ready.shape == (3 * MB,) and not np.shares_memory(ready, first)
    assert (ready == 0).all()  # memset by the filler: every page was written (touched)
    ready[:] = 7  # the caller's buffer from now on: the pool keeps no reference
    assert wait_until(lambda: pool.reserved_bytes() == 2 * 3 * MB, timeout=10)
    assert all(not np.shares_memory(ready, b) for q in pool._ready.values() for b in q)


def test_pool_is_bounded_and_forgets_old_sizes():
    pool = PrefaultPool(per_size=2, sizes=2, max_bytes=10 * MB, min_bytes=MB)
    for n in (2 * MB, 3 * MB):
        pool.take(n)
    # two of each size, whatever order the filler takes them in: 2+2+3+3 = 10 MB
    assert wait_until(lambda: pool.reserved_bytes() == 10 * MB, timeout=10)
    time.sleep(0.3)
    assert pool.reserved_bytes() == 10 * MB
    assert {n: len(q) for n, q in pool._ready.items()} == {2 * MB: 2, 3 * MB: 2}
    pool.take(4 * MB)  # a third size: the oldest (2 MB) is forgotten, its buffers freed
    assert 2 * MB not in pool._ready
    # 3 + 3 + 4 = 10 MB ready; a second 4 MB would pass max_bytes: never more than that
    assert wait_until(lambda: len(pool._ready.get(4 * MB, ())) == 1, timeout=10)
    time.sleep(0.3)
    assert pool.reserved_bytes() == 10 * MB
    assert {n: len(q) for n, q in pool._ready.items()} == {3 * MB: 2, 4 * MB: 1}
    # small and huge requests are plain allocations, never pooled
    assert pool.take(1000).shape == (1000,) and pool.take(11 * MB).shape == (11 * MB,)
    assert set(pool._ready) == {3 * MB, 4 * MB}


@pytest.mark.parametrize("kind", ["grey", "noise"])
def test_lz4_into_a_pooled_buffer_equals_python_lz4(kind):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 3 * MB, dtype=np.uint8)
    if kind == "grey":  # compressible (~30x), within what LZ4 can expand a byte to
        data[np.arange(data.size) % 32 != 0] = 90
    block = lz4.block.compress(data.tobytes(), store_size=False)
    for _ in range(3):  # a plain allocation first, then pooled ones
        out = lz4_decompress(block, data.size, 1 << 30)
        assert bytes(out) == data.tobytes()
    with pytest.raises(ValueError, match="does not inflate to the"):
        lz4_decompress(block[: len(block) // 2], data.size, 1 << 30)
    with pytest.raises(ValueError, match="does not inflate to the"):
        lz4_decompress(block, data.size + 10, 1 << 30)  # a size the block does not fill


def _messages(chunks) -> list[bytes]:
    """The ArrowMsg bodies of an .rrd stream of `chunks`."""
    data = rrd_stream(chunks)
    out, pos = [], len(rrd.stream_header(False))
    while pos < len(data):
        kind, length = MESSAGE_HEADER.unpack_from(data, pos)
        if kind == rrd.KIND_ARROW_MSG:
            out.append(data[pos + rrd.MESSAGE_HEADER_SIZE: pos + rrd.MESSAGE_HEADER_SIZE + length])
        pos += rrd.MESSAGE_HEADER_SIZE + length
    return out


def test_split_payload_reads_the_same_message_protobuf_reads():
    from pixelrun.engine.rrd.proto import pb

    fmt = ImageFormat(1024, 768, color_model="RGB", channel_datatype="U8")
    pixels = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    (body,) = _messages([image_chunk("cam", pixels, fmt, step=4)])
    rest, payload = rrd_decode._split_payload(body)
    full = pb.ArrowMsg.FromString(body)
    assert bytes(payload) == full.payload
    assert np.shares_memory(np.frombuffer(payload, np.uint8), np.frombuffer(body, np.uint8))  # a view
    part = pb.ArrowMsg.FromString(rest)
    assert part.payload == b"" and len(rest) < 200
    full.ClearField("payload")
    assert part == full
    # anything that does not read as plain fields is left to protobuf
    assert rrd_decode._split_payload(body[:-5]) is None  # the payload runs past the end
    assert rrd_decode._split_payload(b"\x2a\x02ab\x2a\x02cd") is None  # payload twice
    assert rrd_decode._split_payload(b"\x0f") is None  # wire type 7


def test_stream_decoder_keeps_large_payloads_in_the_buffer_it_was_handed():
    fmt = ImageFormat(1024, 768, color_model="RGB", channel_datatype="U8")
    pixels = np.random.default_rng(1).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    data = rrd_stream([image_chunk("cam", pixels, fmt, step=4)], end=False)
    frame = np.frombuffer(data, np.uint8).copy()  # the server's own buffer
    dec = RrdStreamDecoder()
    (chunk,) = dec.feed(frame)
    blob = chunk.components[IMAGE_BUFFER]
    values = np.frombuffer(blob.flatten().flatten().buffers()[1], np.uint8)[: pixels.nbytes]
    assert (values == pixels.reshape(-1)).all()
    assert np.shares_memory(values, frame)  # not copied out
    # a file reader copies: its buffer may be a mapping that goes away
    (msg,) = [m for m in rrd.iter_messages(data) if isinstance(m, rrd.ChunkMsg)]
    blob2 = msg.chunk.components[IMAGE_BUFFER]
    assert not np.shares_memory(np.frombuffer(blob2.flatten().flatten().buffers()[1], np.uint8),
                                np.frombuffer(data, np.uint8))

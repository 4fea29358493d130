"""The memory limit against real 1080p frames streamed through the .rrd codec.

A static 1080p image and its static format are logged first, then RGB 1080p frames
(6 220 800 bytes each) go through the encoder and the store's incremental stream
decoder, well past a 96 MB limit. The store must keep the newest frames and all static
data, and the process's RSS must stay under baseline + limit + SLACK.

SLACK covers what is alive at once besides the store during one frame: the frame being
built, its encoded message (a copy), the decoder's copy of the payload, and allocator
granularity: 64 MB, about ten frames' worth.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

psutil = pytest.importorskip("psutil", reason="psutil measures RSS (pip install -e '.[test]')")

from store_helpers import format_column, one_blob_column

from pixelrun.engine.chunk import IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn
from pixelrun.engine.rrd import RrdEncoder, StoreInfo
from pixelrun.engine.scene import scene_at
from pixelrun.engine.store.store import ChunkStore

W, H = 1920, 1080
FRAME = W * H * 3
LIMIT = 96 * 1000**2
SLACK = 64 * 1000**2
FRAMES = 60  # 373 MB of frames: almost four times the limit


def _frame_chunk(i: int) -> Chunk:
    data = np.full(FRAME, i % 251, np.uint8)
    data[:8] = np.frombuffer(np.int64(i).tobytes(), np.uint8)  # the frame number, to check order
    outer = one_blob_column(data)
    rid = np.array([[2000 + i, 0]], np.uint64)
    return Chunk("cam", rid, {"step": TimeColumn("sequence", np.array([i], np.int64))}, {IMAGE_BUFFER: outer},
                 chunk_id=(2000 + i).to_bytes(8, "big") + bytes(8))


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def test_stream_of_1080p_frames_stays_under_the_limit():
    enc = RrdEncoder(StoreInfo("memtest", "rec"), compression=False)
    store = ChunkStore(memory_limit=LIMIT)
    still = np.arange(FRAME, dtype=np.uint64).astype(np.uint8)  # static 1080p image
    static = Chunk(
        "still",
        np.array([[1000, 0]], np.uint64),
        {},
        {IMAGE_BUFFER: one_blob_column(still),
         IMAGE_FORMAT: format_column([{"width": W, "height": H, "color_model": 2, "channel_datatype": 6}])},
        chunk_id=(1000).to_bytes(8, "big") + bytes(8),
    )
    fmt = Chunk("cam", np.array([[1001, 0]], np.uint64), {},
                {IMAGE_FORMAT: format_column([{"width": W, "height": H, "color_model": 2, "channel_datatype": 6}])},
                chunk_id=(1001).to_bytes(8, "big") + bytes(8))
    store.feed(enc.stream_header() + enc.store_info())
    for c in (static, fmt):
        store.feed(b"".join(bytes(p) for p in enc.chunk(c)))
    del static, fmt
    baseline = _rss() - store.held_bytes  # the process without what the store holds
    peak = 0
    dropped = 0
    for i in range(FRAMES):
        msg = b"".join(bytes(p) for p in enc.chunk(_frame_chunk(i)))
        rep = store.feed(msg)
        del msg
        dropped += len(rep.dropped)
        assert store.held_bytes <= LIMIT
        peak = max(peak, _rss() - baseline)
    assert peak <= LIMIT + SLACK, f"RSS grew by {peak / 1e6:.0f} MB (limit {LIMIT / 1e6:.0f} + slack {SLACK / 1e6:.0f})"

    kept = store.range("cam", IMAGE_BUFFER, "step", 0, FRAMES)
    steps = kept.times.tolist()
    assert steps == list(range(FRAMES - len(steps), FRAMES))  # the newest, contiguous
    # static 6.2 MB + n frames of 6.2 MB (plus small columns) fit under 96 MB: 14 frames
    assert len(steps) == LIMIT // FRAME - 1
    assert dropped == FRAMES - len(steps)
    for h in kept:  # each kept frame is the one logged at its step
        assert int(np.frombuffer(h.values[0].values.to_numpy()[:8].tobytes(), np.int64)[0]) == h.time
    # all static data is still there, byte for byte
    (still_layer,) = scene_at(store, "step", FRAMES, entity="still")
    assert np.array_equal(still_layer.buffer, still)
    (cam,) = scene_at(store, "step", FRAMES, entity="cam")
    assert cam.format.width == W


def test_one_limit_is_split_between_store_textures_and_messages_in_flight():
    from pixelrun.engine.store.memory import INFLIGHT_SHARE, TEXTURE_SHARE, TRANSPORT_SHARE, plan_memory

    plan = plan_memory("500MB", textures_max=1 << 30, inflight_max=2 << 30)
    assert plan.limit == 500 * 1000**2
    assert plan.textures == int(plan.limit * TEXTURE_SHARE)
    assert plan.inflight == int(plan.limit * INFLIGHT_SHARE)
    assert plan.store + plan.textures + plan.inflight == plan.limit  # nothing outside the limit
    # a large limit: the caches keep their own defaults, the store gets the rest
    big = plan_memory("64GB", textures_max=1 << 30, inflight_max=2 << 30)
    assert (big.textures, big.inflight) == (1 << 30, 2 << 30)
    assert big.store == 64 * 1000**3 - (1 << 30) - (2 << 30)
    # no limit: an unbounded store, the caches at their defaults
    none = plan_memory(None, textures_max=123, inflight_max=456)
    assert (none.store, none.textures, none.inflight) == (None, 123, 456)
    with pytest.raises(ValueError, match="memory limit"):
        plan_memory("lots", textures_max=1, inflight_max=1)
    # a listening viewer: the live transport's own memory comes out of the store's share
    live = plan_memory("500MB", textures_max=1 << 30, inflight_max=2 << 30, transport_max=48 * 1000**2)
    assert live.transport == 48 * 1000**2 and live.store == plan.store - live.transport
    assert live.store + live.textures + live.inflight + live.transport == live.limit
    tiny = plan_memory("100MB", textures_max=1 << 30, inflight_max=2 << 30, transport_max=48 * 1000**2)
    assert tiny.transport == int(tiny.limit * TRANSPORT_SHARE)  # never more than its share

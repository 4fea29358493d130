"""scene_at and times_of (contract §4): which images are drawn at a time point, how, in what order."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from store_helpers import image_chunk

from pixelrun.engine.scene import SceneWarning, canvas_size, scene_at, times_of
from pixelrun.engine.store.store import ChunkStore
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, PixelFormat

L8 = {"width": 2, "height": 1, "color_model": 1, "channel_datatype": 6}  # 2 bytes
RGB8 = {"width": 2, "height": 2, "color_model": 2, "channel_datatype": 6}  # 12 bytes
NV12_3x3 = {"width": 3, "height": 3, "pixel_format": 26}  # 9 + 2*2*2 = 17 bytes


def _store(*chunks) -> ChunkStore:
    s = ChunkStore(memory_limit=None)
    for c in chunks:
        s.add_chunk(c)
    return s


def test_buffer_temporal_format_static():
    s = _store(
        image_chunk("cam", [1], None, formats=[L8]),
        image_chunk("cam", [2, 3], {"step": [10, 20]}, blobs=[b"\x01\x02", b"\x03\x04"]),
    )
    assert scene_at(s, "step", 9) == []
    (a,) = scene_at(s, "step", 15)
    assert (a.entity, a.buffer.tolist(), a.row_id) == ("/cam", [1, 2], (1000 << 64) | 2)
    assert (a.format.width, a.format.height, a.format.color_model, a.format.channel_datatype) == (
        2, 1, ColorModel.L, ChannelDatatype.U8)
    assert (a.opacity, a.draw_order) == (1.0, -10.0)  # defaults
    (b,) = scene_at(s, "step", None)  # latest
    assert b.buffer.tolist() == [3, 4]
    assert b.buffer.dtype == np.uint8 and b.buffer.ndim == 1
    assert not b.buffer.flags.writeable  # a view into the chunk, not a copy


def test_both_buffer_and_format_must_resolve():
    s = _store(
        image_chunk("only_buffer", [1], {"step": [0]}, blobs=[b"\x01\x02"]),
        image_chunk("only_format", [2], {"step": [0]}, formats=[L8]),
        image_chunk("late_format", [3], {"step": [0]}, blobs=[b"\x01\x02"]),
        image_chunk("late_format", [4], {"step": [5]}, formats=[L8]),
    )
    assert scene_at(s, "step", 4) == []
    assert [l.entity for l in scene_at(s, "step", 5)] == ["/late_format"]


def test_opacity_and_draw_order_resolve_on_their_own():
    s = _store(
        image_chunk("a", [1], {"step": [0]}, blobs=[b"\x01\x02"], formats=[L8]),
        image_chunk("a", [2], {"step": [5]}, opacity=[0.25]),
        image_chunk("a", [3], None, draw_order=[7.0]),
    )
    (l3,) = scene_at(s, "step", 3)
    assert (l3.opacity, l3.draw_order) == (1.0, 7.0)
    (l6,) = scene_at(s, "step", 6)
    assert (l6.opacity, l6.draw_order) == (0.25, 7.0)
    assert l6.row_id == (1000 << 64) | 1  # the buffer's row, not the opacity's


def test_order_by_draw_order_then_path():
    s = _store(
        image_chunk("z", [1], None, blobs=[b"\x00\x00"], formats=[L8], draw_order=[1.0]),
        image_chunk("b", [2], None, blobs=[b"\x00\x00"], formats=[L8], draw_order=[1.0]),
        image_chunk("a", [3], None, blobs=[b"\x00\x00"], formats=[L8], draw_order=[2.0]),
        image_chunk("m", [4], None, blobs=[bytes(12)], formats=[RGB8]),  # default -10
    )
    layers = scene_at(s, None, None)
    assert [l.entity for l in layers] == ["/m", "/b", "/z", "/a"]
    assert canvas_size(layers) == (2, 2)


def test_entity_subtree():
    s = _store(
        image_chunk("world/cam", [1], None, blobs=[b"\x00\x00"], formats=[L8]),
        image_chunk("world/cam/depth", [2], None, blobs=[b"\x00\x00"], formats=[L8]),
        image_chunk("world/camera2", [3], None, blobs=[b"\x00\x00"], formats=[L8]),
    )
    assert [l.entity for l in scene_at(s, None, None, entity="world/cam")] == ["/world/cam", "/world/cam/depth"]
    assert [l.entity for l in scene_at(s, None, None, entity="/world/cam/depth")] == ["/world/cam/depth"]
    assert len(scene_at(s, None, None, entity="/")) == 3


def test_pixel_format_and_odd_size():
    s = _store(image_chunk("yuv", [1], None, blobs=[bytes(range(17))], formats=[NV12_3x3]))
    (l,) = scene_at(s, None, None)
    assert l.format.pixel_format == PixelFormat.NV12 and l.buffer.tolist() == list(range(17))


def test_bad_images_are_left_out_with_a_message():
    s = _store(
        image_chunk("short", [1], None, blobs=[bytes(11)], formats=[RGB8]),
        image_chunk("weird", [2], None, blobs=[bytes(2)], formats=[{"width": 2, "height": 1, "pixel_format": 99}]),
        image_chunk("good", [3], None, blobs=[bytes(2)], formats=[L8]),
    )
    problems: list = []
    layers = scene_at(s, None, None, problems=problems)
    assert [l.entity for l in layers] == ["/good"]
    assert len(problems) == 2
    short = next(p for p in problems if p.startswith("/short"))
    assert "12" in short and "11" in short  # expected and actual byte counts
    weird = next(p for p in problems if p.startswith("/weird"))
    assert "99" in weird
    with pytest.warns(SceneWarning) as record:
        scene_at(s, None, None)
    assert sorted(str(w.message).split(":")[0] for w in record) == ["/short", "/weird"]


def test_cleared_buffer_is_not_drawn():
    s = _store(
        image_chunk("cam", [1], {"step": [0]}, blobs=[b"\x01\x02"], formats=[L8]),
        image_chunk("cam", [2], {"step": [5]}, formats=[L8]),
    )
    # an explicit empty buffer batch at step 7 clears the image
    import pyarrow as pa
    from store_helpers import mk

    from pixelrun.engine.chunk import IMAGE_BUFFER

    empty = pa.array([[]], type=pa.list_(pa.list_(pa.uint8())))
    s.add_chunk(mk("cam", [3], {"step": [7]}, {IMAGE_BUFFER: empty}))
    assert len(scene_at(s, "step", 6)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scene_at(s, "step", 7) == []


def test_times_of():
    s = _store(
        image_chunk("a", [1, 2, 3], {"step": [5, 1, 5]}, blobs=[b"\x00\x00"] * 3),
        image_chunk("a", [4], None, formats=[L8]),
        image_chunk("b/c", [5], {"step": [9], "other": [100]}, formats=[L8]),
        image_chunk("b/c", [6], {"step": [3]}, blobs=[b"\x00\x00"]),
        image_chunk("d", [7], {"step": [42]}, opacity=[0.5]),  # no image data
    )
    assert times_of(s, "step").tolist() == [1, 3, 5, 9]
    assert times_of(s, "step", entity="b").tolist() == [3, 9]
    assert times_of(s, "other").tolist() == [100]  # a format row is image data too
    assert times_of(s, "nope").tolist() == []


def test_repeated_scenes_follow_new_rows():
    """Layers are reused while the same rows answer; a new row of any of the four
    components gives a new layer."""
    s = _store(
        image_chunk("cam", [1], None, formats=[L8]),
        image_chunk("cam", [2], {"step": [1]}, blobs=[b"\x01\x02"]),
    )
    (a,) = scene_at(s, "step", 5)
    (b,) = scene_at(s, "step", 5)
    assert b is a  # same rows: the same Layer object
    s.add_chunk(image_chunk("cam", [3], {"step": [2]}, blobs=[b"\x03\x04"]))
    (c,) = scene_at(s, "step", 5)
    assert c.buffer.tolist() == [3, 4]
    s.add_chunk(image_chunk("cam", [4], {"step": [3]}, opacity=[0.5]))
    (d,) = scene_at(s, "step", 5)
    assert (d.buffer.tolist(), d.opacity) == ([3, 4], 0.5)
    s.add_chunk(image_chunk("cam", [5], None,
                            formats=[{"width": 1, "height": 2, "color_model": 1, "channel_datatype": 6}]))
    (e,) = scene_at(s, "step", 5)
    assert (e.format.width, e.format.height, e.opacity) == (1, 2, 0.5)
    (f,) = scene_at(s, "step", 1)  # back in time: the older row again
    assert f.buffer.tolist() == [1, 2] and f.opacity == 1.0

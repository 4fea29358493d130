"""The hover readout: raw values in the source datatype and the display RGBA.

Expected raw values are written by hand from the byte layouts of contract §2/3 (not from
the format table's code); expected display colours come from the contract's formulas
computed here, or from the whole-image reference decode (a different code path from
the readout's tiny crops).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pixelrun.engine.viewer.inspect import ValueRangeCache, inspect_pixel
from pixelrun.kernels.formats import ImageFormat, PixelFormat
from pixelrun.kernels.reference import convert as reference


def q(x: float) -> int:
    return int(math.floor(min(max(x, 0.0), 1.0) * 255 + 0.5))


def nv12_bytes(w: int, h: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    return rng.integers(0, 256, w * h + 2 * cw * ch, dtype=np.uint8)


def test_nv12_raw_yuv_from_hand_addressing_and_bt601_colour():
    w, h = 7, 5  # odd: the last chroma sample covers one pixel
    buf = nv12_bytes(w, h)
    x, y = 6, 3
    cw = (w + 1) // 2
    Y = int(buf[y * w + x])
    U = int(buf[w * h + (y // 2) * 2 * cw + (x // 2) * 2])
    V = int(buf[w * h + (y // 2) * 2 * cw + (x // 2) * 2 + 1])
    ro = inspect_pixel("cam", 1, buf, ImageFormat(w, h, pixel_format=PixelFormat.NV12), x, y)
    assert ro.raw == (("Y", Y), ("U", U), ("V", V))
    yy, uu, vv = (Y - 16) / 219, (U - 128) / 224, (V - 128) / 224
    expected = (q(yy + 1.402 * vv), q(yy - 0.344 * uu - 0.714 * vv), q(yy + 1.772 * uu), 255)
    assert all(abs(a - b) <= 1 for a, b in zip(ro.display, expected)), (ro.display, expected)
    assert ro.kind == "NV12"


@pytest.mark.parametrize("fmt", [f for f in PixelFormat if not f.name.startswith("Bayer")])
@pytest.mark.parametrize("size", [(6, 4), (5, 3)])
def test_every_yuv_format_display_equals_whole_image_decode(fmt, size):
    w, h = size
    f = ImageFormat(w, h, pixel_format=fmt)
    buf = np.random.default_rng(int(fmt)).integers(0, 256, f.byte_count(), dtype=np.uint8)
    whole = reference.to_display_rgba(buf, f)
    for y in range(h):
        for x in range(w):
            ro = inspect_pixel("e", 2, buf, f, x, y)
            assert ro.display == tuple(int(c) for c in whole[y, x]), (fmt.name, x, y)


def test_yuy2_raw_samples():
    w, h = 4, 2  # rows of 4*cw = 8 bytes: Y0 U Y1 V Y2 U Y3 V
    buf = np.arange(16, dtype=np.uint8) + 100
    ro = inspect_pixel("e", 1, buf, ImageFormat(w, h, pixel_format=PixelFormat.YUY2), 3, 1)
    # row 1 starts at byte 8: Y2 is byte 8+4, Y3 is 8+6; its pair's U is 8+5, V is 8+7
    assert ro.raw == (("Y", 114), ("U", 113), ("V", 115))


def test_y8_has_only_y():
    buf = np.array([0, 50, 100, 255], dtype=np.uint8)
    ro = inspect_pixel("e", 1, buf, ImageFormat(2, 2, pixel_format=PixelFormat.Y8_FullRange), 1, 1)
    assert ro.raw == (("Y", 255),)
    assert ro.display == (255, 255, 255, 255)


@pytest.mark.parametrize("fmt", [PixelFormat.BayerRGGB8, PixelFormat.BayerGRBG8])
def test_bayer_raw_colour_and_display_equals_whole_decode(fmt):
    w, h = 7, 6
    f = ImageFormat(w, h, pixel_format=fmt)
    buf = np.random.default_rng(3).integers(0, 256, w * h, dtype=np.uint8)
    whole = reference.to_display_rgba(buf, f)
    pattern = fmt.name[5:9]
    for y in range(h):
        for x in range(w):
            ro = inspect_pixel("e", 1, buf, f, x, y)
            assert ro.raw == ((pattern[(y % 2) * 2 + x % 2], int(buf[y * w + x])),)
            assert ro.display == tuple(int(c) for c in whole[y, x]), (x, y)


def test_u16_luminance_raw_value_and_range_scaling():
    img = np.array([[0, 1000], [4095, 2000]], dtype=np.uint16)
    f = ImageFormat(2, 2, color_model="L", channel_datatype="U16")
    ro = inspect_pixel("depth", 7, img.view(np.uint8).reshape(-1), f, 0, 1, ranges=ValueRangeCache())
    assert ro.raw == (("L", 4095),)
    assert ro.display == (255, 255, 255, 255)  # the max of [0, 4095]
    ro = inspect_pixel("depth", 7, img.view(np.uint8).reshape(-1), f, 0, 0, ranges=ValueRangeCache())
    assert ro.raw == (("L", 0),)
    assert ro.display == (0, 0, 0, 255)
    ro = inspect_pixel("depth", 7, img.view(np.uint8).reshape(-1), f, 1, 0)
    t = q(1000 / 4095)
    assert ro.display == (t, t, t, 255)
    assert ro.kind == "L/U16"


def test_bgra_names_channels_by_colour_in_memory_order():
    px = np.array([[[10, 20, 30, 128]]], dtype=np.uint8)  # B G R A
    f = ImageFormat(1, 1, color_model="BGRA", channel_datatype="U8")
    ro = inspect_pixel("e", 1, px.reshape(-1), f, 0, 0)
    assert ro.raw == (("B", 10), ("G", 20), ("R", 30), ("A", 128))
    assert ro.display == (30, 20, 10, 128)


def test_float_nan_is_magenta_and_raw_keeps_the_float():
    img = np.array([[[0.25, np.nan, 0.5]]], dtype=np.float32)
    f = ImageFormat(1, 1, color_model="RGB", channel_datatype="F32")
    ro = inspect_pixel("e", 1, img.view(np.uint8).reshape(-1), f, 0, 0)
    assert ro.raw[0] == ("R", 0.25)
    assert math.isnan(ro.raw[1][1])
    assert ro.display == (255, 0, 255, 255)


def test_outside_the_image_is_none():
    f = ImageFormat(3, 2, color_model="RGB", channel_datatype="U8")
    buf = np.zeros(18, np.uint8)
    assert inspect_pixel("e", 1, buf, f, 3, 0) is None
    assert inspect_pixel("e", 1, buf, f, 0, -1) is None


def test_value_range_is_computed_once_per_row():
    calls = []

    class Spy(ValueRangeCache):
        def get(self, row_id, buffer, fmt):
            calls.append(row_id)
            return super().get(row_id, buffer, fmt)

    cache = Spy()
    img = np.arange(16, dtype=np.int16).reshape(4, 4) * 100
    f = ImageFormat(4, 4, color_model="L", channel_datatype="I16")
    for x in range(4):
        inspect_pixel("e", 9, img.view(np.uint8).reshape(-1), f, x, 0, ranges=cache)
    assert calls == [9, 9, 9, 9]
    assert list(cache._cache) == [9]  # one entry: the scan happened once

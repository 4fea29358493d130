"""WGSL conversion (kernels/wgpu/convert.py via kernels/wgpu/backend.py) beyond the shared
conformance suite: tiles, upload padding, 64-bit and float64 extremes, explicit ranges
with huge integer spans, NaN/Inf, and pipeline caching.

Expected bytes are written out here from contract §3's formulas (q, the range rule, the
exact integer formula of formats.py's precision contract), or, for the tiling test,
taken from the NumPy reference (the oracle).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pixelrun.kernels.formats import ImageFormat, PixelFormat
from pixelrun.kernels.reference import convert as reference
from pixelrun.kernels.wgpu import backend as gpu_convert

ok, why = gpu_convert.is_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no wgpu adapter: {why}")

MAGENTA = (255, 0, 255, 255)


def q(t: float) -> int:
    return int(math.floor(min(max(t, 0.0), 1.0) * 255 + 0.5))


def gray(v: int) -> tuple:
    return (v, v, v, 255)


def convert(arr: np.ndarray, model: str, value_range=None) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    fmt = ImageFormat(w, h, color_model=model, channel_datatype=arr.dtype)
    return gpu_convert.to_display_rgba(arr.view(np.uint8).reshape(-1), fmt, value_range)


@pytest.fixture(scope="module")
def converter():
    from pixelrun.kernels.wgpu import device as gpu
    from pixelrun.kernels.wgpu.convert import converter_for

    return converter_for(gpu.get_device())


@pytest.mark.parametrize(
    "fmt",
    [
        ImageFormat(19, 11, color_model="RGB", channel_datatype="U8"),
        ImageFormat(19, 11, color_model="BGRA", channel_datatype="F32"),
        ImageFormat(19, 11, color_model="L", channel_datatype="I16"),
        ImageFormat(19, 11, pixel_format=PixelFormat.NV12),
        ImageFormat(19, 11, pixel_format=PixelFormat.YUY2),
        ImageFormat(19, 11, pixel_format=PixelFormat.BayerRGGB8),
    ],
    ids=lambda f: f.describe(),
)
def test_tiled_decode_equals_reference(converter, fmt):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    if fmt.datatype.name == "F32":
        data = rng.normal(0, 2, fmt.byte_count() // 4).astype("<f4").view(np.uint8)
    want = reference.to_display_rgba(data, fmt)
    raw = converter.upload(data, fmt)
    tiles = converter.decode(raw, fmt, max_tile=4)
    assert len(tiles) == 5 * 3
    got = converter.read_tiles(tiles, fmt.width, fmt.height)
    assert np.abs(got.astype(int) - want).max() <= (0 if fmt.pixel_format is None and fmt.datatype.name != "F32" else 1)


def test_three_byte_rgb_is_uploaded_as_is():
    got = convert(np.array([[[10, 20, 30]]], np.uint8), "RGB")
    assert tuple(got[0, 0]) == (10, 20, 30, 255)


def test_odd_width_rgb_rows_are_not_padded():
    img = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(3, 5, 3)
    got = convert(img, "RGB")
    assert np.array_equal(got[..., :3], img) and np.all(got[..., 3] == 255)


def test_float64_huge_magnitudes_keep_their_order():
    # range [min, max] = [-1e300, 1e300]: t = 0, 0.5, 1 (float64 data outside f32's range)
    got = convert(np.array([[-1e300, 0.0, 1e300, 5e299]], "<f8"), "L")
    assert [tuple(p) for p in got[0]] == [gray(0), gray(q(0.5)), gray(255), gray(q(0.75))]


def test_float64_tiny_magnitudes_keep_their_order():
    got = convert(np.array([[-1e-300, 0.0, 1e-300]], "<f8"), "L")
    assert [tuple(p) for p in got[0]] == [gray(0), gray(q(0.5)), gray(255)]


def test_64bit_constant_image_is_mid_grey():
    # contract §3.1: min = max -> [v - 1, v + 1], so t = 0.5 whatever v is
    v = 2**62 + 1
    got = convert(np.full((2, 3), v, "<i8"), "L")
    assert np.all(got == np.array(gray(q(0.5)), np.uint8))


def test_u64_narrow_range_near_the_top_of_the_type():
    top = 2**64 - 1
    got = convert(np.array([[top - 2, top - 1, top]], "<u8"), "L")
    assert [tuple(p) for p in got[0]] == [gray(0), gray(q(0.5)), gray(255)]


@pytest.mark.parametrize("dtype", ["<f2", "<f4", "<f8"])
def test_nan_and_inf_are_magenta_alpha_nan_is_zero(dtype):
    px = np.array([[[0.5, np.nan, 0.5, 1.0], [np.inf, 0.2, 0.2, 1.0],
                    [0.2, 0.4, 0.6, np.nan], [0.2, 0.4, 0.6, 0.5]]], dtype)
    got = convert(px, "RGBA")
    assert tuple(got[0, 0]) == MAGENTA and tuple(got[0, 1]) == MAGENTA
    # finite colour range [0.2, 0.6] lies in [0, 1] -> [0, 1]
    assert tuple(got[0, 2]) == (q(float(px[0, 2, 0])), q(float(px[0, 2, 1])), q(float(px[0, 2, 2])), 0)
    assert tuple(got[0, 3]) == (q(float(px[0, 3, 0])), q(float(px[0, 3, 1])), q(float(px[0, 3, 2])), q(0.5))


def test_all_nonfinite_image_is_all_magenta():
    got = convert(np.full((2, 2), np.nan, "<f4"), "L")
    assert np.all(got == np.array(MAGENTA, np.uint8))


def test_explicit_integer_range_with_a_huge_span_is_exact():
    lo, hi = -(2**35), 2**36
    vals = [0, 1, 2, 1000, 65535]
    got = convert(np.array([vals], "<u2"), "L", value_range=(lo, hi))
    d = hi - lo
    want = [min(max((510 * (x - lo) + d) // (2 * d), 0), 255) for x in vals]
    assert [int(p[0]) for p in got[0]] == want


def test_explicit_integer_range_exact_at_every_value():
    vals = np.arange(-300, 300, dtype="<i2").reshape(1, -1)
    got = convert(vals, "L", value_range=(-7, 250))
    d = 257
    want = [min(max((510 * (int(x) + 7) + d) // (2 * d), 0), 255) for x in vals[0]]
    assert got[0, :, 0].tolist() == want


def test_explicit_float_range():
    got = convert(np.array([[0.0, 0.25, 0.5, 1.0]], "<f4"), "L", value_range=(0.0, 0.5))
    assert got[0, :, 0].tolist() == [0, q(0.5), 255, 255]


def test_bad_value_range_is_a_clear_error():
    with pytest.raises(ValueError, match="value_range"):
        convert(np.zeros((1, 1), "<u2"), "L", value_range=(5, 5))


def test_pipelines_are_built_once(converter):
    img = np.zeros((2, 2), "<u2")
    convert(img, "L")
    n = len(converter._pipelines)
    convert(img + 1, "L")
    convert(img + 2, "L")
    assert len(converter._pipelines) == n

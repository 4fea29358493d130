"""The NumPy reference decoder against expected bytes built by hand, per contract §2 and 3.

Nothing here calls the code under test to build an expected value: the plane packing,
the YUV formula, the Bayer neighbourhood means, the value-range rule and the alpha
rule are all written out below from docs/contract.md, pixel by pixel, on small images.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat
from pixelrun.kernels.reference.convert import (
    is_available,
    srgb_decode,
    srgb_encode,
    to_display_rgba,
    value_range_for,
)
from pixelrun.kernels.reference.convert import (
    q as ref_q,
)

ODD_SIZES = [(1, 1), (3, 5), (7, 2), (5, 1)]
SIZES = ODD_SIZES + [(4, 4), (6, 3)]
MAGENTA = [255, 0, 255, 255]

# --------------------------------------------------------------- the contract, written out here


def q(x: float) -> int:
    """the contract: floor(clamp(x, 0, 1) * 255 + 0.5), in float64."""
    return int(math.floor(min(max(x, 0.0), 1.0) * 255.0 + 0.5))


def q_exact(t: Fraction) -> int:
    """The same q in exact rational arithmetic (integer types <= 16 bits)."""
    return math.floor(min(max(t, Fraction(0)), Fraction(1)) * 255 + Fraction(1, 2))


def srgb(c: float) -> float:
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


BT601 = (1.402, 0.344, 0.714, 1.772)  # rv, gu, gv, bu
BT709 = (1.575, 0.187, 0.468, 1.856)
LIMITED = (16.0, 219.0, 224.0)  # y offset, y scale, chroma scale
FULL = (0.0, 255.0, 255.0)

# name -> (packing, chroma shift x, chroma shift y, matrix, range)
YUV = {
    "Y_U_V24_LimitedRange": ("planar", 0, 0, BT709, LIMITED),
    "Y_U_V24_FullRange": ("planar", 0, 0, BT709, FULL),
    "Y_U_V16_LimitedRange": ("planar", 1, 0, BT709, LIMITED),
    "Y_U_V16_FullRange": ("planar", 1, 0, BT709, FULL),
    "Y_U_V12_LimitedRange": ("planar", 1, 1, BT709, LIMITED),
    "Y_U_V12_FullRange": ("planar", 1, 1, BT709, FULL),
    "NV12": ("nv12", 1, 1, BT601, LIMITED),
    "YUY2": ("yuy2", 1, 0, BT601, LIMITED),
    "Y8_FullRange": ("y8", 0, 0, BT709, FULL),
    "Y8_LimitedRange": ("y8", 0, 0, BT709, LIMITED),
}


def yuv_pixel(Y: int, U: int, V: int, matrix, rng) -> list[int]:
    rv, gu, gv, bu = matrix
    yo, ys, cs = rng
    y, u, v = (Y - yo) / ys, (U - 128) / cs, (V - 128) / cs
    return [q(y + rv * v), q(y - gu * u - gv * v), q(y + bu * u), 255]


def pack_yuv(name: str, Y: np.ndarray, U: np.ndarray, V: np.ndarray) -> bytes:
    """contract §2's plane table by hand. Y is (H, W); U and V are at chroma resolution."""
    packing = YUV[name][0]
    h, w = Y.shape
    if packing == "planar":
        return Y.tobytes() + U.tobytes() + V.tobytes()
    if packing == "y8":
        return Y.tobytes()
    if packing == "nv12":
        uv = np.stack([U, V], axis=-1)  # U0 V0 U1 V1 ...
        return Y.tobytes() + uv.tobytes()
    cw = (w + 1) // 2  # yuy2: Y0 U Y1 V per pixel pair; an odd width pads the last Y1
    rows = np.zeros((h, cw, 4), dtype=np.uint8)
    rows[:, :, 0] = Y[:, 0::2]
    rows[:, : w // 2, 2] = Y[:, 1::2]
    rows[:, :, 1], rows[:, :, 3] = U, V
    return rows.tobytes()


def yuv_planes(name, w, h, rng):
    _, sx, sy, _, _ = YUV[name]
    cw, ch = (w + 1) // 2 if sx else w, (h + 1) // 2 if sy else h
    Y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    U = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    V = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    if YUV[name][0] == "y8":
        U[:], V[:] = 128, 128
    return Y, U, V


def decode(data, w, h, **fmt):
    return to_display_rgba(data, ImageFormat(w, h, **fmt))


# ------------------------------------------------------------------------ YUV (contract §2)


@pytest.mark.parametrize("name", list(YUV))
@pytest.mark.parametrize("w,h", SIZES)
def test_yuv_random_planes_pixel_by_pixel(name, w, h):
    _, sx, sy, matrix, rng_ = YUV[name]
    Y, U, V = yuv_planes(name, w, h, np.random.default_rng(w * 100 + h))
    expected = [[yuv_pixel(int(Y[y, x]), int(U[y >> sy, x >> sx]), int(V[y >> sy, x >> sx]), matrix, rng_)
                 for x in range(w)] for y in range(h)]
    got = decode(pack_yuv(name, Y, U, V), w, h, pixel_format=PixelFormat[name])
    assert got.dtype == np.uint8 and got.shape == (h, w, 4)
    assert got.tolist() == expected


@pytest.mark.parametrize("name", [n for n in YUV if YUV[n][4] is LIMITED])
def test_limited_range_black_white_grey(name):
    w, h = 3, 5
    for Yv, want in [(16, 0), (235, 255), (126, 128), (0, 0), (255, 255)]:
        Y, U, V = yuv_planes(name, w, h, np.random.default_rng(0))
        Y[:], U[:], V[:] = Yv, 128, 128
        got = decode(pack_yuv(name, Y, U, V), w, h, pixel_format=PixelFormat[name])
        assert (got == [want, want, want, 255]).all(), (Yv, got[0, 0])


@pytest.mark.parametrize("name", [n for n in YUV if YUV[n][4] is FULL])
def test_full_range_grey_is_y(name):
    w = h = 16
    Y, U, V = yuv_planes(name, w, h, np.random.default_rng(0))
    Y[:] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    U[:], V[:] = 128, 128
    got = decode(pack_yuv(name, Y, U, V), w, h, pixel_format=PixelFormat[name])
    assert (got[..., :3] == Y[..., None]).all() and (got[..., 3] == 255).all()


# Pure colours encoded by hand with each matrix's inverse, rounded to bytes:
# (name, Y, U, V, colour that should come out within a few LSB)
PURE = [
    ("NV12", 81, 90, 240, (255, 0, 0)),  # BT.601 limited red
    ("NV12", 145, 54, 34, (0, 255, 0)),  # green
    ("YUY2", 41, 240, 110, (0, 0, 255)),  # blue
    ("Y_U_V24_LimitedRange", 63, 102, 240, (255, 0, 0)),  # BT.709 limited red
    ("Y_U_V24_FullRange", 54, 99, 255, (255, 0, 0)),  # BT.709 full red
    ("Y_U_V12_FullRange", 18, 255, 116, (0, 0, 255)),  # BT.709 full blue
]


@pytest.mark.parametrize("name,Yv,Uv,Vv,colour", PURE)
def test_pure_colours_through_the_spec_formula(name, Yv, Uv, Vv, colour):
    _, _, _, matrix, rng_ = YUV[name]
    w, h = 3, 5
    Y, U, V = yuv_planes(name, w, h, np.random.default_rng(0))
    Y[:], U[:], V[:] = Yv, Uv, Vv
    got = decode(pack_yuv(name, Y, U, V), w, h, pixel_format=PixelFormat[name])
    want = yuv_pixel(Yv, Uv, Vv, matrix, rng_)
    assert (got == want).all()
    assert max(abs(a - b) for a, b in zip(want[:3], colour)) <= 4


def test_odd_i420_last_chroma_sample_covers_last_pixel_alone():
    # 3x3 I420: chroma 2x2; pixel (2, 2) reads chroma (1, 1), pixels (0..1, 0..1) chroma (0, 0)
    Y = np.full((3, 3), 126, dtype=np.uint8)
    U = np.array([[128, 128], [128, 128]], dtype=np.uint8)
    V = np.array([[128, 128], [128, 240]], dtype=np.uint8)  # only the last block is red-shifted
    got = decode(pack_yuv("Y_U_V12_LimitedRange", Y, U, V), 3, 3, pixel_format=PixelFormat.Y_U_V12_LimitedRange)
    red = yuv_pixel(126, 128, 240, BT709, LIMITED)
    assert got[2, 2].tolist() == red
    assert (got[:2, :2] == [128, 128, 128, 255]).all()
    assert got[0, 2].tolist() == [128, 128, 128, 255] and got[2, 0].tolist() == [128, 128, 128, 255]


def test_yuy2_odd_width_padding_byte_is_ignored():
    Y = np.array([[16, 235, 126]], dtype=np.uint8)
    U = V = np.array([[128, 128]], dtype=np.uint8)
    data = bytearray(pack_yuv("YUY2", Y, U, V))
    assert len(data) == 8
    data[6] = 235  # the unused Y1 of the last pair
    got = decode(bytes(data), 3, 1, pixel_format=PixelFormat.YUY2)
    assert got[0, :, 0].tolist() == [0, 255, 128]


def test_pixel_formats_ignore_value_range():
    data = bytes(range(9 + 2 * 2 * 2))
    fmt = ImageFormat(3, 3, pixel_format=PixelFormat.NV12)
    assert (to_display_rgba(data, fmt, value_range=(0, 10)) == to_display_rgba(data, fmt)).all()


# ---------------------------------------------------------------------- Bayer (contract §2)


def bayer_expected(mosaic: np.ndarray, pattern: str) -> list:
    """Each pixel keeps its sample; a missing colour is the mean of that colour's samples in
    the 3x3 neighbourhood cut to the image (0 if there are none); then sRGB encode."""
    h, w = mosaic.shape
    def colour_at(x, y):
        return pattern[(y % 2) * 2 + (x % 2)]

    out = []
    for y in range(h):
        row = []
        for x in range(w):
            px = []
            for c in "RGB":
                if colour_at(x, y) == c:
                    value = float(mosaic[y, x])
                else:
                    vals = [float(mosaic[j, i]) for j in range(max(y - 1, 0), min(y + 2, h))
                            for i in range(max(x - 1, 0), min(x + 2, w)) if colour_at(i, j) == c]
                    value = sum(vals) / len(vals) if vals else 0.0
                px.append(q(srgb(value / 255.0)))
            row.append(px + [255])
        out.append(row)
    return out


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GBRG", "GRBG"])
@pytest.mark.parametrize("w,h", SIZES)
def test_bayer_neighbourhood_means(pattern, w, h):
    mosaic = np.random.default_rng(w * 10 + h).integers(0, 256, (h, w), dtype=np.uint8)
    got = decode(mosaic.tobytes(), w, h, pixel_format=PixelFormat[f"Bayer{pattern}8"])
    assert got.tolist() == bayer_expected(mosaic, pattern)


def test_bayer_rggb_2x2_worked_by_hand():
    # R=200 G=100 / G=50 B=20: every pixel sees the whole tile
    data = bytes([200, 100, 50, 20])
    got = decode(data, 2, 2, pixel_format=PixelFormat.BayerRGGB8)

    def e(v):
        return q(srgb(v / 255))

    assert got[0, 0].tolist() == [e(200), e(75), e(20), 255]  # G = (100 + 50) / 2
    assert got[0, 1].tolist() == [e(200), e(100), e(20), 255]  # own G
    assert got[1, 0].tolist() == [e(200), e(50), e(20), 255]
    assert got[1, 1].tolist() == [e(200), e(75), e(20), 255]
    assert e(200) == 229 and e(20) == 79  # 255*(1.055*(200/255)**(1/2.4)-0.055) = 229.1; 20 -> 79.1


def test_bayer_rggb_3x3_centre_edge_corner():
    m = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=np.uint8)
    got = decode(m.tobytes(), 3, 3, pixel_format=PixelFormat.BayerRGGB8)

    def e(v):
        return q(srgb(v / 255))

    # centre (1,1) is B: R = mean of the 4 corners, G = mean of the 4 edges
    assert got[1, 1].tolist() == [e((10 + 30 + 70 + 90) / 4), e((20 + 40 + 60 + 80) / 4), e(50), 255]
    # top edge (1,0) is G: R from (0,0),(2,0); B from (1,1)
    assert got[0, 1].tolist() == [e((10 + 30) / 2), e(20), e(50), 255]
    # corner (0,0) is R: G from (1,0),(0,1); B from (1,1)
    assert got[0, 0].tolist() == [e(10), e((20 + 40) / 2), e(50), 255]


def test_bayer_1x1_has_only_its_own_colour():
    got = decode(bytes([255]), 1, 1, pixel_format=PixelFormat.BayerGBRG8)
    assert got.tolist() == [[[0, 255, 0, 255]]]


# ------------------------------------------------------------ colour images (contract §3)

DT_NUMPY = {"U8": "<u1", "I8": "<i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4",
            "U64": "<u8", "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
HAS_ALPHA = {"L": False, "RGB": False, "RGBA": True, "BGR": False, "BGRA": True}


def spec_range(values, dt: str):
    """contract §3.1 over finite colour samples (alpha excluded)."""
    if dt == "U8":
        return (0, 255)
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if dt.startswith("F") and lo >= 0 and hi <= 1:
        return (0, 1)
    if lo >= 0 and hi <= 255:
        return (0, 255)
    if lo == hi:
        return (lo - 1, hi + 1)
    return (lo, hi)


def exact_path(dt: str) -> bool:
    return dt in ("U8", "I8", "U16", "I16")


def colour_byte(v, lo, hi, dt: str) -> int:
    if exact_path(dt):
        return q_exact(Fraction(int(v) - int(lo), int(hi) - int(lo)))
    if not dt.startswith("F"):  # 32/64-bit: float64, but of the exact integer differences
        return q(float(min(max(int(v), lo), hi) - lo) / float(hi - lo))
    return q((float(v) - float(lo)) / (float(hi) - float(lo)))


def alpha_byte(a, dt: str) -> int:
    if dt.startswith("F"):
        return 0 if math.isnan(a) else q(a)
    top = np.iinfo(np.dtype(DT_NUMPY[dt])).max
    if exact_path(dt):
        return q_exact(Fraction(max(int(a), 0), int(top)))
    return q(max(float(a), 0.0) / float(top))


def pack_colour(model: str, dt: str, rgba: list) -> bytes:
    """rgba: per pixel (r, g, b, a) (L uses r); packed in the model's own channel order."""
    order = {"L": (0,), "RGB": (0, 1, 2), "RGBA": (0, 1, 2, 3), "BGR": (2, 1, 0), "BGRA": (2, 1, 0, 3)}[model]
    flat = [p[i] for p in rgba for i in order]
    return np.array(flat, dtype=np.float64 if dt.startswith("F") else object).astype(DT_NUMPY[dt]).tobytes()


def expected_colour(model: str, dt: str, rgba: list, value_range=None) -> list:
    colour_samples = [p[0] for p in rgba] if model == "L" else [c for p in rgba for c in p[:3]]
    lo, hi = value_range if value_range is not None else spec_range(colour_samples, dt)
    out = []
    for r, g, b, a in rgba:
        chans = (r, r, r) if model == "L" else (r, g, b)
        if any(isinstance(c, float) and not math.isfinite(c) for c in chans):
            out.append(MAGENTA)
            continue
        alpha = alpha_byte(a, dt) if HAS_ALPHA[model] else 255
        out.append([colour_byte(c, lo, hi, dt) for c in chans] + [alpha])
    return out


def random_rgba(dt: str, n: int, seed: int) -> list:
    """n pixels of (r, g, b, a), stored-precision Python numbers of the datatype."""
    rng = np.random.default_rng(seed)
    npd = np.dtype(DT_NUMPY[dt])
    if dt.startswith("F"):
        vals = rng.uniform(-2.0, 3.0, (n, 4)).astype(npd)
        vals[:, 3] = rng.uniform(0.0, 1.0, n).astype(npd)
    else:
        ii = np.iinfo(npd)
        vals = rng.integers(ii.min, ii.max, (n, 4), dtype=npd, endpoint=True)
    return [tuple(p) for p in vals.tolist()]


@pytest.mark.parametrize("model", [m.name for m in ColorModel])
@pytest.mark.parametrize("dt", [d.name for d in ChannelDatatype])
@pytest.mark.parametrize("w,h", ODD_SIZES + [(4, 3)])
def test_colour_model_datatype_pixel_by_pixel(model, dt, w, h):
    rgba = random_rgba(dt, w * h, seed=w * 7 + h)
    got = decode(pack_colour(model, dt, rgba), w, h, color_model=model, channel_datatype=dt)
    want = expected_colour(model, dt, rgba)
    assert got.shape == (h, w, 4) and got.dtype == np.uint8
    assert got.reshape(-1, 4).tolist() == want


def L(dt, values, value_range=None):
    """Decode a 1-row L image; return its grey bytes."""
    data = np.array(values, dtype=DT_NUMPY[dt]).tobytes()
    fmt = ImageFormat(len(values), 1, color_model="L", channel_datatype=dt)
    return to_display_rgba(data, fmt, value_range=value_range)[0, :, 0].tolist()


@pytest.mark.parametrize("dt,values,want", [
    ("U16", [0, 1, 128, 255], [0, 1, 128, 255]),  # within [0, 255]: shown as bytes
    ("U16", [0, 100, 200, 300], [0, 85, 170, 255]),  # [min, max] = [0, 300]
    ("F32", [0.0, 0.25, 0.5, 1.0], [0, 64, 128, 255]),  # float within [0, 1]
    ("F32", [0.0, 0.5, 2.0], [0, 1, 2]),  # float above 1 but within 255
    ("F64", [-1.0, 0.0, 1.0], [0, 128, 255]),  # negative: [min, max]
    ("I16", [-3, -1, 0, 5], [0, 64, 96, 255]),  # 2/8 -> 63.75 -> 64; 3/8 -> 95.6 -> 96
    ("U16", [300, 300], [128, 128]),  # constant: [299, 301]
    ("I16", [-5, -5], [128, 128]),
    ("F32", [0.5, 0.5], [128, 128]),  # constant within [0, 1]: [0, 1]
    ("F32", [300.0, 300.0], [128, 128]),
    ("F32", [-2.0, -2.0], [128, 128]),
    ("I8", [7, 7], [7, 7]),  # constant within [0, 255]
    ("U8", [3, 250], [3, 250]),  # U8 is always [0, 255]
])
def test_value_range_rule(dt, values, want):
    assert L(dt, values) == want


def test_value_range_excludes_alpha():
    data = np.array([0, 10, 20, 65535, 5, 15, 25, 0], dtype="<u2").tobytes()
    got = to_display_rgba(data, ImageFormat(2, 1, color_model="RGBA", channel_datatype="U16"))
    assert got.tolist() == [[[0, 10, 20, 255], [5, 15, 25, 0]]]


@pytest.mark.parametrize("dt,values,value_range,want", [
    ("U16", [0, 500, 1000, 2000], (0, 1000), [0, 128, 255, 255]),
    ("U8", [0, 10, 15, 20, 30], (10, 20), [0, 0, 128, 255, 255]),
    ("I16", [-200, -100, 0, 100], (-100, 100), [0, 0, 128, 255]),
    ("F32", [-1.0, 0.0, 1.0, 3.0], (-1.0, 1.0), [0, 128, 255, 255]),
    ("U16", [0, 500, 1000], (100.5, 999.25), [0, q(399.5 / 898.75), 255]),
    ("I64", [-(10**6), 0, 10**6], (-(10**6), 10**6), [0, 128, 255]),
    ("U64", [2**63, 2**63 + 1, 2**63 + 2], (2**63, 2**63 + 2), [0, 128, 255]),  # exact ints
])
def test_explicit_value_range_overrides_rule(dt, values, value_range, want):
    assert L(dt, values, value_range) == want


@pytest.mark.parametrize("value_range", [(5, 5), (10, 1), (0, float("inf")), (float("nan"), 1), "ab", (1,)])
def test_bad_value_range_is_refused(value_range):
    with pytest.raises(ValueError, match="value_range"):
        L("U16", [1, 2], value_range)


@pytest.mark.parametrize("dt", ["F16", "F32", "F64"])
def test_nan_and_inf_are_magenta(dt):
    nan, inf = float("nan"), float("inf")
    values = [nan, 0.5, 0.5, 0.2, inf, 0.1, 0.3, 0.3, -inf, 0.875, 0.375, 0.0, 0.25, 0.5, 1.0]
    data = np.array(values).astype(DT_NUMPY[dt]).tobytes()
    got = to_display_rgba(data, ImageFormat(5, 1, color_model="RGB", channel_datatype=dt))
    assert got[0, :3].tolist() == [MAGENTA] * 3
    # the finite samples decide the range: all within [0, 1]
    # 0.875 * 255 = 223.1 -> 223; 0.375 * 255 = 95.6 -> 96; 0.25 * 255 = 63.75 -> 64
    assert got[0, 3].tolist() == [223, 96, 0, 255] and got[0, 4].tolist() == [64, 128, 255, 255]
    # L and RGBA too (alpha is overridden), and an image with no finite sample at all
    assert L(dt, [nan, -2.0, 4.0]) == [255, 0, 255]
    assert L(dt, [nan, inf]) == [255, 255]
    rgba = np.array([0.2, nan, 0.2, 0.5], dtype=DT_NUMPY[dt]).tobytes()
    assert to_display_rgba(rgba, ImageFormat(1, 1, color_model="RGBA", channel_datatype=dt)).tolist() == [[MAGENTA]]


@pytest.mark.parametrize("dt,alphas,want", [
    ("U8", [0, 128, 255], [0, 128, 255]),
    ("U16", [0, 32767, 32768, 65535], [0, 127, 128, 255]),  # 127.498 / 127.504
    ("I16", [-32768, -1, 16384, 32767], [0, 0, 128, 255]),  # signed: clamp at 0
    ("I8", [-128, -1, 64, 127], [0, 0, 129, 255]),  # 64/127*255 = 128.5 -> 129
    ("U32", [0, 2147483648, 4294967295], [0, 128, 255]),
    ("I32", [-5, 2**29, 2**31 - 1], [0, 64, 255]),  # 2**29 / (2**31 - 1) * 255 = 63.75
    ("U64", [0, 2**63, 2**64 - 1], [0, 128, 255]),
    ("I64", [-(2**63), 2**61, 2**63 - 1], [0, 64, 255]),
    ("F16", [-0.5, 0.5, 2.0], [0, 128, 255]),  # floats as they are, clamped
    ("F32", [-0.5, 0.25, 2.0], [0, 64, 255]),
    ("F64", [float("-inf"), 0.75, float("inf")], [0, 191, 255]),
])
def test_alpha_by_type_maximum(dt, alphas, want):
    rgba = [(1, 2, 3, a) if not dt.startswith("F") else (0.1, 0.2, 0.3, a) for a in alphas]
    for model in ("RGBA", "BGRA"):
        got = decode(pack_colour(model, dt, rgba), len(alphas), 1, color_model=model, channel_datatype=dt)
        assert got[0, :, 3].tolist() == want


def test_nan_alpha_is_transparent():
    data = np.array([0.1, 0.2, 0.3, float("nan")], dtype="<f4").tobytes()
    got = to_display_rgba(data, ImageFormat(1, 1, color_model="RGBA", channel_datatype="F32"))
    assert got.tolist() == [[[26, 51, 77, 0]]]


def test_huge_constant_float_image_is_mid_grey():
    # [v - 1, v + 1] rounds to [v, v] in float64 beyond 2**53; the contract's t is still 1/2
    assert L("F64", [1e20, 1e20]) == [128, 128]
    assert L("F32", [-1e20, -1e20]) == [128, 128]


def test_f16_values_and_extremes():
    assert L("F16", [0.0, 0.25, 0.5, 1.0]) == [0, 64, 128, 255]
    assert L("F16", [-65504.0, 0.0, 65504.0]) == [0, 128, 255]


def test_64_bit_types():
    assert L("U64", [0, 2**63, 2**64 - 1]) == [0, 128, 255]
    assert L("I64", [-(2**63), 0, 2**63 - 1]) == [0, 128, 255]
    assert L("U64", [0, 17, 255]) == [0, 17, 255]  # small values are shown as bytes
    assert L("U64", [2**40, 2**40]) == [128, 128]  # constant: [v - 1, v + 1]
    # huge values with a narrow range: differences are taken exactly before rounding
    assert L("U64", [2**64 - 1, 2**64 - 1]) == [128, 128]
    assert L("I64", [-(2**63), -(2**63)]) == [128, 128]
    assert L("U64", [2**63, 2**63 + 2, 2**63 + 4]) == [0, 128, 255]
    assert L("I32", [-(2**31), 0, 2**31 - 1]) == [0, 128, 255]
    assert L("U32", [0, 1000, 2000]) == [0, 128, 255]


def test_buffers_are_little_endian_whatever_the_host():
    values = [0, 256, 512]
    little = np.array(values, dtype="<u2").tobytes()
    assert L_bytes("U16", little, 3) == [0, 128, 255]
    # the same numbers from a big-endian array, byte-swapped into the contract, decode the same
    assert L_bytes("U16", np.array(values, dtype=">u2").astype("<u2").tobytes(), 3) == [0, 128, 255]
    # and raw big-endian bytes are read as little-endian numbers (0, 1, 2): not guessed
    assert L_bytes("U16", np.array(values, dtype=">u2").tobytes(), 3) == [0, 1, 2]


def L_bytes(dt, data, w):
    return to_display_rgba(data, ImageFormat(w, 1, color_model="L", channel_datatype=dt))[0, :, 0].tolist()


# ------------------------------------------------------------------- inputs and helpers


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8)])
def test_accepts_every_buffer_kind(kind):
    data = bytes([16, 235, 126, 16, 235, 126, 128, 128, 128, 128])  # 3x2 I420-sized NV12
    got = to_display_rgba(kind(data), ImageFormat(3, 2, pixel_format=PixelFormat.NV12))
    assert got[:, :, 0].tolist() == [[0, 255, 128], [0, 255, 128]]


def test_accepts_non_contiguous_uint8_array():
    data = np.zeros(20, dtype=np.uint8)
    data[::2] = [0, 50, 100, 150, 200, 250, 7, 8, 9, 10]
    got = to_display_rgba(data[::2], ImageFormat(10, 1))
    assert got[0, :, 0].tolist() == [0, 50, 100, 150, 200, 250, 7, 8, 9, 10]


def test_accepts_strided_and_typed_memoryviews():
    data = np.arange(20, dtype=np.uint8)
    assert to_display_rgba(memoryview(data)[::2], ImageFormat(10, 1))[0, :, 0].tolist() == list(range(0, 20, 2))
    # a memoryview of wider items is still read as its raw little-endian bytes
    words = np.array([0, 256, 512], dtype="<u2")
    fmt = ImageFormat(3, 1, color_model="L", channel_datatype="U16")
    assert to_display_rgba(memoryview(words), fmt)[0, :, 0].tolist() == [0, 128, 255]


def test_refuses_non_byte_input():
    with pytest.raises(ValueError, match="uint8 array, got a uint16 array"):
        to_display_rgba(np.zeros(4, dtype=np.uint16), ImageFormat(2, 2))
    with pytest.raises(ValueError, match="got list"):
        to_display_rgba([0, 0, 0, 0], ImageFormat(2, 2))


def test_default_format_is_l_u8():
    got = to_display_rgba(bytes([9, 99]), ImageFormat(2, 1))
    assert got.tolist() == [[[9, 9, 9, 255], [99, 99, 99, 255]]]


def test_q_srgb_and_value_range_helpers():
    assert ref_q(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])).tolist() == [0, 0, 128, 255, 255, 0]
    c = np.linspace(0.0, 1.0, 101)
    assert np.allclose(srgb_decode(srgb_encode(c)), c, atol=1e-12)
    assert srgb_encode(np.array([0.0, 0.0031308, 1.0])).tolist() == pytest.approx([0.0, 0.04044994, 1.0], abs=1e-7)
    assert float(srgb_encode(0.5)) == pytest.approx(srgb(0.5))
    assert value_range_for(np.array([5, 9], dtype="<u2"), ChannelDatatype.U16) == (0, 255)
    assert value_range_for(np.array([300], dtype="<u2"), ChannelDatatype.U16) == (299, 301)
    assert value_range_for(np.array([np.nan, 0.5], dtype="<f4"), ChannelDatatype.F32) == (0.0, 1.0)
    assert value_range_for(np.array([2**63 - 1, -(2**63)], dtype="<i8"), ChannelDatatype.I64) == (-(2**63), 2**63 - 1)
    assert is_available() == (True, "")

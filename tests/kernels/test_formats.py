"""The format table against docs/contract.md, with every expected number written here by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
    check,
    datatype_from_numpy,
    parse_color_model,
    parse_datatype,
    parse_pixel_format,
    validate,
)
from pixelrun.kernels.reference import convert as reference

SIZES = [(1, 1), (3, 5), (7, 2), (5, 1), (2, 2), (640, 480), (1919, 1081)]

# contract §1: Rerun's numeric values
RERUN_COLOR_MODELS = {"L": 1, "RGB": 2, "RGBA": 3, "BGR": 4, "BGRA": 5}
RERUN_DATATYPES = {"U8": 6, "I8": 7, "U16": 8, "I16": 9, "U32": 10, "I32": 11, "U64": 12,
                   "I64": 13, "F16": 33, "F32": 34, "F64": 35}
RERUN_PIXEL_FORMATS = {
    "Y_U_V12_LimitedRange": 20, "NV12": 26, "YUY2": 27, "Y8_FullRange": 30,
    "Y_U_V24_LimitedRange": 39, "Y_U_V24_FullRange": 40, "Y8_LimitedRange": 41,
    "Y_U_V12_FullRange": 44, "Y_U_V16_LimitedRange": 49, "Y_U_V16_FullRange": 50,
    "BayerRGGB8": 128, "BayerBGGR8": 129, "BayerGBRG8": 130, "BayerGRBG8": 131,
}
# pixelrun's own camera layouts (ROS bags), outside Rerun's values
PIXELRUN_PIXEL_FORMATS = {"UYVY": 200, "NV21": 201, "I420": 202, "BayerRGGB16": 210, "BayerBGGR16": 211,
                          "BayerGBRG16": 212, "BayerGRBG16": 213}
CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4, "BGR": 3, "BGRA": 4}
SAMPLE_BYTES = {"U8": 1, "I8": 1, "U16": 2, "I16": 2, "U32": 4, "I32": 4, "U64": 8, "I64": 8,
                "F16": 2, "F32": 4, "F64": 8}


def spec_pixel_format_bytes(name: str, w: int, h: int) -> int:
    """contract §2's byte column, written out."""
    n, cw, ch = w * h, (w + 1) // 2, (h + 1) // 2
    if name.startswith("Y_U_V24"):
        return 3 * n
    if name.startswith("Y_U_V16"):
        return n + 2 * cw * h
    if name.startswith("Y_U_V12") or name in ("NV12", "NV21", "I420"):
        return n + 2 * cw * ch
    if name in ("YUY2", "UYVY"):
        return 4 * cw * h
    if name.startswith("Bayer") and name.endswith("16"):
        return 2 * n
    return n  # Y8_*, Bayer*


def all_formats(w: int, h: int):
    for pf in PixelFormat:
        yield ImageFormat(w, h, pixel_format=pf), spec_pixel_format_bytes(pf.name, w, h)
    for m in ColorModel:
        for dt in ChannelDatatype:
            fmt = ImageFormat(w, h, color_model=m, channel_datatype=dt)
            yield fmt, w * h * CHANNELS[m.name] * SAMPLE_BYTES[dt.name]


def test_enum_values_are_reruns():
    assert {m.name: m.value for m in ColorModel} == RERUN_COLOR_MODELS
    assert {d.name: d.value for d in ChannelDatatype} == RERUN_DATATYPES
    assert {p.name: p.value for p in PixelFormat} == {**RERUN_PIXEL_FORMATS, **PIXELRUN_PIXEL_FORMATS}
    assert set(PIXEL_FORMATS) == set(PixelFormat) and set(COLOR_MODELS) == set(ColorModel)
    assert set(DATATYPES) == set(ChannelDatatype)


@pytest.mark.parametrize("w,h", SIZES)
def test_byte_counts_match_spec(w, h):
    for fmt, expected in all_formats(w, h):
        assert fmt.byte_count() == expected, fmt.describe()
        assert validate(expected, fmt) is None


@pytest.mark.parametrize("w,h", [(1, 1), (3, 5), (7, 2), (5, 1), (4, 4)])
@pytest.mark.parametrize("delta,word", [(-1, "1 too few"), (1, "1 too many")])
def test_wrong_byte_count_gives_precise_message(w, h, delta, word):
    for fmt, expected in all_formats(w, h):
        n = expected + delta
        msg = validate(n, fmt)
        assert msg is not None, fmt.describe()
        kind = fmt.pixel_format.name if fmt.pixel_format is not None else f"{fmt.model.name}/{fmt.datatype.name}"
        for part in (f"{kind} {w}x{h}", f"needs {expected} bytes", f"has {n}", word):
            assert part in msg, (part, msg)
        # the reference refuses with the same message, and so does check() with the entity
        with pytest.raises(ValueError) as info:
            reference.to_display_rgba(bytes(n), fmt)
        assert str(info.value) == msg
        with pytest.raises(ValueError, match="^world/cam: "):
            check(n, fmt, entity="world/cam")


def test_zero_size_is_refused():
    msg = validate(0, ImageFormat(0, 4, pixel_format=PixelFormat.NV12))
    assert msg is not None and "0x4" in msg and "at least 1" in msg


def test_plane_layout_of_odd_i420():
    # 3x5 I420: Y 15 bytes, then U and V of cw=2 x ch=3 each
    layout = PIXEL_FORMATS[PixelFormat.Y_U_V12_LimitedRange].yuv_layout(3, 5)
    assert layout.y.as_tuple() == (0, 3, 1, 0, 0)
    assert layout.u.as_tuple() == (15, 2, 1, 1, 1)
    assert layout.v.as_tuple() == (21, 2, 1, 1, 1)


def test_plane_layout_of_nv12_yuy2_i422_y8():
    assert PIXEL_FORMATS[PixelFormat.NV12].yuv_layout(5, 3).u.as_tuple() == (15, 6, 2, 1, 1)
    assert PIXEL_FORMATS[PixelFormat.NV12].yuv_layout(5, 3).v.as_tuple() == (16, 6, 2, 1, 1)
    yuy2 = PIXEL_FORMATS[PixelFormat.YUY2].yuv_layout(5, 2)
    assert (yuy2.y.as_tuple(), yuy2.u.as_tuple(), yuy2.v.as_tuple()) == (
        (0, 12, 2, 0, 0), (1, 12, 4, 1, 0), (3, 12, 4, 1, 0))
    i422 = PIXEL_FORMATS[PixelFormat.Y_U_V16_FullRange].yuv_layout(5, 2)
    assert i422.u.as_tuple() == (10, 3, 1, 1, 0) and i422.v.as_tuple() == (16, 3, 1, 1, 0)
    y8 = PIXEL_FORMATS[PixelFormat.Y8_LimitedRange].yuv_layout(5, 2)
    assert y8.u is None and y8.v is None


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GBRG", "GRBG"])
def test_bayer_offsets(pattern):
    offsets = PIXEL_FORMATS[PixelFormat[f"Bayer{pattern}8"]].bayer_offsets()
    tile = [(0, 0), (1, 0), (0, 1), (1, 1)]
    for colour in "RGB":
        assert sorted(offsets[colour]) == sorted(t for t, c in zip(tile, pattern) if c == colour)


def test_matrices_and_ranges_per_spec():
    for pf, info in PIXEL_FORMATS.items():
        if pf.name.startswith("Bayer"):
            assert info.matrix is None
            continue
        bt601 = (PixelFormat.NV12, PixelFormat.YUY2, PixelFormat.UYVY, PixelFormat.NV21, PixelFormat.I420)
        want = "BT.601" if pf in bt601 else "BT.709"
        assert info.matrix.name == want, pf.name
        limited = "Limited" in pf.name or pf in bt601
        assert info.range.name == ("limited" if limited else "full"), pf.name


def test_parse_names_values_and_dtypes():
    assert parse_color_model("rgb") is ColorModel.RGB
    assert parse_color_model(5) is ColorModel.BGRA
    assert parse_datatype("f16") is ChannelDatatype.F16
    assert parse_datatype(np.dtype(">u2")) is ChannelDatatype.U16
    assert parse_pixel_format("nv12") is PixelFormat.NV12
    assert datatype_from_numpy(np.dtype(">i8")) is ChannelDatatype.I64
    assert datatype_from_numpy(np.dtype(bool)) is None
    with pytest.raises(ValueError, match="unknown color model 'rgbx'"):
        parse_color_model("rgbx")
    with pytest.raises(ValueError, match="unknown pixel format value 21"):
        parse_pixel_format(21)


def test_image_format_defaults_and_describe():
    fmt = ImageFormat(4, 3)
    assert fmt.model is ColorModel.L and fmt.datatype is ChannelDatatype.U8
    assert ImageFormat(4, 3, color_model="RGB", channel_datatype="U16").describe() == "RGB/U16 4x3"
    assert ImageFormat(4, 3, pixel_format=26, color_model="RGB").describe() == "NV12 4x3"
    with pytest.raises(ValueError, match="width must be a non-negative integer"):
        ImageFormat(-1, 3)

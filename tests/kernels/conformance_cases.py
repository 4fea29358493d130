"""The shared conformance cases: the same inputs for every conversion backend.

`CASES` is a list of `Case(id, data, format, value_range, exact)`:
- data: the raw bytes (little-endian samples), exactly `format.byte_count()` long;
- value_range: None (contract §3.1's automatic rule) or an explicit (lo, hi);
- exact: True where formats.py's precision contract demands bit-exact bytes (integer
  channel types of at most 16 bits, automatic or integer explicit range); False for
  float paths, where a backend may differ from the NumPy reference by at most 1.

Cases cover every PixelFormat and every ColorModel x ChannelDatatype at odd and even
sizes, random and gradient content, constant images, type extremes, NaN/+-Inf and
explicit value ranges. Everything is deterministic: each case's random generator is
seeded from its id, so adding a case never changes another.

Kept within float32's reach on purpose (contract §3.5: 64-bit values "only have to round
like float32"): no 64-bit case puts a narrow range far from zero.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple, Optional

import numpy as np

from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
)
from pixelrun.kernels.samples import all_samples

ODD_SIZES = [(1, 1), (3, 5), (7, 2), (5, 1)]
SIZES = ODD_SIZES + [(2, 2), (16, 9), (33, 17)]


class Case(NamedTuple):
    id: str
    data: bytes
    format: ImageFormat
    value_range: Optional[tuple[float, float]]
    exact: bool


def _rng(case_id: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case_id.encode()))


def _is_exact(dt: ChannelDatatype, value_range) -> bool:
    """The precision contract (formats.py), restated as a rule for the test's `exact` flag."""
    info = DATATYPES[dt]
    if info.is_float or info.size > 2:
        return False
    return value_range is None or all(float(v).is_integer() for v in value_range)


def _color(case_id, model, dt, w, h, pixels, value_range=None) -> Case:
    info = DATATYPES[dt]
    arr = np.asarray(pixels).astype(info.numpy).reshape(h, w, COLOR_MODELS[model].channels)
    fmt = ImageFormat(w, h, color_model=model, channel_datatype=dt)
    return Case(case_id, arr.tobytes(), fmt, value_range, _is_exact(dt, value_range))


def _random_values(rng, dt: ChannelDatatype, shape) -> np.ndarray:
    info = DATATYPES[dt]
    if info.is_float:
        return rng.uniform(-100.0, 400.0, size=shape)
    ii = np.iinfo(info.numpy)
    return rng.integers(ii.min, ii.max, size=shape, dtype=info.numpy, endpoint=True)


def _pixel_format_cases() -> list[Case]:
    out = []
    for pf in PixelFormat:
        info = PIXEL_FORMATS[pf]
        for w, h in SIZES:
            cid = f"{pf.name}-{w}x{h}-random"
            data = _rng(cid).integers(0, 256, size=info.byte_count(w, h), dtype=np.uint8)
            out.append(Case(cid, data.tobytes(), ImageFormat(w, h, pixel_format=pf), None, False))
        for extreme in (0, 255):  # clamping at both ends
            cid = f"{pf.name}-5x3-all{extreme}"
            data = bytes([extreme]) * info.byte_count(5, 3)
            out.append(Case(cid, data, ImageFormat(5, 3, pixel_format=pf), None, False))
    return out


def _color_random_cases() -> list[Case]:
    out = []
    for model in ColorModel:
        c = COLOR_MODELS[model].channels
        for dt in ChannelDatatype:
            for w, h in ODD_SIZES + [(16, 9)]:
                cid = f"{model.name}_{dt.name}-{w}x{h}-random"
                out.append(_color(cid, model, dt, w, h, _random_values(_rng(cid), dt, (h, w, c))))
    return out


def _color_special_cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    L, RGB, RGBA, BGRA = ColorModel.L, ColorModel.RGB, ColorModel.RGBA, ColorModel.BGRA
    D = ChannelDatatype

    # value-range rule boundaries (contract §3.1)
    add(_color("range-F32-unit", L, D.F32, 4, 1, [0.0, 0.25, 0.5, 1.0]))
    add(_color("range-F32-just-above-1", L, D.F32, 4, 1, [0.0, 0.25, 0.5, 1.0000001]))
    add(_color("range-F64-0-255", L, D.F64, 4, 1, [0.0, 1.5, 127.5, 255.0]))
    add(_color("range-F32-negative", L, D.F32, 4, 1, [-0.5, 0.0, 0.25, 0.5]))
    add(_color("range-U16-max255", L, D.U16, 4, 1, [0, 1, 128, 255]))
    add(_color("range-U16-max256", L, D.U16, 4, 1, [0, 1, 128, 256]))
    add(_color("range-I16-negative", L, D.I16, 4, 1, [-3, -1, 0, 5]))
    add(_color("range-I8-negative", RGB, D.I8, 2, 1, [-128, 0, 127, 5, -5, 64]))
    add(_color("range-U32-wide", RGB, D.U32, 2, 1, [0, 70000, 4294967295, 1, 2, 3]))
    add(_color("range-RGBA-alpha-excluded", RGBA, D.U16, 2, 1, [0, 10, 20, 65535, 5, 15, 25, 0]))

    # constant images: min == max -> [v - 1, v + 1]
    for dt, v in [(D.U16, 300), (D.I16, -5), (D.I16, -32768), (D.U16, 65535), (D.U32, 70000),
                  (D.I32, -70000), (D.U64, 1000), (D.I64, -1000), (D.F32, 300.0),
                  (D.F32, 0.5), (D.F64, -2.0), (D.F16, 1000.0), (D.U8, 7), (D.I8, -7)]:
        add(_color(f"constant-{dt.name}-{v}", RGB, dt, 3, 2, np.full(18, v)))

    # type extremes
    for dt in (D.U8, D.I8, D.U16, D.I16, D.U32, D.I32, D.U64, D.I64):
        ii = np.iinfo(DATATYPES[dt].numpy)
        vals = np.array([ii.min, ii.max, ii.min, ii.max, 0, ii.max, ii.min, 0], dtype=DATATYPES[dt].numpy)
        add(_color(f"extremes-{dt.name}-RGBA", RGBA, dt, 2, 1, vals))
    add(_color("extremes-F16", RGBA, D.F16, 2, 1, [-65504.0, 65504.0, 6e-8, 1.0, 0.0, 1.0, 2.0, 0.5]))
    add(_color("extremes-F32", RGBA, D.F32, 2, 1, [-1e38, 1e38, 1e-45, 1.0, 0.0, 1.0, -1.0, 0.25]))
    add(_color("extremes-F64", RGBA, D.F64, 2, 1, [-1e30, 1e30, 1e-300, 1.0, 0.0, 1.0, -1.0, 0.25]))
    # max - min overflows float64: the range is still [min, max], t stays finite
    add(_color("extremes-F64-span-overflow", L, D.F64, 3, 1, [-1.7e308, 0.0, 1.7e308]))

    # alpha by the type's maximum; signed alpha clamps at 0; float alpha as it is
    add(_color("alpha-U16", RGBA, D.U16, 4, 1,
               [0, 0, 0, 0, 1, 1, 1, 32767, 2, 2, 2, 32768, 3, 3, 3, 65535]))
    add(_color("alpha-I16-negative", BGRA, D.I16, 3, 1, [0, 0, 0, -32768, 1, 1, 1, -1, 2, 2, 2, 16384]))
    add(_color("alpha-I8", RGBA, D.I8, 3, 1, [0, 0, 0, -1, 1, 1, 1, 64, 2, 2, 2, 127]))
    add(_color("alpha-U32", RGBA, D.U32, 2, 1, [0, 0, 0, 2147483648, 1, 1, 1, 4294967295]))
    add(_color("alpha-F32-out-of-range", RGBA, D.F32, 3, 1,
               [0.0, 0.5, 1.0, -0.5, 0.5, 0.5, 0.5, 2.0, 1.0, 0.0, 0.0, 0.5]))

    # NaN and +-Inf in colour channels -> magenta; the rest of the image keeps its range
    nan, inf = float("nan"), float("inf")
    for dt in (D.F16, D.F32, D.F64):
        add(_color(f"nan-inf-{dt.name}-RGB", RGB, dt, 4, 1,
                   [nan, 0.5, 0.5, 0.2, inf, 0.1, 0.3, 0.3, -inf, 0.9, 0.4, 0.0]))
        add(_color(f"nan-{dt.name}-L", L, dt, 3, 1, [nan, 2.0, 4.0]))
        add(_color(f"all-nan-{dt.name}-L", L, dt, 2, 1, [nan, inf]))
        add(_color(f"nan-{dt.name}-RGBA", RGBA, dt, 2, 1, [0.2, nan, 0.2, 0.5, 0.1, 0.2, 0.3, 0.5]))

    # explicit value_range overrides the rule
    add(_color("vr-U16-int", L, D.U16, 4, 1, [0, 500, 1000, 2000], (0, 1000)))
    add(_color("vr-U8-int", RGB, D.U8, 2, 1, [0, 10, 15, 20, 30, 255], (10, 20)))
    add(_color("vr-I16-int-negative", L, D.I16, 4, 1, [-200, -100, 0, 100], (-100, 100)))
    add(_color("vr-U16-float", L, D.U16, 4, 1, [0, 500, 1000, 2000], (100.5, 999.25)))
    add(_color("vr-F32", RGB, D.F32, 2, 1, [-1.0, 0.0, 1.0, 0.5, -0.5, 3.0], (-1.0, 1.0)))
    add(_color("vr-F64-nan", L, D.F64, 3, 1, [nan, 0.0, 10.0], (0.0, 10.0)))
    add(_color("vr-I64", L, D.I64, 3, 1, [-(10**6), 0, 10**6], (-(10**6), 10**6)))
    add(_color("vr-U32", RGBA, D.U32, 1, 1, [5, 10, 15, 4294967295], (0, 20)))
    return out


def _sample_cases() -> list[Case]:
    """The built-in gradient of every format, at an odd size."""
    out = []
    for s in all_samples(13, 7):
        dt = s.format.datatype
        exact = s.format.pixel_format is None and _is_exact(dt, None)
        out.append(Case(f"sample-{s.name}-13x7", s.data, s.format, None, exact))
    return out


def _large_cases() -> list[Case]:
    """A few camera-sized odd images: dispatch sizes, workgroup edges, row strides."""
    out = []
    for pf, (w, h) in [(PixelFormat.NV12, (1921, 1081)), (PixelFormat.YUY2, (1279, 721)),
                       (PixelFormat.Y_U_V12_FullRange, (641, 479)), (PixelFormat.BayerGRBG8, (1023, 769))]:
        cid = f"large-{pf.name}-{w}x{h}"
        data = _rng(cid).integers(0, 256, size=PIXEL_FORMATS[pf].byte_count(w, h), dtype=np.uint8)
        out.append(Case(cid, data.tobytes(), ImageFormat(w, h, pixel_format=pf), None, False))
    for model, dt, (w, h) in [(ColorModel.RGB, ChannelDatatype.U8, (641, 481)),
                              (ColorModel.BGRA, ChannelDatatype.U16, (513, 257)),
                              (ColorModel.L, ChannelDatatype.F32, (1025, 3))]:
        cid = f"large-{model.name}_{dt.name}-{w}x{h}"
        c = COLOR_MODELS[model].channels
        out.append(_color(cid, model, dt, w, h, _random_values(_rng(cid), dt, (h, w, c))))
    return out


def _row_stride_cases() -> list[Case]:
    """Pixel formats (YUV and Bayer) with padded rows (ImageFormat.row_stride): odd and
    aligned padding; the padding bytes are random too, so a backend that reads them differs."""
    out = []
    for pf, info in PIXEL_FORMATS.items():
        for (w, h), pad in [((3, 5), 1), ((7, 2), 3), ((33, 17), 64 - 33 % 64)]:
            fmt = ImageFormat(w, h, pixel_format=pf, row_stride=info.tight_row_bytes(w) + pad)
            cid = f"stride-{pf.name}-{w}x{h}-{fmt.row_stride}"
            data = _rng(cid).integers(0, 256, size=fmt.byte_count(), dtype=np.uint8)
            out.append(Case(cid, data.tobytes(), fmt, None, False))
    # colour images: padded rows (a whole number of samples, up to 4-byte alignment) and
    # big-endian samples; the sample values are random within the type, padding random
    for model in ColorModel:
        for dt in ChannelDatatype:
            size = DATATYPES[dt].size
            for (w, h), big in [((3, 5), False), ((7, 2), size > 1)]:
                c = COLOR_MODELS[model].channels
                stride = w * c * size + 3 * min(size, 4) + (4 if size == 1 else 0)
                fmt = ImageFormat(w, h, color_model=model, channel_datatype=dt, row_stride=stride, big_endian=big)
                cid = f"stride-{model.name}_{dt.name}-{w}x{h}-{stride}{'-be' if big else ''}"
                rng = _rng(cid)
                vals = _random_values(rng, dt, (h, w * c)).astype(DATATYPES[dt].numpy)
                rows = vals.astype(vals.dtype.newbyteorder(">" if big else "<")).view(np.uint8)
                data = rng.integers(0, 256, size=(h, stride), dtype=np.uint8)
                data[:, : rows.shape[1]] = rows
                out.append(Case(cid, data.tobytes(), fmt, None, _is_exact(dt, None)))
    return out


CASES: list[Case] = (_pixel_format_cases() + _color_random_cases() + _color_special_cases()
                     + _sample_cases() + _large_cases() + _row_stride_cases())

assert len({c.id for c in CASES}) == len(CASES), "conformance case ids must be unique"

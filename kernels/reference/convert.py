"""The NumPy reference decoder: raw image bytes -> display RGBA8, exactly contract §2 and 3.

This is the oracle every GPU backend is checked against (tests/kernels/
test_conformance.py) and the CPU fallback of `pixelrun.kernels.backends`. It is meant to
be read: one short function per family, all vectorised, every format fact taken from
`pixelrun.kernels.formats`. Precision follows the contract in formats.py's docstring:
integer channel types of at most 16 bits use the exact integer formula, everything
else is computed in float64.

Decisions where the contract is silent (documented here so every backend can match them):
- Bayer: a colour with no sample at all in a pixel's (border-cut) 3x3 neighbourhood
  (only possible when W or H is 1) is 0.
- A NaN alpha sample (float types) gives alpha 0; +-Inf alpha clamps like any value.
- An explicit `value_range` must have lo < hi (finite); anything else is a ValueError.

Depth, colormapped and segmentation images (contract §8) map one channel through a
table: `sample_rgba` is that mapping for any array of samples, used here on the pixels
and by the GPU backends on every value of a <= 16-bit type to build their palettes, so
the integer path is one formula everywhere.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

from pixelrun.kernels.buffers import as_byte_view
from pixelrun.kernels.colormaps import (
    DEFAULT_DEPTH_COLORMAP,
    colormap_table,
    table_index,
    table_index_exact,
)
from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    SampleAddress,
    check,
)

# q and the sRGB transfer functions are the compositors' too: one definition, in layers.py
from pixelrun.kernels.layers import LayerKind, q, srgb_decode, srgb_encode

__all__ = [
    "to_display_rgba",
    "is_available",
    "value_range_for",
    "table_range",
    "sample_rgba",
    "check_single_channel",
    "uses_table",
    "class_table",
    "uses_integer_formula",
    "srgb_encode",
    "srgb_decode",
    "q",
    "MAGENTA",
]

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]
ValueRange = Optional[tuple[float, float]]

MAGENTA = (255, 0, 255, 255)  # contract §3.4: a pixel with NaN/Inf in a colour channel


def is_available() -> tuple[bool, str]:
    """The reference needs nothing but NumPy: always available."""
    return True, ""


# ----------------------------------------------------------------------------- helpers


def _int_formula(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Exact q((v - lo) / (hi - lo)) for integers lo < hi (formats.py precision contract)."""
    d = hi - lo
    out = np.floor_divide(510 * (v.astype(np.int64) - lo) + d, 2 * d)
    return np.clip(out, 0, 255).astype(np.uint8)


def _wide_int_t(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(v - lo) / (hi - lo) in float64 for 32/64-bit integers and integer lo < hi.

    The differences are taken exactly (modulo 2**64, after clamping v to [lo, hi], so
    they fit) and rounded to float64 once: a constant 2**64-1 image, range [v-1, v+1],
    still gives t = 0.5 where float64(v) - float64(lo) would be 0/0.
    """
    info = np.iinfo(v.dtype)
    if lo > info.max or hi < info.min:  # every value lies on one side of the range
        return np.full(v.shape, 0.0 if lo > info.max else 1.0)
    v = np.clip(v, max(lo, info.min), min(hi, info.max))
    as_u64 = v.astype(np.int64).view(np.uint64) if info.min < 0 else v.astype(np.uint64)
    diff = as_u64 - np.uint64(lo % 2**64)  # wraps modulo 2**64 to the exact v - lo
    return diff.astype(np.float64) / float(hi - lo)


# ------------------------------------------------------------------- pixel formats (contract §2)


def _gather(buf: np.ndarray, a: SampleAddress, width: int, height: int) -> np.ndarray:
    """Every sample of one kind (Y, U or V) at its pixel, as (H, W) float64."""
    return buf[a.address(np.arange(width)[None, :], np.arange(height)[:, None])].astype(np.float64)


def _decode_yuv(buf: np.ndarray, fmt: ImageFormat) -> np.ndarray:
    info = PIXEL_FORMATS[fmt.pixel_format]
    w, h = fmt.width, fmt.height
    layout = fmt.yuv_layout()
    m, r = info.matrix, info.range
    y = (_gather(buf, layout.y, w, h) - r.y_offset) / r.y_scale
    if layout.u is None:  # Y8: chroma is the constant 128, i.e. u = v = 0
        u = v = np.zeros_like(y)
    else:
        u = (_gather(buf, layout.u, w, h) - 128.0) / r.c_scale
        v = (_gather(buf, layout.v, w, h) - 128.0) / r.c_scale
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[..., 0] = q(y + m.rv * v)
    out[..., 1] = q(y - m.gu * u - m.gv * v)
    out[..., 2] = q(y + m.bu * u)
    out[..., 3] = 255
    return out


def _box3(a: np.ndarray) -> np.ndarray:
    """Sum over each pixel's 3x3 neighbourhood, cut at the borders (zeros outside)."""
    p = np.pad(a, 1)  # zeros outside: samples beyond the border are left out
    cols = p[:-2] + p[1:-1] + p[2:]  # separable: 3 rows, then 3 columns
    return cols[:, :-2] + cols[:, 1:-1] + cols[:, 2:]


def _decode_bayer(buf: np.ndarray, fmt: ImageFormat) -> np.ndarray:
    info = PIXEL_FORMATS[fmt.pixel_format]
    w, h = fmt.width, fmt.height
    size = info.sample_bytes
    (plane,) = info.planes(w, h, fmt.row_stride)  # rows `row_bytes` apart (a row stride)
    rows = buf[: plane.size].reshape(h, plane.row_bytes)[:, : w * size]
    mosaic = np.ascontiguousarray(rows).view("<u2" if size == 2 else np.uint8).astype(np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((h, w, 4), dtype=np.uint8)
    for channel, colour in enumerate("RGB"):
        here = np.zeros((h, w), dtype=bool)
        for tx, ty in info.bayer_offsets()[colour]:
            here |= ((xx & 1) == tx) & ((yy & 1) == ty)
        total = _box3(np.where(here, mosaic, 0.0))
        count = _box3(here.astype(np.float64))
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        value = np.where(here, mosaic, mean)  # each pixel keeps its own sample
        out[..., channel] = q(srgb_encode(value / info.sample_max))
    out[..., 3] = 255
    return out


# ------------------------------------------------------------------ colour images (contract §3)


def value_range_for(samples: np.ndarray, datatype: ChannelDatatype) -> tuple[float, float]:
    """contract §3.1: the automatic [lo, hi] of an image's colour samples (alpha excluded).

    Integer datatypes give Python ints (exact even for 64-bit values), floats give floats.
    """
    info = DATATYPES[datatype]
    if datatype == ChannelDatatype.U8:
        return (0, 255)
    samples = np.asarray(samples)
    if info.is_float:
        finite = samples[np.isfinite(samples)]
        if finite.size == 0:
            return (0.0, 1.0)
        lo, hi = float(finite.min()), float(finite.max())
        if lo >= 0.0 and hi <= 1.0:
            return (0.0, 1.0)
    else:
        if samples.size == 0:
            return (0, 255)
        lo, hi = int(samples.min()), int(samples.max())
    if lo >= 0 and hi <= 255:
        return (0, 255) if not info.is_float else (0.0, 255.0)
    if lo == hi:
        return (lo - 1, hi + 1)
    return (lo, hi)


def uses_integer_formula(datatype: ChannelDatatype, value_range: ValueRange) -> bool:
    """Whether the colour of this image is on the exact integer path (precision contract).

    True for integer types of at most 16 bits, with the automatic range or with an
    explicit range whose ends are integers (lo < hi). Alpha of those types is always exact.
    """
    info = DATATYPES[datatype]
    if info.is_float or info.size > 2:
        return False
    if value_range is None:
        return True
    lo, hi = value_range
    return float(lo).is_integer() and float(hi).is_integer() and abs(lo) < 2**40 and abs(hi) < 2**40


def _check_value_range(value_range) -> tuple[float, float]:
    """An explicit (lo, hi) as given (ints stay exact), or a ValueError saying why not."""
    try:
        lo, hi = value_range
        finite = math.isfinite(float(lo)) and math.isfinite(float(hi))
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (lo, hi) of numbers, got {value_range!r}") from None
    if not (finite and lo < hi):
        raise ValueError(f"value_range must be finite with lo < hi, got {value_range!r}")
    return lo, hi


def _decode_color(buf: np.ndarray, fmt: ImageFormat, value_range: ValueRange) -> np.ndarray:
    model = COLOR_MODELS[fmt.model]
    info = DATATYPES[fmt.datatype]
    h, w = fmt.height, fmt.width
    pixels = fmt.color_samples(buf)  # (H, W, C): padded rows and byte order (formats.py) honoured
    colour = pixels[..., list(model.rgb_index)]  # (H, W, 3), already in R, G, B order
    if value_range is None:
        lo, hi = value_range_for(pixels[..., sorted(set(model.rgb_index))], fmt.datatype)
    else:
        lo, hi = _check_value_range(value_range)

    out = np.empty((h, w, 4), dtype=np.uint8)
    if fmt.datatype == ChannelDatatype.U8 and (lo, hi) == (0, 255):
        out[..., :3] = colour  # the formula is the identity here
    elif uses_integer_formula(fmt.datatype, (lo, hi)):
        out[..., :3] = _int_formula(colour, int(lo), int(hi))
    elif not info.is_float and float(lo).is_integer() and float(hi).is_integer():
        out[..., :3] = q(_wide_int_t(colour, int(lo), int(hi)))
    else:
        v = colour.astype(np.float64)
        lo_f, hi_f = float(lo), float(hi)
        if not np.isfinite(hi_f - lo_f):
            # the span of e.g. [-1.7e308, 1.7e308] overflows float64: halving every term
            # leaves t unchanged and keeps it finite
            v, lo_f, hi_f = v * 0.5, lo_f * 0.5, hi_f * 0.5
        span = hi_f - lo_f
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf become magenta below
            # span 0 only for a constant image beyond 2**53, where [v-1, v+1] rounds to
            # [v, v]: every sample sits in the middle of its range
            out[..., :3] = q((v - lo_f) / span) if span > 0 else q(np.full_like(v, 0.5))

    if model.alpha_index < 0:
        out[..., 3] = 255
    else:
        a = pixels[..., model.alpha_index]
        if fmt.datatype == ChannelDatatype.U8:
            out[..., 3] = a
        elif info.is_float:
            out[..., 3] = q(a)
        elif info.size <= 2:
            out[..., 3] = _int_formula(a, 0, int(info.max_value))  # negative -> 0
        else:
            out[..., 3] = q(a.astype(np.float64) / info.max_value)
    if info.is_float:
        # NaN/Inf in any colour channel: the whole pixel is magenta, alpha included
        bad = ~np.isfinite(colour).all(axis=-1)
        out[bad] = MAGENTA
    return out


# --------------------------------------------- depth, colormaps, segmentation (contract §8)

_KINDS = (LayerKind.IMAGE, LayerKind.DEPTH, LayerKind.SEGMENTATION)


def uses_table(fmt: ImageFormat, kind: str = LayerKind.IMAGE, colormap: Optional[int] = None) -> bool:
    """Whether an image maps its one channel through a table (contract §8) instead of §2-3:
    depth and segmentation always, an Image when a colormap is set and it has one channel
    (Rerun ignores an Image's colormap otherwise). ValueError for an unknown kind."""
    if kind not in _KINDS:
        raise ValueError(f"unknown layer kind {kind!r}: expected one of {', '.join(_KINDS)}")
    if kind != LayerKind.IMAGE:
        return True
    return colormap is not None and fmt.pixel_format is None and fmt.model == ColorModel.L


def check_single_channel(fmt: ImageFormat, kind: str) -> None:
    """Depth and segmentation images have one channel (ColorModel L) and no pixel format,
    as in Rerun; ValueError saying what came otherwise."""
    if fmt.pixel_format is not None or fmt.model != ColorModel.L:
        raise ValueError(f"a {kind} image must have one channel (ColorModel L, no pixel format), "
                         f"got {fmt.describe()}")


def table_range(samples: np.ndarray, datatype: ChannelDatatype, kind: str, value_range: ValueRange):
    """The (lo, hi) a depth or colormapped image is mapped over, or None when it is degenerate.

    An explicit value_range is checked (finite, lo < hi) and used as given. Otherwise a
    depth image takes Rerun's default [0, largest finite sample] (no finite sample: the
    datatype's largest value); with no positive sample there is no range and every pixel
    shows the colormap at t = 0. A colormapped Image takes contract §3.1's range.
    """
    if value_range is not None:
        return _check_value_range(value_range)
    if kind != LayerKind.DEPTH:
        return value_range_for(samples, datatype)
    info = DATATYPES[datatype]
    if info.is_float:
        finite = samples[np.isfinite(samples)]
        hi = float(finite.max()) if finite.size else float(np.finfo(info.numpy).max)
    else:
        hi = int(samples.max()) if samples.size else 0
    return (0, hi) if hi > 0 else None


def class_table(class_colors) -> np.ndarray:
    """A segmentation image's class colours as an (N, 4) uint8 table (None: empty, every id
    transparent); ValueError saying what came for anything else."""
    if class_colors is None:
        return np.zeros((0, 4), np.uint8)
    table = np.asarray(class_colors)
    if table.ndim != 2 or table.shape[1] != 4 or table.dtype != np.uint8:
        raise ValueError(f"class_colors must be an (N, 4) uint8 array of sRGB RGBA, got {table.dtype} "
                         f"array of shape {table.shape}")
    return table


def sample_rgba(
    samples: np.ndarray,
    datatype: ChannelDatatype,
    kind: str,
    value_range: Optional[tuple[float, float]],
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Samples of any shape -> (..., 4) uint8 straight-alpha sRGB, contract §8.

    Segmentation: class id -> class_colors[id]; ids outside the table (and NaN, for float
    samples, whose id is floor(v + 0.5)) are transparent. Otherwise: t over value_range (a
    resolved range from `table_range`; None: t = 0) -> the colormap's table (colormaps.py;
    depth's default is Turbo). NaN gives t = 0 and +-Inf clamp, as Rerun shows them.
    """
    samples = np.asarray(samples)
    info = DATATYPES[datatype]
    if kind == LayerKind.SEGMENTATION:
        table = class_table(class_colors)
        if info.is_float:
            with np.errstate(invalid="ignore"):
                f = np.floor(samples.astype(np.float64) + 0.5)
            ids = np.where(np.isfinite(f) & (f >= 0) & (f < table.shape[0]), f, -1).astype(np.int64)
        else:
            ids = samples.astype(np.int64)
        valid = (ids >= 0) & (ids < table.shape[0])
        out = np.zeros(samples.shape + (4,), np.uint8)
        out[valid] = table[ids[valid]]
        return out
    cmap = DEFAULT_DEPTH_COLORMAP if colormap is None else colormap
    table = colormap_table(cmap)
    if value_range is None:
        idx = np.zeros(samples.shape, np.intp)
    elif uses_integer_formula(datatype, value_range):
        idx = table_index_exact(samples, int(value_range[0]), int(value_range[1]))
    else:
        lo, hi = float(value_range[0]), float(value_range[1])
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            idx = table_index((samples.astype(np.float64) - lo) / (hi - lo))
    return table[idx]


def _decode_table(buf: np.ndarray, fmt: ImageFormat, value_range: ValueRange, kind: str,
                  colormap: Optional[int], class_colors: Optional[np.ndarray]) -> np.ndarray:
    check_single_channel(fmt, kind)
    samples = fmt.color_samples(buf)[..., 0]  # padded rows and byte order honoured (formats.py)
    rng = None if kind == LayerKind.SEGMENTATION else table_range(samples, fmt.datatype, kind, value_range)
    return sample_rgba(samples, fmt.datatype, kind, rng, colormap, class_colors)


# ------------------------------------------------------------------------------ entry


def to_display_rgba(
    buffer: Buffer,
    fmt: ImageFormat,
    value_range: ValueRange = None,
    *,
    kind: str = LayerKind.IMAGE,
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Decode one image's raw bytes into display RGBA8 (sRGB colour, straight alpha).

    buffer: bytes, bytearray, memoryview or a uint8 array holding exactly
        `fmt.byte_count()` bytes (little-endian samples, row-major, interleaved).
    fmt: the ImageFormat (a PixelFormat, or a ColorModel and ChannelDatatype).
    value_range: explicit (lo, hi) for colour images, overriding contract §3.1's rule;
        ignored for pixel formats; a depth image's depth range.
    kind, colormap, class_colors: a `Layer`'s fields of those names (contract §8): a depth
        or segmentation image, or an Image with a colormap, maps its one channel through
        a table (`sample_rgba`).
    Returns an (H, W, 4) uint8 array. Raises ValueError (formats.validate's message)
    when the byte count does not match, or saying why a depth/segmentation image is not
    one channel.
    """
    buf = as_byte_view(buffer)
    check(buf.size, fmt)
    if uses_table(fmt, kind, colormap):
        return _decode_table(buf, fmt, value_range, kind, colormap, class_colors)
    if fmt.pixel_format is None:
        return _decode_color(buf, fmt, value_range)
    if PIXEL_FORMATS[fmt.pixel_format].is_bayer:
        return _decode_bayer(buf, fmt)
    return _decode_yuv(buf, fmt)

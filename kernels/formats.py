"""The format table: the one place that knows what an image's bytes mean.

Every backend (NumPy reference, WGSL, CUDA) and every validation (SDK at log time,
renderer at draw time) reads its layout, byte counts, YUV matrices and ranges from
here; nothing else restates them. docs/contract.md §1-§3 are the contract this encodes.

Enum values equal Rerun 0.41's so that recordings interoperate.

Layout model. Every YUV-family format is described by one addressing rule per
sample kind (Y, U, V):

    address(x, y) = offset + (y >> shift_y) * row_bytes + (x >> shift_x) * step

which covers planar 4:4:4/4:2:2/4:2:0, NV12's interleaved UV plane and YUY2's packed
rows with the same arithmetic; backends implement that single rule instead of one
decoder per format. Chroma plane sizes use ceil(W/2) and ceil(H/2) (contract §7: odd
crops are real).

Row stride. A pixel format may carry `row_stride` (ImageFormat.row_stride): the
bytes from one row of the first plane to the next, at least a tight row (camera
drivers pad rows to an alignment; ROS calls it `step`). It only changes row_bytes in
the rule above: NV12/NV21 chroma rows use the same stride, planar 4:2:0/4:2:2 chroma
rows half of it (rounded up), packed YUY2/UYVY rows the stride itself, Bayer mosaic
rows the stride itself. Every backend reads YUV layouts from `yuv_layout`, so it
honours the stride there without code of its own; the Bayer decoders take the stride
(and the sample size: 8- or 16-bit mosaics) as a parameter.

Precision contract (what "bit-exact for integer data" means for every backend):
- Integer channel datatypes of at most 16 bits (U8, I8, U16, I16) are converted with
  exact integer arithmetic: with integer lo < hi, byte = floor((510*(v-lo) + (hi-lo)) /
  (2*(hi-lo))) clamped to 0..255, which equals q((v-lo)/(hi-lo)) exactly; alpha is the
  same formula with lo=0, hi=type max (signed: negative clamps to 0). All backends
  must match these bytes exactly.
- Everything else (32/64-bit integers, floats, an explicit float value_range, YUV
  matrices, Bayer's sRGB encode) is a float path: backends compute in float32 and
  may differ from the float64 NumPy reference by at most 1 LSB.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = [
    "ColorModel",
    "ChannelDatatype",
    "PixelFormat",
    "DatatypeInfo",
    "ColorModelInfo",
    "SampleAddress",
    "YuvLayout",
    "PixelFormatInfo",
    "ImageFormat",
    "DATATYPES",
    "COLOR_MODELS",
    "PIXEL_FORMATS",
    "YUV_MATRICES",
    "byte_count",
    "validate",
    "check",
    "parse_color_model",
    "parse_datatype",
    "parse_pixel_format",
    "datatype_from_numpy",
]


class ColorModel(enum.IntEnum):
    """How the channels of a colour image are ordered (Rerun's numeric values)."""

    L = 1
    RGB = 2
    RGBA = 3
    BGR = 4
    BGRA = 5


class ChannelDatatype(enum.IntEnum):
    """Datatype of one channel sample (Rerun's numeric values)."""

    U8 = 6
    I8 = 7
    U16 = 8
    I16 = 9
    U32 = 10
    I32 = 11
    U64 = 12
    I64 = 13
    F16 = 33
    F32 = 34
    F64 = 35


class PixelFormat(enum.IntEnum):
    """Special pixel layouts (YUV, Bayer): Rerun's values, then pixelrun's own (200+)."""

    Y_U_V12_LimitedRange = 20
    NV12 = 26
    YUY2 = 27
    Y8_FullRange = 30
    Y_U_V24_LimitedRange = 39
    Y_U_V24_FullRange = 40
    Y8_LimitedRange = 41
    Y_U_V12_FullRange = 44
    Y_U_V16_LimitedRange = 49
    Y_U_V16_FullRange = 50
    BayerRGGB8 = 128
    BayerBGGR8 = 129
    BayerGBRG8 = 130
    BayerGRBG8 = 131
    # pixelrun's own layouts (no Rerun 0.41 equivalent, values from 200 on): the camera
    # layouts of ROS bags. `pixelrun convert` writes them in a form Rerun shows.
    UYVY = 200  # ROS "yuv422": U0 Y0 V0 Y1 per pixel pair, BT.601 limited
    NV21 = 201  # NV12 with V before U in the chroma plane
    I420 = 202  # planar Y, U, V 4:2:0, BT.601 limited (Rerun's Y_U_V12 is BT.709)
    BayerRGGB16 = 210  # 16-bit little-endian Bayer mosaics (linear light, value / 65535)
    BayerBGGR16 = 211
    BayerGBRG16 = 212
    BayerGRBG16 = 213


# --------------------------------------------------------------------------- datatypes


@dataclass(frozen=True)
class DatatypeInfo:
    """Everything a backend needs about one channel datatype."""

    datatype: ChannelDatatype
    numpy: np.dtype  # little-endian, as stored in the buffer
    size: int  # bytes per sample
    is_float: bool
    is_signed: bool
    max_value: float  # alpha of this type divides by this (contract §3.3); 1.0 for floats


def _dt(dt: ChannelDatatype, np_name: str) -> DatatypeInfo:
    npd = np.dtype(np_name)
    is_float = npd.kind == "f"
    max_value = 1.0 if is_float else float(np.iinfo(npd).max)
    return DatatypeInfo(dt, npd, npd.itemsize, is_float, npd.kind in "if", max_value)


DATATYPES: dict[ChannelDatatype, DatatypeInfo] = {
    info.datatype: info
    for info in (
        _dt(ChannelDatatype.U8, "<u1"),
        _dt(ChannelDatatype.I8, "<i1"),
        _dt(ChannelDatatype.U16, "<u2"),
        _dt(ChannelDatatype.I16, "<i2"),
        _dt(ChannelDatatype.U32, "<u4"),
        _dt(ChannelDatatype.I32, "<i4"),
        _dt(ChannelDatatype.U64, "<u8"),
        _dt(ChannelDatatype.I64, "<i8"),
        _dt(ChannelDatatype.F16, "<f2"),
        _dt(ChannelDatatype.F32, "<f4"),
        _dt(ChannelDatatype.F64, "<f8"),
    )
}

_NUMPY_TO_DATATYPE = {(i.numpy.kind, i.size): i.datatype for i in DATATYPES.values()}


def datatype_from_numpy(dtype: np.dtype) -> Optional[ChannelDatatype]:
    """The channel datatype for a NumPy dtype of either byte order, or None."""
    dtype = np.dtype(dtype)
    return _NUMPY_TO_DATATYPE.get((dtype.kind, dtype.itemsize))


# ------------------------------------------------------------------------ colour models


@dataclass(frozen=True)
class ColorModelInfo:
    """Channel count and where R, G, B (and alpha, or -1) sit within a pixel."""

    model: ColorModel
    channels: int
    rgb_index: tuple[int, int, int]
    alpha_index: int  # -1: no alpha channel, shown opaque


COLOR_MODELS: dict[ColorModel, ColorModelInfo] = {
    ColorModel.L: ColorModelInfo(ColorModel.L, 1, (0, 0, 0), -1),
    ColorModel.RGB: ColorModelInfo(ColorModel.RGB, 3, (0, 1, 2), -1),
    ColorModel.RGBA: ColorModelInfo(ColorModel.RGBA, 4, (0, 1, 2), 3),
    ColorModel.BGR: ColorModelInfo(ColorModel.BGR, 3, (2, 1, 0), -1),
    ColorModel.BGRA: ColorModelInfo(ColorModel.BGRA, 4, (2, 1, 0), 3),
}

# ------------------------------------------------------------------------ pixel formats


@dataclass(frozen=True)
class YuvMatrix:
    """R = y + rv*v, G = y - gu*u - gv*v, B = y + bu*u (contract §2)."""

    name: str
    rv: float
    gu: float
    gv: float
    bu: float


YUV_MATRICES = {
    "BT.601": YuvMatrix("BT.601", 1.402, 0.344, 0.714, 1.772),
    "BT.709": YuvMatrix("BT.709", 1.575, 0.187, 0.468, 1.856),
}


@dataclass(frozen=True)
class YuvRange:
    """y = (Y - y_offset) / y_scale; u = (U - 128) / c_scale (contract §2)."""

    name: str
    y_offset: float
    y_scale: float
    c_scale: float


YUV_RANGES = {
    "limited": YuvRange("limited", 16.0, 219.0, 224.0),
    "full": YuvRange("full", 0.0, 255.0, 255.0),
}


@dataclass(frozen=True)
class SampleAddress:
    """Byte address of a sample: offset + (y>>shift_y)*row_bytes + (x>>shift_x)*step."""

    offset: int
    row_bytes: int
    step: int
    shift_x: int
    shift_y: int

    def address(self, x, y):
        """The byte address of sample (x, y); ints or broadcasting integer arrays."""
        return self.offset + (y >> self.shift_y) * self.row_bytes + (x >> self.shift_x) * self.step

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.offset, self.row_bytes, self.step, self.shift_x, self.shift_y)


@dataclass(frozen=True)
class YuvLayout:
    """Where Y, U and V live for one W x H image; U/V None means constant 128 (Y8)."""

    y: SampleAddress
    u: Optional[SampleAddress]
    v: Optional[SampleAddress]


@dataclass(frozen=True)
class Plane:
    """A named region of the buffer, for docs, `pixelrun formats` and error messages."""

    name: str
    offset: int
    row_bytes: int
    rows: int

    @property
    def size(self) -> int:
        return self.row_bytes * self.rows


def _ceil_half(n: int) -> int:
    return (n + 1) // 2


@dataclass(frozen=True)
class PixelFormatInfo:
    """One row of the PixelFormat table.

    family: 'planar' (Y_U_V*, I420), 'nv12', 'nv21', 'yuy2', 'uyvy', 'y8', 'bayer'.
    chroma: (shift_x, shift_y) of chroma subsampling for YUV families.
    sample_bytes: bytes per Bayer sample (1, or 2: little-endian 16-bit, shown as
    value / 65535); 1 for the YUV families.
    """

    format: PixelFormat
    family: str
    chroma: tuple[int, int]
    matrix: Optional[YuvMatrix]
    range: Optional[YuvRange]
    bayer_pattern: Optional[str]  # e.g. "RGGB": the 2x2 tile's colours, row-major
    byte_rule: str  # human-readable, shown by `pixelrun formats`
    sample_bytes: int = 1

    @property
    def sample_max(self) -> float:
        """The largest sample value (what a Bayer sample is divided by)."""
        return float((1 << (8 * self.sample_bytes)) - 1)

    @property
    def is_bayer(self) -> bool:
        return self.family == "bayer"

    def tight_row_bytes(self, width: int) -> int:
        """Bytes of one unpadded row of the first plane."""
        if self.family in ("yuy2", "uyvy"):
            return 4 * _ceil_half(width)
        return width * self.sample_bytes

    def planes(self, width: int, height: int, row_stride: Optional[int] = None) -> tuple[Plane, ...]:
        """The buffer's planes; `row_stride` (YUV families): bytes per first-plane row."""
        w, h = width, height
        cw, ch = _ceil_half(w), _ceil_half(h)
        stride = self.tight_row_bytes(w) if row_stride is None else row_stride
        n = stride * h
        if self.family == "planar":
            sx, sy = self.chroma
            pw, ph = (cw if sx else w), (ch if sy else h)
            if row_stride is not None:
                pw = _ceil_half(stride) if sx else stride
            return (
                Plane("Y", 0, stride, h),
                Plane("U", n, pw, ph),
                Plane("V", n + pw * ph, pw, ph),
            )
        if self.family in ("nv12", "nv21"):
            uv = "UV" if self.family == "nv12" else "VU"
            # chroma rows: the same stride (never shorter than a tight chroma row: odd W)
            return (Plane("Y", 0, stride, h), Plane(uv, n, max(2 * cw, stride), ch))
        if self.family in ("yuy2", "uyvy"):
            return (Plane("YUYV" if self.family == "yuy2" else "UYVY", 0, stride, h),)
        if self.family == "y8":
            return (Plane("Y", 0, stride, h),)
        return (Plane("mosaic", 0, stride, h),)

    def byte_count(self, width: int, height: int, row_stride: Optional[int] = None) -> int:
        return sum(p.size for p in self.planes(width, height, row_stride))

    def yuv_layout(self, width: int, height: int, row_stride: Optional[int] = None) -> YuvLayout:
        """The addressing rule for Y, U and V (not defined for Bayer)."""
        if self.family == "bayer":
            raise ValueError(f"{self.format.name} is a Bayer mosaic, not YUV")
        planes = self.planes(width, height, row_stride)
        sx, sy = self.chroma
        if self.family == "planar":
            y, u, v = planes
            return YuvLayout(
                SampleAddress(0, y.row_bytes, 1, 0, 0),
                SampleAddress(u.offset, u.row_bytes, 1, sx, sy),
                SampleAddress(v.offset, v.row_bytes, 1, sx, sy),
            )
        if self.family in ("nv12", "nv21"):
            y, uv = planes
            u_at = 0 if self.family == "nv12" else 1  # NV21: V first
            return YuvLayout(
                SampleAddress(0, y.row_bytes, 1, 0, 0),
                SampleAddress(uv.offset + u_at, uv.row_bytes, 2, 1, 1),
                SampleAddress(uv.offset + 1 - u_at, uv.row_bytes, 2, 1, 1),
            )
        if self.family in ("yuy2", "uyvy"):
            (row,) = planes
            y0, u0, v0 = (0, 1, 3) if self.family == "yuy2" else (1, 0, 2)  # Y0 U Y1 V / U Y0 V Y1
            return YuvLayout(
                SampleAddress(y0, row.row_bytes, 2, 0, 0),
                SampleAddress(u0, row.row_bytes, 4, 1, 0),
                SampleAddress(v0, row.row_bytes, 4, 1, 0),
            )
        (y,) = planes  # y8: chroma is the constant 128
        return YuvLayout(SampleAddress(0, y.row_bytes, 1, 0, 0), None, None)

    def bayer_offsets(self) -> dict[str, list[tuple[int, int]]]:
        """For Bayer: colour -> the (x, y) positions within the 2x2 tile holding it."""
        assert self.bayer_pattern is not None
        out: dict[str, list[tuple[int, int]]] = {"R": [], "G": [], "B": []}
        for i, c in enumerate(self.bayer_pattern):
            out[c].append((i % 2, i // 2))
        return out


def _pf(fmt, family, chroma, matrix, rng, rule, bayer=None, sample_bytes=1) -> PixelFormatInfo:
    return PixelFormatInfo(
        fmt,
        family,
        chroma,
        YUV_MATRICES[matrix] if matrix else None,
        YUV_RANGES[rng] if rng else None,
        bayer,
        rule,
        sample_bytes,
    )


_P = PixelFormat
PIXEL_FORMATS: dict[PixelFormat, PixelFormatInfo] = {
    i.format: i
    for i in (
        _pf(_P.Y_U_V24_LimitedRange, "planar", (0, 0), "BT.709", "limited", "3*N"),
        _pf(_P.Y_U_V24_FullRange, "planar", (0, 0), "BT.709", "full", "3*N"),
        _pf(_P.Y_U_V16_LimitedRange, "planar", (1, 0), "BT.709", "limited", "N + 2*cw*H"),
        _pf(_P.Y_U_V16_FullRange, "planar", (1, 0), "BT.709", "full", "N + 2*cw*H"),
        _pf(_P.Y_U_V12_LimitedRange, "planar", (1, 1), "BT.709", "limited", "N + 2*cw*ch"),
        _pf(_P.Y_U_V12_FullRange, "planar", (1, 1), "BT.709", "full", "N + 2*cw*ch"),
        _pf(_P.NV12, "nv12", (1, 1), "BT.601", "limited", "N + 2*cw*ch"),
        _pf(_P.YUY2, "yuy2", (1, 0), "BT.601", "limited", "4*cw*H"),
        _pf(_P.Y8_FullRange, "y8", (0, 0), "BT.709", "full", "N"),
        _pf(_P.Y8_LimitedRange, "y8", (0, 0), "BT.709", "limited", "N"),
        _pf(_P.BayerRGGB8, "bayer", (0, 0), None, None, "N", "RGGB"),
        _pf(_P.BayerBGGR8, "bayer", (0, 0), None, None, "N", "BGGR"),
        _pf(_P.BayerGBRG8, "bayer", (0, 0), None, None, "N", "GBRG"),
        _pf(_P.BayerGRBG8, "bayer", (0, 0), None, None, "N", "GRBG"),
        _pf(_P.UYVY, "uyvy", (1, 0), "BT.601", "limited", "4*cw*H"),
        _pf(_P.NV21, "nv21", (1, 1), "BT.601", "limited", "N + 2*cw*ch"),
        _pf(_P.I420, "planar", (1, 1), "BT.601", "limited", "N + 2*cw*ch"),
        _pf(_P.BayerRGGB16, "bayer", (0, 0), None, None, "2*N", "RGGB", 2),
        _pf(_P.BayerBGGR16, "bayer", (0, 0), None, None, "2*N", "BGGR", 2),
        _pf(_P.BayerGBRG16, "bayer", (0, 0), None, None, "2*N", "GBRG", 2),
        _pf(_P.BayerGRBG16, "bayer", (0, 0), None, None, "2*N", "GRBG", 2),
    )
}

# ----------------------------------------------------------------------- name parsing


def _parse_enum(enum_cls, value, what: str):
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for member in enum_cls:
            if member.name.lower() == key:
                return member
        names = ", ".join(m.name for m in enum_cls)
        raise ValueError(f"unknown {what} {value!r}: expected one of {names}")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        try:
            return enum_cls(int(value))
        except ValueError:
            pass
        raise ValueError(f"unknown {what} value {int(value)}")
    # Foreign enums (e.g. rerun's) carry a name we can read.
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return _parse_enum(enum_cls, name, what)
    raise ValueError(f"expected a {what} name or enum, got {type(value).__name__}")


def parse_color_model(value) -> ColorModel:
    """ColorModel from an enum, its numeric value, or a case-insensitive name."""
    return _parse_enum(ColorModel, value, "color model")


def parse_datatype(value) -> ChannelDatatype:
    """ChannelDatatype from an enum, value, name (``"U8"``) or NumPy dtype."""
    if isinstance(value, (np.dtype, type)) and not isinstance(value, enum.EnumMeta):
        try:
            dt = datatype_from_numpy(np.dtype(value))
        except TypeError:
            dt = None
        if dt is not None:
            return dt
    return _parse_enum(ChannelDatatype, value, "channel datatype")


def parse_pixel_format(value) -> PixelFormat:
    """PixelFormat from an enum, its numeric value, or a case-insensitive name."""
    return _parse_enum(PixelFormat, value, "pixel format")


# ------------------------------------------------------------------------ ImageFormat


@dataclass(frozen=True)
class ImageFormat:
    """Resolution plus either a PixelFormat, or a ColorModel and ChannelDatatype.

    When `pixel_format` is set it wins (as in Rerun) and the other two are ignored.
    `row_stride` (None: tight rows) is the bytes from one row (of the first plane) to
    the next (the module docstring's layout model); for colour images a multiple of the
    sample size (up to 4). `big_endian` (colour images only): multi-byte samples are
    stored most significant byte first. Both are pixelrun's own (ROS bags' `step` and
    `is_bigendian`); Rerun 0.41's ImageFormat has neither.
    """

    width: int
    height: int
    pixel_format: Optional[PixelFormat] = None
    color_model: Optional[ColorModel] = None
    channel_datatype: Optional[ChannelDatatype] = None
    row_stride: Optional[int] = None
    big_endian: bool = False

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"ImageFormat.{name} must be a non-negative integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.pixel_format is not None:
            object.__setattr__(self, "pixel_format", parse_pixel_format(self.pixel_format))
        if self.color_model is not None:
            object.__setattr__(self, "color_model", parse_color_model(self.color_model))
        if self.channel_datatype is not None:
            object.__setattr__(self, "channel_datatype", parse_datatype(self.channel_datatype))
        if self.row_stride is not None:
            self._check_row_stride()
        object.__setattr__(self, "big_endian", bool(self.big_endian))
        if self.big_endian and self.pixel_format is not None:
            raise ValueError(f"ImageFormat.big_endian applies to colour images, not to {self.pixel_format.name}")

    def _check_row_stride(self) -> None:
        v = self.row_stride
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ValueError(f"ImageFormat.row_stride must be an integer, got {v!r}")
        object.__setattr__(self, "row_stride", int(v))
        tight = self.tight_row_bytes()
        if self.row_stride < tight:
            raise ValueError(f"ImageFormat.row_stride {self.row_stride} is less than one row of "
                             f"{self.describe()} ({tight} bytes)")
        if self.pixel_format is None:
            align = min(DATATYPES[self.datatype].size, 4)
            if self.row_stride % align:
                raise ValueError(f"ImageFormat.row_stride {self.row_stride} of {self.describe()} is not a multiple "
                                 f"of {align} (the samples' alignment)")

    def tight_row_bytes(self) -> int:
        """Bytes of one unpadded row (of the first plane)."""
        if self.pixel_format is not None:
            return PIXEL_FORMATS[self.pixel_format].tight_row_bytes(self.width)
        return self.width * COLOR_MODELS[self.model].channels * DATATYPES[self.datatype].size

    def color_samples(self, buf: np.ndarray) -> np.ndarray:
        """(H, W, channels) samples of a colour image's bytes (1-D uint8 of `byte_count()`),
        native byte order, padding left out: a view when the rows are tight and
        little-endian, else one copy. What the NumPy paths read instead of the raw bytes."""
        assert self.pixel_format is None
        info = DATATYPES[self.datatype]
        h, w, c = self.height, self.width, COLOR_MODELS[self.model].channels
        row = self.tight_row_bytes()
        rows = buf if self.row_stride is None else buf[: self.row_stride * h].reshape(h, self.row_stride)[:, :row]
        dtype = info.numpy.newbyteorder(">") if self.big_endian else info.numpy
        return np.ascontiguousarray(rows).view(dtype).reshape(h, w, c).astype(info.numpy, copy=False)

    @property
    def is_pixel_format(self) -> bool:
        return self.pixel_format is not None

    @property
    def pixel_format_info(self) -> PixelFormatInfo:
        assert self.pixel_format is not None
        return PIXEL_FORMATS[self.pixel_format]

    @property
    def datatype(self) -> ChannelDatatype:
        """The channel datatype; U8 for pixel formats; U8 when unset (Rerun's default)."""
        if self.pixel_format is not None or self.channel_datatype is None:
            return ChannelDatatype.U8
        return self.channel_datatype

    @property
    def model(self) -> ColorModel:
        """The colour model; defaults to L when unset (Rerun's default)."""
        return self.color_model if self.color_model is not None else ColorModel.L

    @property
    def num_pixels(self) -> int:
        return self.width * self.height

    def byte_count(self) -> int:
        """Exact number of bytes this format needs (contract §2 and 3)."""
        if self.pixel_format is not None:
            return PIXEL_FORMATS[self.pixel_format].byte_count(self.width, self.height, self.row_stride)
        if self.row_stride is not None:
            return self.row_stride * self.height
        return (
            self.num_pixels
            * COLOR_MODELS[self.model].channels
            * DATATYPES[self.datatype].size
        )

    def tight(self, buf: np.ndarray) -> tuple[np.ndarray, "ImageFormat"]:
        """(bytes, format) of the same image with tight rows and little-endian samples:
        `buf` itself when it already is, else one copy. For code that indexes pixels as
        y * W + x (the viewer's readouts), not for drawing: the backends read padded
        rows and byte order in place."""
        if self.row_stride is None and not self.big_endian:
            return buf, self
        plain = dataclasses.replace(self, row_stride=None, big_endian=False)
        if self.pixel_format is None:
            return self.color_samples(buf).reshape(-1).view(np.uint8), plain
        info = PIXEL_FORMATS[self.pixel_format]
        src = info.planes(self.width, self.height, self.row_stride)
        dst = info.planes(self.width, self.height)
        return np.concatenate([buf[s.offset : s.offset + s.size].reshape(s.rows, s.row_bytes)[:, : d.row_bytes]
                               .reshape(-1) for s, d in zip(src, dst)]), plain

    def yuv_layout(self) -> YuvLayout:
        """The Y, U, V addressing rule of this YUV-family format (row stride included)."""
        assert self.pixel_format is not None
        return PIXEL_FORMATS[self.pixel_format].yuv_layout(self.width, self.height, self.row_stride)

    def describe(self) -> str:
        """Short human name, e.g. 'NV12 1920x1080' or 'RGB/U16 640x480'."""
        if self.pixel_format is not None:
            kind = self.pixel_format.name
        else:
            kind = f"{self.model.name}/{self.datatype.name}"
        stride = f" (rows of {self.row_stride} bytes)" if self.row_stride is not None else ""
        order = " big-endian" if self.big_endian else ""
        return f"{kind}{order} {self.width}x{self.height}{stride}"


def byte_count(fmt: ImageFormat) -> int:
    """Exact byte count for an image format, including odd sizes."""
    return fmt.byte_count()


def validate(buffer_len: int, fmt: ImageFormat) -> Optional[str]:
    """None when `buffer_len` bytes fit `fmt` exactly, else a precise message.

    The message names the format, the resolution, the expected and the actual byte
    count, and how they differ; callers prefix the entity path.
    """
    if fmt.width == 0 or fmt.height == 0:
        return f"{fmt.describe()}: an image needs a width and height of at least 1"
    expected = fmt.byte_count()
    if buffer_len == expected:
        return None
    if fmt.pixel_format is not None:
        rule = PIXEL_FORMATS[fmt.pixel_format].byte_rule
        cw, ch = _ceil_half(fmt.width), _ceil_half(fmt.height)
        how = f"{rule} with N={fmt.num_pixels}, cw={cw}, ch={ch}"
        if fmt.row_stride is not None:
            planes = PIXEL_FORMATS[fmt.pixel_format].planes(fmt.width, fmt.height, fmt.row_stride)
            how = " + ".join(f"{p.name} {p.rows} rows of {p.row_bytes}" for p in planes)
    elif fmt.row_stride is not None:
        how = f"{fmt.height} rows of {fmt.row_stride} bytes"
    else:
        c = COLOR_MODELS[fmt.model].channels
        s = DATATYPES[fmt.datatype].size
        how = f"{fmt.width}*{fmt.height} pixels * {c} channels * {s} bytes"
    diff = buffer_len - expected
    more_less = f"{abs(diff)} too {'many' if diff > 0 else 'few'}"
    return (
        f"{fmt.describe()} needs {expected} bytes ({how}), "
        f"but the buffer has {buffer_len} ({more_less})"
    )


def check(buffer_len: int, fmt: ImageFormat, entity: Optional[str] = None) -> None:
    """Raise ValueError with `validate`'s message (prefixed by the entity) on mismatch."""
    msg = validate(buffer_len, fmt)
    if msg is not None:
        raise ValueError(f"{entity}: {msg}" if entity else msg)


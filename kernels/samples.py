"""Built-in sample images: one small deterministic image for every supported format.

Used by `pixelrun demo`, the benchmarks and conformance tests. Every sample is built
from the same RGB gradient (red grows left to right, green top to bottom, blue along
the other diagonal) so decoded samples of different formats look alike:

- YUV formats: the gradient encoded with the inverse of the format's own matrix and
  range (from formats.py), chroma taken at the top-left pixel of each chroma block and
  written through the format's addressing rule, so one encoder covers every family;
- Bayer: a mosaic of the gradient's linear-light values (contract §2 treats Bayer samples
  as linear), each pixel keeping the colour its tile position names;
- colour models x datatypes: the gradient spread over the datatype's whole range
  (floats: 0..1), alpha from 1 down to 0.5 across the image.
"""

from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np

from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
    SampleAddress,
    parse_color_model,
    parse_datatype,
    parse_pixel_format,
)
from pixelrun.kernels.layers import srgb_decode

__all__ = [
    "Sample",
    "rgb_gradient",
    "encode_yuv",
    "encode_bayer",
    "pixel_format_sample",
    "color_sample",
    "sample",
    "all_samples",
]


class Sample(NamedTuple):
    """One built-in image: its size, raw bytes and format."""

    width: int
    height: int
    data: bytes
    format: ImageFormat

    @property
    def name(self) -> str:
        """File-name friendly, e.g. 'NV12' or 'RGBA_U16'."""
        f = self.format
        if f.pixel_format is not None:
            return f.pixel_format.name
        return f"{f.model.name}_{f.datatype.name}"


def rgb_gradient(width: int, height: int) -> np.ndarray:
    """(H, W, 3) float64 display values in [0, 1]: R along x, G along y, B the anti-diagonal."""
    x = np.linspace(0.0, 1.0, width)[None, :]
    y = np.linspace(0.0, 1.0, height)[:, None]
    r = np.broadcast_to(x, (height, width))
    g = np.broadcast_to(y, (height, width))
    b = 1.0 - 0.5 * (r + g)
    return np.stack([r, g, b], axis=-1)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _scatter(buf: np.ndarray, a: SampleAddress, values: np.ndarray) -> None:
    """Write per-pixel values through the addressing rule (pixels sharing a sample agree)."""
    h, w = values.shape
    ys, xs = np.arange(h), np.arange(w)
    # take each shared sample from the top-left pixel of its block
    block = values[((ys >> a.shift_y) << a.shift_y)[:, None], ((xs >> a.shift_x) << a.shift_x)[None, :]]
    rows = a.offset + (ys >> a.shift_y) * a.row_bytes
    cols = (xs >> a.shift_x) * a.step
    buf[rows[:, None] + cols[None, :]] = block


def encode_yuv(rgb: np.ndarray, pixel_format: PixelFormat) -> bytes:
    """Encode (H, W, 3) display values in [0, 1] as a YUV-family format's bytes."""
    info = PIXEL_FORMATS[pixel_format]
    h, w, _ = rgb.shape
    m, r = info.matrix, info.range
    # R,G,B = M @ (y,u,v) (contract §2); invert the format's own matrix
    forward = np.array([[1.0, 0.0, m.rv], [1.0, -m.gu, -m.gv], [1.0, m.bu, 0.0]])
    yuv = rgb @ np.linalg.inv(forward).T
    y_bytes = _to_u8(yuv[..., 0] * r.y_scale + r.y_offset)
    u_bytes = _to_u8(yuv[..., 1] * r.c_scale + 128.0)
    v_bytes = _to_u8(yuv[..., 2] * r.c_scale + 128.0)
    layout = info.yuv_layout(w, h)
    buf = np.zeros(info.byte_count(w, h), dtype=np.uint8)
    _scatter(buf, layout.y, y_bytes)
    if layout.u is not None:
        _scatter(buf, layout.u, u_bytes)
        _scatter(buf, layout.v, v_bytes)
    return buf.tobytes()


def encode_bayer(rgb: np.ndarray, pixel_format: PixelFormat) -> bytes:
    """Mosaic (H, W, 3) display values in [0, 1] into a Bayer format (linear samples,
    8-bit or little-endian 16-bit as the format says)."""
    info = PIXEL_FORMATS[pixel_format]
    h, w, _ = rgb.shape
    dtype = np.dtype("<u2") if info.sample_bytes == 2 else np.dtype(np.uint8)
    linear = np.clip(np.rint(srgb_decode(rgb) * info.sample_max), 0, info.sample_max).astype(dtype)
    yy, xx = np.mgrid[0:h, 0:w]
    mosaic = np.zeros((h, w), dtype=dtype)
    for channel, colour in enumerate("RGB"):
        for tx, ty in info.bayer_offsets()[colour]:
            here = ((xx & 1) == tx) & ((yy & 1) == ty)
            mosaic[here] = linear[..., channel][here]
    return mosaic.tobytes()


def pixel_format_sample(pixel_format, width: int, height: int) -> Sample:
    """The gradient in a PixelFormat (YUV family or Bayer)."""
    pf = parse_pixel_format(pixel_format)
    rgb = rgb_gradient(width, height)
    encode = encode_bayer if PIXEL_FORMATS[pf].is_bayer else encode_yuv
    return Sample(width, height, encode(rgb, pf), ImageFormat(width, height, pixel_format=pf))


def _top(dtype: np.dtype) -> np.float64:
    """The largest float64 that casts to `dtype` without overflow (2**64-1 rounds up)."""
    top = np.float64(np.iinfo(dtype).max)
    return top if int(top) <= np.iinfo(dtype).max else np.nextafter(top, 0)


def _spread(t: np.ndarray, datatype: ChannelDatatype) -> np.ndarray:
    """Map t in [0, 1] onto the datatype: floats as they are, integers over their full range."""
    info = DATATYPES[datatype]
    if info.is_float:
        return t.astype(info.numpy)
    ii = np.iinfo(info.numpy)
    # float64 is exact enough here: 64-bit extremes only need to land near the ends
    v = np.float64(ii.min) + t * (np.float64(ii.max) - np.float64(ii.min))
    v = np.clip(np.rint(v), np.float64(ii.min), _top(info.numpy))
    return v.astype(info.numpy)


def _alpha(t: np.ndarray, datatype: ChannelDatatype) -> np.ndarray:
    """Alpha a in [0, 1] stored as the datatype: integers are fractions of the type's max."""
    info = DATATYPES[datatype]
    if info.is_float:
        return t.astype(info.numpy)
    v = np.minimum(np.rint(t * info.max_value), _top(info.numpy))
    return v.astype(info.numpy)


def color_sample(color_model, datatype, width: int, height: int) -> Sample:
    """The gradient as a ColorModel x ChannelDatatype image."""
    model = COLOR_MODELS[parse_color_model(color_model)]
    dt = parse_datatype(datatype)
    rgb = rgb_gradient(width, height)
    pixels = np.zeros((height, width, model.channels), dtype=DATATYPES[dt].numpy)
    if model.channels == 1:
        pixels[..., 0] = _spread(rgb.mean(axis=-1), dt)
    else:
        for channel in range(3):
            pixels[..., model.rgb_index[channel]] = _spread(rgb[..., channel], dt)
    if model.alpha_index >= 0:
        a = 1.0 - 0.5 * np.broadcast_to(np.linspace(0.0, 1.0, width)[None, :], (height, width))
        pixels[..., model.alpha_index] = _alpha(a, dt)
    fmt = ImageFormat(width, height, color_model=model.model, channel_datatype=dt)
    return Sample(width, height, pixels.tobytes(), fmt)


def sample(key: Union[PixelFormat, str, tuple], width: int = 64, height: int = 48) -> Sample:
    """A sample by key: a PixelFormat, a name ('NV12', 'RGB_U16', 'rgb/u16') or (model, datatype)."""
    if isinstance(key, tuple):
        return color_sample(key[0], key[1], width, height)
    if isinstance(key, str):
        for sep in ("_", "/"):
            model, _, dt = key.rpartition(sep)
            if model and model.upper() in ColorModel.__members__ and dt.upper() in ChannelDatatype.__members__:
                return color_sample(model, dt, width, height)
    return pixel_format_sample(key, width, height)


def all_samples(width: int = 64, height: int = 48) -> list[Sample]:
    """One sample per PixelFormat (14) and per ColorModel x ChannelDatatype (5 x 11)."""
    out = [pixel_format_sample(pf, width, height) for pf in PixelFormat]
    out += [color_sample(m, dt, width, height) for m in ColorModel for dt in ChannelDatatype]
    return out

"""The hover readout: what one image pixel holds, raw and as displayed.

`inspect_pixel(layer, x, y)` reads the raw sample(s) of pixel (x, y) straight from the
layer's bytes, in the source datatype: the channels of a colour image (e.g. one u16,
or B, G, R of a BGR image in memory order named by colour), the Y/U/V samples of a YUV
format found with the format table's addressing rule
``offset + (y >> shift_y) * row_bytes + (x >> shift_x) * step``, or the mosaic sample
of a Bayer image with the colour it stands for.

The display RGBA is computed by the reference decoder on a tiny crop that carries
everything the pixel depends on, so no conversion rule is restated here:
- YUV: a 1 x 1 image of the same format holding the pixel's Y, U, V (placed with the
  1 x 1 layout from the same table);
- Bayer: the pixel's border-cut 3 x 3 neighbourhood, cropped at even coordinates so
  the mosaic phase is kept;
- colour images: the pixel alone, with the image's automatic value range (contract §3.1,
  computed once per row and cached) passed explicitly.
Only a handful of bytes are touched per hover, whatever the image size.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
)
from pixelrun.kernels.reference import convert as reference

__all__ = ["PixelReadout", "inspect_pixel", "ValueRangeCache"]


@dataclass(frozen=True)
class PixelReadout:
    """One pixel under the cursor.

    raw: (name, value) pairs in the source datatype, e.g. (("Y", 81), ("U", 90), ("V", 240))
    or (("L", 4095),); floats stay floats.
    display: the pixel's display RGBA8 (contract §2/3), before blending with other layers.
    """

    entity: str
    x: int
    y: int
    kind: str  # "NV12", "RGB/U16", ... (ImageFormat.describe() without the size)
    raw: tuple[tuple[str, object], ...]
    display: tuple[int, int, int, int]

    def text(self) -> str:
        """Short human-readable form for the hover panel."""
        raw = "  ".join(f"{n}={_fmt_value(v)}" for n, v in self.raw)
        r, g, b, a = self.display
        return (
            f"{self.entity}  ({self.x}, {self.y})  {self.kind}\n"
            f"raw: {raw}\n"
            f"display RGBA: ({r}, {g}, {b}, {a})"
        )


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class ValueRangeCache:
    """contract §3.1 value range per image row, so hovering a 1080p u16 image scans it once."""

    def __init__(self, max_entries: int = 16) -> None:
        self._cache: OrderedDict[int, tuple] = OrderedDict()
        self._max = max_entries

    def get(self, row_id: int, buffer: np.ndarray, fmt: ImageFormat) -> tuple:
        hit = self._cache.get(row_id)
        if hit is not None:
            self._cache.move_to_end(row_id)
            return hit
        model = COLOR_MODELS[fmt.model]
        info = DATATYPES[fmt.datatype]
        pixels = np.frombuffer(buffer, dtype=info.numpy).reshape(fmt.height, fmt.width, model.channels)
        colour = pixels[..., sorted(set(model.rgb_index))]
        rng = reference.value_range_for(colour, fmt.datatype)
        self._cache[row_id] = rng
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return rng


_DEFAULT_RANGES = ValueRangeCache()


def _channel_names(model: ColorModel) -> list[str]:
    info = COLOR_MODELS[model]
    if model == ColorModel.L:
        return ["L"]
    names = [""] * info.channels
    for name, idx in zip("RGB", info.rgb_index):
        names[idx] = name
    if info.alpha_index >= 0:
        names[info.alpha_index] = "A"
    return names


def inspect_pixel(
    entity: str,
    row_id: int,
    buffer: np.ndarray,
    fmt: ImageFormat,
    x: int,
    y: int,
    *,
    ranges: Optional[ValueRangeCache] = None,
) -> Optional[PixelReadout]:
    """The readout of pixel (x, y) of one image, or None when (x, y) lies outside it.

    buffer: the layer's raw bytes (1-D uint8, exactly fmt.byte_count() long).
    """
    if not (0 <= x < fmt.width and 0 <= y < fmt.height):
        return None
    buf = np.asarray(buffer, dtype=np.uint8).reshape(-1)
    if buf.size != fmt.byte_count():
        return None  # the store keeps only valid rows; never index a short buffer
    if fmt.pixel_format is not None:
        info = PIXEL_FORMATS[fmt.pixel_format]
        kind = fmt.pixel_format.name
        if info.is_bayer:
            raw, display = _bayer(buf, fmt, x, y)
        else:
            raw, display = _yuv(buf, fmt, x, y)
    else:
        kind = f"{fmt.model.name}/{fmt.datatype.name}"
        raw, display = _colour(row_id, buf, fmt, x, y, ranges or _DEFAULT_RANGES)
    return PixelReadout(entity, x, y, kind, raw, display)


def _yuv(buf: np.ndarray, fmt: ImageFormat, x: int, y: int):
    info = PIXEL_FORMATS[fmt.pixel_format]
    layout = info.yuv_layout(fmt.width, fmt.height)
    Y = int(buf[layout.y.address(x, y)])
    if layout.u is None:  # Y8: chroma is the constant 128 and is not in the buffer
        raw = (("Y", Y),)
        U = V = None
    else:
        U = int(buf[layout.u.address(x, y)])
        V = int(buf[layout.v.address(x, y)])
        raw = (("Y", Y), ("U", U), ("V", V))
    # A 1 x 1 image of the same format with the same samples decodes to the same colour.
    one = ImageFormat(1, 1, pixel_format=fmt.pixel_format)
    one_layout = info.yuv_layout(1, 1)
    tiny = np.zeros(one.byte_count(), dtype=np.uint8)
    tiny[one_layout.y.offset] = Y  # (YUY2's 1 x 1 row has a second, unused, Y byte)
    if U is not None:
        tiny[one_layout.u.offset] = U
        tiny[one_layout.v.offset] = V
    display = reference.to_display_rgba(tiny, one)[0, 0]
    return raw, tuple(int(c) for c in display)


def _bayer(buf: np.ndarray, fmt: ImageFormat, x: int, y: int):
    info = PIXEL_FORMATS[fmt.pixel_format]
    w, h = fmt.width, fmt.height
    mosaic = buf.reshape(h, w)
    colour = info.bayer_pattern[(y % 2) * 2 + (x % 2)]
    raw = ((colour, int(mosaic[y, x])),)
    # Crop at even coordinates (keeps the pattern phase) around the 3 x 3 neighbourhood;
    # the image border cuts the crop exactly where it cuts the neighbourhood.
    x0, y0 = max(0, x - 1) & ~1, max(0, y - 1) & ~1
    x1, y1 = min(w, x + 2), min(h, y + 2)
    crop = np.ascontiguousarray(mosaic[y0:y1, x0:x1])
    sub = ImageFormat(x1 - x0, y1 - y0, pixel_format=fmt.pixel_format)
    display = reference.to_display_rgba(crop.reshape(-1), sub)[y - y0, x - x0]
    return raw, tuple(int(c) for c in display)


def _colour(row_id: int, buf: np.ndarray, fmt: ImageFormat, x: int, y: int, ranges: ValueRangeCache):
    model = COLOR_MODELS[fmt.model]
    dt = DATATYPES[fmt.datatype]
    pixel_bytes = model.channels * dt.size
    start = (y * fmt.width + x) * pixel_bytes
    one_pixel = buf[start : start + pixel_bytes]
    values = one_pixel.view(dt.numpy)
    raw = tuple((n, v.item()) for n, v in zip(_channel_names(fmt.model), values))
    one = ImageFormat(1, 1, color_model=fmt.model, channel_datatype=fmt.datatype)
    if fmt.datatype == ChannelDatatype.U8:
        value_range = None  # U8's range is always [0, 255]: no scan needed
    else:
        value_range = ranges.get(row_id, buf, fmt)
    display = reference.to_display_rgba(np.ascontiguousarray(one_pixel), one, value_range=value_range)[0, 0]
    return raw, tuple(int(c) for c in display)

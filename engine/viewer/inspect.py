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
from pixelrun.kernels.layers import Layer, LayerKind
from pixelrun.kernels.reference import convert as reference

__all__ = [
    "PixelReadout", "inspect_pixel", "inspect_layer", "readouts_at", "pixel_value_labels", "ValueRangeCache",
    "default_depth_meter",
]


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
    kind: str  # "NV12", "RGB/U16", "depth L/U16", "segmentation L/U16", ...
    raw: tuple[tuple[str, object], ...]
    display: Optional[tuple[int, int, int, int]]  # None: not known (a colormap the caller could not read)
    extra: tuple[tuple[str, str], ...] = ()  # ("depth", "1.234 m"), ("label", "car")

    def text(self) -> str:
        """Short human-readable form for the hover panel and tooltip."""
        raw = "  ".join(f"{n}={_fmt_value(v)}" for n, v in self.raw)
        extra = "".join(f"  {n}: {v}" for n, v in self.extra)
        shown = "n/a" if self.display is None else "({}, {}, {}, {})".format(*self.display)
        return (
            f"{self.entity}  ({self.x}, {self.y})  {self.kind}\n"
            f"raw: {raw}{extra}\n"
            f"display RGBA: {shown}"
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
        # (H, W, channels) in native order: padded rows and big-endian samples allowed
        pixels = fmt.color_samples(np.asarray(buffer, dtype=np.uint8).reshape(-1))
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
    buf, fmt = fmt.tight(buf)  # padded rows / big-endian samples (ROS bags): indexed as y * W + x below
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


def default_depth_meter(fmt: ImageFormat) -> float:
    """Rerun's DepthMeter when none is logged: 1000 units a metre for integer depth
    (millimetres), 1 for float depth (metres)."""
    return 1.0 if DATATYPES[fmt.datatype].is_float else 1000.0


def inspect_layer(
    layer: Layer,
    x: int,
    y: int,
    *,
    meter: Optional[float] = None,
    labels: Optional[dict] = None,
    ranges: Optional[ValueRangeCache] = None,
    display_of=None,
) -> Optional[PixelReadout]:
    """The readout of pixel (x, y) of one layer, whatever its kind; None outside it.

    - images: as `inspect_pixel`, with the layer's value_range (a pinned range) when set;
    - depth: the raw sample and the depth in metres (raw / meter; `meter` None: Rerun's
      default for the datatype);
    - segmentation: the class id, its label from `labels` (id -> str) and the class
      colour of `layer.class_colors` (ids past the table are transparent).
    display_of(layer, x, y) -> RGBA or None gives the display colour of layers mapped
    through a colormap (the caller reads what the renderer decoded); without it their
    display is None.
    """
    fmt = layer.format
    kind = getattr(layer, "kind", LayerKind.IMAGE)
    colormapped = kind == LayerKind.DEPTH or (kind == LayerKind.IMAGE and layer.colormap is not None)
    if kind == LayerKind.IMAGE and not colormapped:
        if layer.value_range is not None and fmt.pixel_format is None:
            pinned = _Pinned(layer.value_range)
            return inspect_pixel(layer.entity, layer.row_id, layer.buffer, fmt, x, y, ranges=pinned)
        return inspect_pixel(layer.entity, layer.row_id, layer.buffer, fmt, x, y, ranges=ranges)
    if not (0 <= x < fmt.width and 0 <= y < fmt.height) or fmt.pixel_format is not None:
        return None
    buf = np.asarray(layer.buffer, dtype=np.uint8).reshape(-1)
    if buf.size != fmt.byte_count():
        return None
    buf, fmt = fmt.tight(buf)  # padded rows / big-endian samples: indexed as y * W + x below
    dt = DATATYPES[fmt.datatype]
    channels = COLOR_MODELS[fmt.model].channels if fmt.model is not None else 1
    pixel_bytes = channels * dt.size
    start = (y * fmt.width + x) * pixel_bytes
    value = buf[start : start + dt.size].view(dt.numpy)[0].item()  # the first channel: depth, class id
    name = f"{fmt.model.name if fmt.model is not None else 'L'}/{fmt.datatype.name}"
    extra: tuple = ()
    display = None
    if kind == LayerKind.SEGMENTATION:
        raw = (("class", value),)
        cid = int(value) if not isinstance(value, float) or np.isfinite(value) else -1
        label = (labels or {}).get(cid)
        extra = (("label", label if label is not None else "(no label)"),)
        table = layer.class_colors
        if table is not None and 0 <= cid < len(table):
            display = tuple(int(c) for c in table[cid])
        else:
            display = (0, 0, 0, 0)
        name = f"segmentation {name}"
    else:
        raw = (("depth" if kind == LayerKind.DEPTH else "L", value),)
        if kind == LayerKind.DEPTH:
            m = meter if meter is not None and meter > 0 else default_depth_meter(fmt)
            extra = (("metres", f"{value / m:.4g} m"),)
            name = f"depth {name}"
        if display_of is not None:
            got = display_of(layer, x, y)
            display = None if got is None else tuple(int(c) for c in got)
    return PixelReadout(layer.entity, x, y, name, raw, display, extra)


def readouts_at(layers: list[Layer], x: int, y: int, **kw) -> list[PixelReadout]:
    """The readout of every layer holding pixel (x, y), topmost first (keywords as
    `inspect_layer`; `meters` and `labels` may be dicts by entity)."""
    meters = kw.pop("meters", None) or {}
    labels = kw.pop("labels", None) or {}
    out = []
    for layer in reversed(layers):
        hit = inspect_layer(layer, x, y, meter=meters.get(layer.entity), labels=labels.get(layer.entity), **kw)
        if hit is not None:
            out.append(hit)
    return out


def pixel_value_labels(layer: Layer, x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int, str]]:
    """(x, y, text) with the raw value(s) of every pixel of [x0, x1) x [y0, y1) inside the
    layer, for drawing the values in the pixels at high zoom (vectorised reads; the
    caller bounds the region). Multi-sample pixels give one value per line."""
    fmt = layer.format
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(fmt.width, x1), min(fmt.height, y1)
    if x1 <= x0 or y1 <= y0:
        return []
    buf = np.asarray(layer.buffer, dtype=np.uint8).reshape(-1)
    if buf.size != fmt.byte_count():
        return []
    buf, fmt = fmt.tight(buf)  # padded rows / big-endian samples: indexed as y * W + x below
    ys, xs = np.mgrid[y0:y1, x0:x1]
    if fmt.pixel_format is not None:
        info = PIXEL_FORMATS[fmt.pixel_format]
        if info.is_bayer:
            planes = [_mosaic(buf, fmt)[y0:y1, x0:x1]]
        else:
            lay = fmt.yuv_layout()
            planes = [buf[a.address(xs, ys)] for a in (lay.y, lay.u, lay.v) if a is not None]
    else:
        dt = DATATYPES[fmt.datatype]
        channels = COLOR_MODELS[fmt.model].channels if fmt.model is not None else 1
        pixels = buf.view(dt.numpy).reshape(fmt.height, fmt.width, channels)[y0:y1, x0:x1]
        planes = [pixels[..., c] for c in range(channels)]
    cols = [[_fmt_value(v) for v in p.reshape(-1).tolist()] for p in planes]
    return [(int(x), int(y), "\n".join(t)) for x, y, *t in zip(xs.reshape(-1), ys.reshape(-1), *cols)]


class _Pinned(ValueRangeCache):
    """A 'cache' answering one pinned range: an image shown with a pinned value range
    reads back with that range."""

    def __init__(self, value_range) -> None:
        super().__init__(1)
        self._range = (float(value_range[0]), float(value_range[1]))

    def get(self, row_id, buffer, fmt) -> tuple:
        return self._range


def _yuv(buf: np.ndarray, fmt: ImageFormat, x: int, y: int):
    info = PIXEL_FORMATS[fmt.pixel_format]
    layout = fmt.yuv_layout()
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


def _mosaic(buf: np.ndarray, fmt: ImageFormat) -> np.ndarray:
    """A tight Bayer buffer as (H, W) samples (8- or 16-bit)."""
    dtype = "<u2" if PIXEL_FORMATS[fmt.pixel_format].sample_bytes == 2 else np.uint8
    return buf.view(dtype).reshape(fmt.height, fmt.width)


def _bayer(buf: np.ndarray, fmt: ImageFormat, x: int, y: int):
    info = PIXEL_FORMATS[fmt.pixel_format]
    w, h = fmt.width, fmt.height
    mosaic = _mosaic(buf, fmt)
    colour = info.bayer_pattern[(y % 2) * 2 + (x % 2)]
    raw = ((colour, int(mosaic[y, x])),)
    # Crop at even coordinates (keeps the pattern phase) around the 3 x 3 neighbourhood;
    # the image border cuts the crop exactly where it cuts the neighbourhood.
    x0, y0 = max(0, x - 1) & ~1, max(0, y - 1) & ~1
    x1, y1 = min(w, x + 2), min(h, y + 2)
    crop = np.ascontiguousarray(mosaic[y0:y1, x0:x1])
    sub = ImageFormat(x1 - x0, y1 - y0, pixel_format=fmt.pixel_format)
    display = reference.to_display_rgba(crop.reshape(-1).view(np.uint8), sub)[y - y0, x - x0]
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
    if fmt.datatype == ChannelDatatype.U8 and not isinstance(ranges, _Pinned):
        value_range = None  # U8's automatic range is always [0, 255]: no scan needed
    else:
        value_range = ranges.get(row_id, buf, fmt)
    display = reference.to_display_rgba(np.ascontiguousarray(one_pixel), one, value_range=value_range)[0, 0]
    return raw, tuple(int(c) for c in display)

"""What every compositor shares (contract §4): the Layer, draw order, opacity, canvas,
background, and the display-value helpers q() and the sRGB transfer functions.

The NumPy reference (kernels/reference), the wgpu renderer (kernels/wgpu/composite.py)
and the CuPy compositor (kernels/cuda/composite.py) all import these, so the rules are
written once in Python (the WGSL and CUDA sources keep one copy each in their own
language: kernels/wgpu/shaders/common.wgsl, kernels/cuda/pixelrun_common.cuh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from pixelrun.kernels.formats import COLOR_MODELS, ImageFormat

__all__ = [
    "DEFAULT_OPACITY",
    "DEFAULT_IMAGE_DRAW_ORDER",
    "LayerKind",
    "MAGNIFICATION_NEAREST",
    "MAGNIFICATION_LINEAR",
    "Layer",
    "order_layers",
    "layer_decode_args",
    "decode_key",
    "blend_opacity",
    "check_background",
    "premultiplied_background",
    "canvas_size",
    "decodes_opaque",
    "drop_occluded",
    "decode_uncovered",
    "q",
    "srgb_encode",
    "srgb_decode",
]

DEFAULT_OPACITY = 1.0
DEFAULT_IMAGE_DRAW_ORDER = -10.0

# Layer.magnification: Rerun 0.41's MagnificationFilter values (Bicubic, 3, is drawn as nearest)
MAGNIFICATION_NEAREST = 1
MAGNIFICATION_LINEAR = 2


class LayerKind:
    """How a layer's samples become colours (contract §3 for images; depth and
    segmentation map one channel through a table instead)."""

    IMAGE = "image"  # the colour-model / pixel-format rules; a colormap only when one is set
    DEPTH = "depth"  # one channel -> colormap over `value_range` (Rerun's DepthImage)
    SEGMENTATION = "segmentation"  # class id -> `class_colors[id]` (Rerun's SegmentationImage)


@dataclass(frozen=True)
class Layer:
    """One image to draw: raw bytes plus how to read them and how to blend them.

    row_id identifies the buffer's row (128-bit int) and keys GPU upload caches.
    buffer is a 1-D uint8 view of the raw bytes, never converted on the CPU: a NumPy
    view, or -- only in scenes built for the CuPy backend (scene_at(decode_device="cuda"))
    -- a 1-D uint8 CuPy array on the device (a JPEG EncodedImage decoded by nvImageCodec),
    which only the CuPy compositor reads.

    The fields after draw_order say how samples become colours; their defaults are an
    ordinary Image. They are part of a layer's identity for decode caches, so a
    changed colormap or range is a new decode, never a stale one.
    - kind: a LayerKind value.
    - value_range: (lo, hi) in raw sample units: Image's pinned display range, or
      DepthImage's depth_range. None: the heuristic of the contract.
    - colormap: a Colormap value (kernels/colormaps.py) for single-channel images;
      None: grey for images, DepthImage's default for depth.
    - class_colors: segmentation only, an (N, 4) uint8 table of straight-alpha sRGB
      colours indexed by class id, built by the engine from the annotation context;
      ids >= N are transparent. class_colors_key identifies the table for caches.
    - magnification: MagnificationFilter value (1 nearest, 2 linear) for sampling a
      layer shown larger than its native size.
    """

    entity: str
    row_id: int
    buffer: np.ndarray
    format: ImageFormat
    opacity: float = DEFAULT_OPACITY
    draw_order: float = DEFAULT_IMAGE_DRAW_ORDER
    kind: str = LayerKind.IMAGE
    value_range: Optional[tuple[float, float]] = None
    colormap: Optional[int] = None
    class_colors: Optional[np.ndarray] = field(default=None, compare=False, repr=False)
    class_colors_key: Optional[int] = None
    magnification: int = 1


def layer_decode_args(layer: Layer) -> dict:
    """The keyword arguments every backend's ``to_display_rgba`` takes from a layer (contract
    §8): value_range, kind, colormap, class_colors. One place, so no compositor forgets one."""
    return {
        "value_range": layer.value_range,
        "kind": layer.kind,
        "colormap": layer.colormap,
        "class_colors": layer.class_colors,
    }


def decode_key(layer: Layer) -> tuple:
    """What a decoded texture depends on besides the bytes (row_id): a decode cache keyed by
    (row_id, decode_key) never shows a stale colormap, range or class-colour table.
    class_colors is keyed by class_colors_key (the engine's id of the table), or by the
    table's bytes when no key is given."""
    colors = layer.class_colors
    colors_key = layer.class_colors_key
    if colors is not None and colors_key is None:
        colors_key = hash(np.ascontiguousarray(colors, dtype=np.uint8).tobytes())
    rng = None if layer.value_range is None else tuple(float(v) for v in layer.value_range)
    return (layer.format, layer.kind, rng, layer.colormap, colors_key)


def order_layers(layers: list[Layer]) -> list[Layer]:
    """Draw order: DrawOrder ascending, ties by entity path; later is on top."""
    return sorted(layers, key=lambda l: (l.draw_order, l.entity))


def blend_opacity(value) -> float:
    """The opacity a compositor blends with: clamp(opacity, 0, 1) (contract §4); NaN
    means "not set" and takes the default 1.0."""
    v = float(value)
    return DEFAULT_OPACITY if math.isnan(v) else min(max(v, 0.0), 1.0)


def check_background(background) -> tuple[int, int, int, int]:
    """A background colour as 4 straight-alpha sRGB bytes, or ValueError saying why not."""
    try:
        bg = tuple(int(v) for v in background)
    except (TypeError, ValueError):
        bg = ()
    if len(bg) != 4 or not all(0 <= v <= 255 for v in bg):
        raise ValueError(f"background must be 4 bytes (r, g, b, a) in 0..255, got {background!r}")
    return bg  # type: ignore[return-value]


def decodes_opaque(layer: Layer) -> bool:
    """Whether every pixel of `layer` blends with weight exactly 1 (contract §3, §4), so
    that its blend replaces what lies under it: an ordinary Image without a colormap (the
    costmap palettes are transparent at 0) whose format has no alpha (colour models
    without alpha and every pixel format give alpha 255; NaN is opaque magenta), drawn
    at opacity 1 and sampled nearest (a bilinear mix's weights need not add up to
    exactly 1 in float32)."""
    if layer.kind != LayerKind.IMAGE or layer.colormap is not None:
        return False
    if blend_opacity(layer.opacity) < 1.0 or layer.magnification == MAGNIFICATION_LINEAR:
        return False
    fmt = layer.format
    return fmt.pixel_format is not None or COLOR_MODELS[fmt.model].alpha_index < 0


def drop_occluded(ordered: list[Layer], can_cover: Optional[Callable[[Layer], bool]] = None) -> list[Layer]:
    """The layers of `ordered` (draw order, bottom first) that can change a pixel.

    A layer whose rectangle lies inside the rectangle of a `decodes_opaque` layer above
    it (every rectangle starts at the origin) cannot: each pixel it covers is blended
    over by a = 1 (c·1 + acc·0), which leaves exactly the upper layer's colour, so the
    image is the same without it, to the bit, and it need not be decoded. `can_cover`
    may refuse a layer as a cover (one that will not be drawn after all).
    """
    covers: list[tuple[int, int]] = []
    keep = []
    for layer in reversed(ordered):
        w, h = layer.format.width, layer.format.height
        if any(w <= cw and h <= ch for cw, ch in covers):
            continue
        keep.append(layer)
        if decodes_opaque(layer) and (can_cover is None or can_cover(layer)):
            covers.append((w, h))
    keep.reverse()
    return keep


def decode_uncovered(ordered: list[Layer], decode: Callable[[list[Layer]], set]) -> list[Layer]:
    """`drop_occluded` for a compositor that decodes: `decode(layers)` decodes the layers it
    is given and returns the ids of those it could not (it reports them). An opaque layer
    that could not be decoded hides nothing, so what it covered is decoded after all.
    Returns the layers decoded, in draw order; the last `decode` call is for exactly them
    and the failed ones (compositors keep what that call produced)."""
    failed: set = set()
    while True:
        visible = drop_occluded(ordered, lambda l, failed=failed: id(l) not in failed)
        todo = [l for l in visible if id(l) not in failed]
        lost = decode(todo)
        failed.update(lost)
        if len(visible) == len(ordered) or not any(id(l) in lost and decodes_opaque(l) for l in todo):
            return [l for l in todo if id(l) not in lost]


def canvas_size(layers: list[Layer]) -> tuple[int, int]:
    """(width, height) of the union of the layers' rectangles, all at the origin."""
    if not layers:
        return (0, 0)
    return (max(l.format.width for l in layers), max(l.format.height for l in layers))


def q(x) -> np.ndarray:
    """Display value -> byte: floor(clamp(x, 0, 1) * 255 + 0.5); NaN gives 0 (contract §3)."""
    t = np.asarray(np.fmax(np.asarray(x, dtype=np.float64), 0.0))  # fmax drops NaN: NaN -> 0
    np.fmin(t, 1.0, out=t)
    t *= 255.0
    t += 0.5
    return np.floor(t, out=t).astype(np.uint8)


def srgb_encode(c) -> np.ndarray:
    """Linear light -> sRGB-encoded value (float64), contract §4."""
    c = np.asarray(c, dtype=np.float64)
    # clip only inside the power so negative/NaN inputs do not warn; the branch picks
    # the linear segment for them anyway
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(np.maximum(c, 0.0031308), 1 / 2.4) - 0.055)


def srgb_decode(c) -> np.ndarray:
    """sRGB-encoded value -> linear light (float64), contract §4."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, np.power((np.maximum(c, 0.04045) + 0.055) / 1.055, 2.4))


def premultiplied_background(background) -> np.ndarray:
    """Where every compositor's accumulator starts: the background checked, in linear
    light, premultiplied by its alpha (contract §4), as float64 (r, g, b, a)."""
    bg = np.asarray(check_background(background), dtype=np.float64) / 255.0
    out = np.empty(4, dtype=np.float64)
    out[:3] = srgb_decode(bg[:3]) * bg[3]
    out[3] = bg[3]
    return out

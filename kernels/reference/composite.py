"""The NumPy compositor: contract §4 in float64, the oracle for the wgpu renderer.

Same contract as ``pixelrun.kernels.wgpu.composite.Renderer.render_offscreen``: layers are
decoded by the reference (``pixelrun.kernels.reference.convert``), drawn by DrawOrder then
entity path, each with its top-left pixel at the origin, blended with premultiplied
alpha in linear light over the background, and encoded to sRGB bytes with straight
alpha. A layer that cannot be decoded is left out with a warning naming the entity.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from pixelrun.kernels.errors import RenderWarning, user_stacklevel
from pixelrun.kernels.layers import (
    Layer,
    blend_opacity,
    canvas_size,
    order_layers,
    premultiplied_background,
    q,
    srgb_decode,
    srgb_encode,
)
from pixelrun.kernels.reference import convert as reference

__all__ = ["composite", "CompositeWarning"]


class CompositeWarning(RenderWarning):
    """A layer was left out of the composite; the message names the entity and why."""


def composite(layers: Sequence[Layer], background=(0, 0, 0, 0)) -> np.ndarray:
    """Composite layers at native size (union of their rectangles) -> (H, W, 4) uint8."""
    bg = premultiplied_background(background)
    width, height = canvas_size(list(layers))
    acc = np.empty((height, width, 4), dtype=np.float64)
    acc[...] = bg
    for layer in order_layers(list(layers)):
        try:
            rgba = reference.to_display_rgba(layer.buffer, layer.format)
        except ValueError as exc:
            msg = f"layer left out of the composite: {layer.entity}: {exc}"
            warnings.warn(msg, CompositeWarning, stacklevel=user_stacklevel())
            continue
        h, w = rgba.shape[:2]
        c = srgb_decode(rgba[..., :3] / 255.0)
        a = (rgba[..., 3] / 255.0 * blend_opacity(layer.opacity))[..., None]
        region = acc[:h, :w]
        region[..., :3] = c * a + region[..., :3] * (1.0 - a)
        region[..., 3:] = a + region[..., 3:] * (1.0 - a)
    alpha = acc[..., 3]
    safe = np.where(alpha > 0, alpha, 1.0)[..., None]
    rgb = np.where(alpha[..., None] > 0, acc[..., :3] / safe, 0.0)
    out = np.empty((height, width, 4), dtype=np.uint8)
    out[..., :3] = q(srgb_encode(rgb))
    out[..., 3] = q(alpha)
    return out

"""Contract §4 (compositing) written out in float64: the oracle the compositor tests share.

Written from the contract, not from any compositor: `spec_composite` blends decoded RGBA
layers; `spec_composite_layers` decodes raw `Layer`s with the NumPy reference first (each
with its own value range, kind, colormap and class colours: contract §8), in draw order.
"""

from __future__ import annotations

import numpy as np

from pixelrun.kernels.layers import canvas_size, layer_decode_args, order_layers
from pixelrun.kernels.reference import convert as reference

__all__ = ["spec_composite", "spec_composite_layers"]


def _decode(c):
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _encode(c):
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _q(x):
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def spec_composite(layers, width: int, height: int, background=(0, 0, 0, 0)) -> np.ndarray:
    """layers: (rgba uint8 (h, w, 4), opacity) in draw order, all at the origin of a
    width x height canvas over `background` (sRGB straight alpha) -> (height, width, 4) uint8."""
    bg = np.asarray(background, np.float64) / 255.0
    acc = np.zeros((height, width, 4))
    acc[..., :3] = _decode(bg[:3]) * bg[3]
    acc[..., 3] = bg[3]
    for rgba, opacity in layers:
        h, w = rgba.shape[:2]
        a = rgba[..., 3] / 255.0 * min(max(opacity, 0.0), 1.0)
        c = _decode(rgba[..., :3] / 255.0)
        region = acc[:h, :w]
        region[..., :3] = c * a[..., None] + region[..., :3] * (1.0 - a[..., None])
        region[..., 3] = a + region[..., 3] * (1.0 - a)
    out = np.zeros((height, width, 4), np.uint8)
    alpha = acc[..., 3]
    seen = alpha > 0
    out[seen, :3] = _q(_encode(acc[seen, :3] / alpha[seen, None]))
    out[seen, 3] = _q(alpha[seen])
    return out


def spec_composite_layers(layers, background=(0, 0, 0, 0)) -> np.ndarray:
    """`spec_composite` of raw Layers: each decoded by the NumPy reference, in draw order,
    on the canvas that holds them all."""
    layers = list(layers)
    width, height = canvas_size(layers)
    decoded = [(reference.to_display_rgba(l.buffer, l.format, **layer_decode_args(l)), l.opacity)
               for l in order_layers(layers)]
    return spec_composite(decoded, width, height, background)

"""The NumPy compositor: contract §4 in float64, the oracle for the wgpu renderer.

Same contract as ``pixelrun.kernels.wgpu.composite.Renderer.render_offscreen``: layers are
decoded by the reference (``pixelrun.kernels.reference.convert``, honouring each layer's
kind, value_range, colormap and class colours: contract §8), drawn by DrawOrder then
entity path, each with its top-left pixel at the origin, blended with premultiplied
alpha in linear light over the background, and encoded to sRGB bytes with straight
alpha. A layer that cannot be decoded is left out with a warning naming the entity.

``composite_view`` is the same at a view's scale and offset: the oracle of
``Renderer.draw``, including the magnification filter (contract §8.4).
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import numpy as np

from pixelrun.kernels.errors import RenderWarning, user_stacklevel
from pixelrun.kernels.layers import (
    MAGNIFICATION_LINEAR,
    Layer,
    blend_opacity,
    canvas_size,
    check_background,
    layer_decode_args,
    order_layers,
    premultiplied_background,
    q,
    srgb_decode,
    srgb_encode,
)
from pixelrun.kernels.reference import convert as reference

__all__ = ["composite", "composite_view", "CompositeWarning"]


class CompositeWarning(RenderWarning):
    """A layer was left out of the composite; the message names the entity and why."""


def _decoded(layer: Layer) -> Optional[np.ndarray]:
    """The layer's display RGBA, or None (with the warning naming it) when it cannot be decoded."""
    try:
        return reference.to_display_rgba(layer.buffer, layer.format, **layer_decode_args(layer))
    except ValueError as exc:
        msg = f"layer left out of the composite: {layer.entity}: {exc}"
        warnings.warn(msg, CompositeWarning, stacklevel=user_stacklevel())
        return None


def _encode(acc: np.ndarray) -> np.ndarray:
    """Premultiplied linear accumulator -> straight-alpha sRGB bytes (contract §4)."""
    alpha = acc[..., 3]
    safe = np.where(alpha > 0, alpha, 1.0)[..., None]
    rgb = np.where(alpha[..., None] > 0, acc[..., :3] / safe, 0.0)
    out = np.empty(acc.shape, dtype=np.uint8)
    out[..., :3] = q(srgb_encode(rgb))
    out[..., 3] = q(alpha)
    return out


def composite(layers: Sequence[Layer], background=(0, 0, 0, 0)) -> np.ndarray:
    """Composite layers at native size (union of their rectangles) -> (H, W, 4) uint8."""
    bg = premultiplied_background(background)
    width, height = canvas_size(list(layers))
    acc = np.empty((height, width, 4), dtype=np.float64)
    acc[...] = bg
    for layer in order_layers(list(layers)):
        rgba = _decoded(layer)
        if rgba is None:
            continue
        h, w = rgba.shape[:2]
        c = srgb_decode(rgba[..., :3] / 255.0)
        a = (rgba[..., 3] / 255.0 * blend_opacity(layer.opacity))[..., None]
        region = acc[:h, :w]
        region[..., :3] = c * a + region[..., :3] * (1.0 - a)
        region[..., 3:] = a + region[..., 3:] * (1.0 - a)
    return _encode(acc)


def composite_view(
    layers: Sequence[Layer],
    target_size: tuple[int, int],
    scale: Union[float, tuple[float, float]] = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    background=(0, 0, 0, 0),
) -> np.ndarray:
    """What ``Renderer.draw`` shows in a (w, h) target where target = scene * scale + offset.

    Each target pixel centre p maps to the scene point u = (p + 0.5 - offset) / scale; a
    layer covers the pixel when the texel floor(u) lies in it. Nearest sampling takes that
    texel. A layer with magnification 2 (MagnificationFilter.Linear) drawn magnified
    (scale > 1 on both axes) mixes the four texels whose centres surround u, clamped to
    the layer's edge, as premultiplied linear colours (Rerun's bilinear rule). Pixels
    outside the scene (the union of the layers) show the background bytes.
    Returns (h, w, 4) uint8.
    """
    tw, th = (int(v) for v in target_size)
    sx, sy = (float(scale), float(scale)) if np.isscalar(scale) else (float(scale[0]), float(scale[1]))
    u = (np.arange(tw) + 0.5 - float(offset[0])) / sx  # scene x of each target column's centre
    v = (np.arange(th) + 0.5 - float(offset[1])) / sy
    xs, ys = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    acc = np.empty((th, tw, 4), dtype=np.float64)
    acc[...] = premultiplied_background(background)
    magnified = min(sx, sy) > 1.0
    for layer in order_layers(list(layers)):
        rgba = _decoded(layer)
        if rgba is None:
            continue
        h, w = rgba.shape[:2]
        prem = np.empty((h, w, 4), dtype=np.float64)
        prem[..., 3] = rgba[..., 3] / 255.0
        prem[..., :3] = srgb_decode(rgba[..., :3] / 255.0) * prem[..., 3:]
        inside = ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]
        if layer.magnification == MAGNIFICATION_LINEAR and magnified:
            cu, cv = u - 0.5, v - 0.5  # texel centres sit at +0.5
            bu, bv = np.floor(cu), np.floor(cv)
            fu, fv = (cu - bu)[None, :, None], (cv - bv)[:, None, None]
            x0, x1 = np.clip(bu, 0, w - 1).astype(np.int64), np.clip(bu + 1, 0, w - 1).astype(np.int64)
            y0, y1 = np.clip(bv, 0, h - 1).astype(np.int64), np.clip(bv + 1, 0, h - 1).astype(np.int64)
            top = prem[y0][:, x0] * (1 - fu) + prem[y0][:, x1] * fu
            bottom = prem[y1][:, x0] * (1 - fu) + prem[y1][:, x1] * fu
            src = top * (1 - fv) + bottom * fv
        else:
            src = prem[np.clip(ys, 0, h - 1)][:, np.clip(xs, 0, w - 1)]
        src = src * blend_opacity(layer.opacity)
        blended = src + acc * (1.0 - src[..., 3:])
        acc = np.where(inside[..., None], blended, acc)
    out = _encode(acc)
    width, height = canvas_size(list(layers))
    in_scene = ((ys >= 0) & (ys < height))[:, None] & ((xs >= 0) & (xs < width))[None, :]
    out[~in_scene] = check_background(background)
    return out

"""Compositing a 2D view on an NVIDIA GPU with CuPy (contract §4); bulk rendering of many frames.

The CUDA counterpart of the NumPy compositor (kernels/reference/composite.py) and of the wgpu
renderer: the backend registry (kernels/backends.py) dispatches ``backend="cupy"`` here. Each layer's
raw bytes are decoded on the device by pixelrun.kernels.cuda.convert, then blended in
linear light with premultiplied alpha by kernels/cuda/composite.cu:

    c = srgb_decode(rgb), a = alpha * clamp(opacity, 0, 1), acc = c*a + acc*(1 - a)

starting from the background (headless default: transparent), and encoded back to
sRGB bytes with straight alpha. Layers are drawn in the contract order (DrawOrder ascending,
ties by entity path), each at the origin; the canvas is the union of their rectangles.

Public API:
- `composite(layers, background=(0, 0, 0, 0)) -> (H, W, 4) uint8 NumPy array`
- `composite_gpu(layers, ...)`: the same, result left on the device (CuPy).
- `render_many(scenes, background=..., window=64)`: an iterator of (H, W, 4) uint8
  NumPy arrays, one per scene (a scene is a list of Layers), for
  `pixelrun render --all-times --backend cupy`. Distinct images are decoded once
  (cached by row id) and in batches -- all new frames of one format in a window of
  scenes go through `convert_batch_gpu` in one launch -- and each composited frame is
  copied back while the next is drawn. PNG encoding (thread pool, progress bar) is the
  caller's part (engine/cli/render.py): this module never touches files.

`plan_composite(xp, ...)` builds the kernel launches from arrays of any array module,
so tests run the same plans through the host-compiled kernels without a GPU.
"""

from __future__ import annotations

import ctypes
import warnings
from collections import OrderedDict
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.cuda.convert import Launch, is_available
from pixelrun.kernels.errors import user_stacklevel
from pixelrun.kernels.formats import validate
from pixelrun.kernels.layers import (
    Layer,
    blend_opacity,
    canvas_size,
    decode_key,
    decode_uncovered,
    drop_occluded,
    layer_decode_args,
    order_layers,
    premultiplied_background,
)
from pixelrun.kernels.reference.composite import CompositeWarning

__all__ = ["composite", "composite_gpu", "render_many", "plan_composite", "is_available"]

BLOCK = 128  # threads per block of the layer kernel (one pixel each)
FLAT_BLOCK = 256  # clear / finish: grid-stride over every pixel
FLAT_MAX_BLOCKS = 1 << 16

Background = Sequence[int]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def plan_composite(
    xp,
    layers_rgba: Sequence[tuple[object, float]],
    width: int,
    height: int,
    background: Background = (0, 0, 0, 0),
):
    """(acc, out, launches) compositing display-RGBA layers, already in draw order.

    layers_rgba: (rgba, opacity) pairs, rgba an (h, w, 4) uint8 C-contiguous array of
    module `xp` with h <= height, w <= width. out is the (height, width, 4) uint8
    result once the launches ran; acc the float32 accumulator they use.
    """
    pixels = width * height
    acc = xp.empty((height, width, 4), dtype=np.float32)
    out = xp.empty((height, width, 4), dtype=np.uint8)
    flat_grid = (max(1, min(_cdiv(pixels, FLAT_BLOCK), FLAT_MAX_BLOCKS)), 1, 1)
    bg = tuple(float(v) for v in premultiplied_background(background))
    plan = [Launch("pr_composite_clear", flat_grid, (FLAT_BLOCK, 1, 1),
                   (acc, np.int64(pixels), *map(np.float32, bg)))]
    for rgba, opacity in layers_rgba:
        h, w = int(rgba.shape[0]), int(rgba.shape[1])
        if h > height or w > width:
            raise ValueError(f"layer of {w}x{h} does not fit the {width}x{height} canvas")
        if h == 0 or w == 0:
            continue
        plan.append(Launch("pr_composite_layer", (_cdiv(w, BLOCK), h, 1), (BLOCK, 1, 1),
                           (acc, rgba, np.int32(width), np.int32(w), np.int32(h),
                            np.float32(blend_opacity(opacity)))))
    plan.append(Launch("pr_composite_finish", flat_grid, (FLAT_BLOCK, 1, 1), (acc, out, np.int64(pixels))))
    return acc, out, plan


class _DecodedCache:
    """Display RGBA of layers on the device, by row id, least recently used out first."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.items: OrderedDict = OrderedDict()
        self.bytes = 0

    def get(self, key):
        item = self.items.get(key)
        if item is not None:
            self.items.move_to_end(key)
        return item

    def put(self, key, rgba) -> None:
        if key in self.items:
            return
        self.items[key] = rgba
        self.bytes += int(rgba.nbytes)
        while self.bytes > self.max_bytes and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.bytes -= int(old.nbytes)


def _key(layer: Layer):
    # The row id names the bytes; decode_key adds the format (a static ImageFormat may
    # change while the buffer row stays the same) and what the colours depend on (kind,
    # range, colormap, class colours: a changed colormap is a new decode, never a stale one).
    return (layer.row_id, decode_key(layer))


def _cupy():
    ok, reason = is_available()
    if not ok:
        raise RuntimeError(f"the CuPy compositor cannot run here: {reason}")
    import cupy  # noqa: PLC0415 - optional dependency, present once is_available() said so

    return cupy


def _invalid(layer: Layer) -> Optional[str]:
    """Why the layer's bytes do not fit its format, or None."""
    buf = layer.buffer  # a NumPy view, or a CuPy array (an EncodedImage decoded on the GPU)
    return validate(int(buf.size if hasattr(buf, "__cuda_array_interface__") else np.asarray(buf).size),
                    layer.format)


def _visible(layers: list[Layer], cache: _DecodedCache) -> list[Layer]:
    """The layers in draw order that can change a pixel, decoded (`decode_uncovered`)."""

    def decode(todo: list[Layer]) -> set:
        _decode_missing(todo, cache)
        return {id(l) for l in todo if cache.get(_key(l)) is None}

    return decode_uncovered(order_layers(layers), decode)


def _decode_missing(layers: Iterable[Layer], cache: _DecodedCache) -> None:
    """Decode every layer not yet cached, all frames of one format in one batch.

    A layer whose bytes do not fit its format is left out with a CompositeWarning
    naming the entity, like the NumPy compositor; the others are still drawn.
    """
    groups: dict = {}
    for layer in layers:
        key = _key(layer)
        if cache.get(key) is not None or key in groups.get(key[1], {}):
            continue
        msg = _invalid(layer)
        if msg is not None:
            warnings.warn(f"layer left out of the composite: {layer.entity}: {msg}", CompositeWarning,
                          stacklevel=user_stacklevel())
            continue
        groups.setdefault(key[1], {})[key] = layer
    for members in groups.values():  # one batch per (format, kind, range, colormap, colours)
        keys = list(members)
        first = members[keys[0]]
        try:
            rgba = cupy_convert.convert_batch_gpu([members[k].buffer for k in keys], first.format,
                                                  **layer_decode_args(first))
        except ValueError as exc:  # e.g. a multi-channel depth image: every layer of the group
            for k in keys:
                warnings.warn(f"layer left out of the composite: {members[k].entity}: {exc}", CompositeWarning,
                              stacklevel=user_stacklevel())
            continue
        for i, key in enumerate(keys):
            cache.put(key, rgba[i])


def _composite_on_device(cupy, layers: list[Layer], background: Background, cache: _DecodedCache):
    width, height = canvas_size(layers)  # every layer's rectangle counts, hidden or not
    # layers under an opaque one are neither decoded nor blended: the same frame to the bit
    decoded = [(cache.get(_key(l)), l.opacity) for l in _visible(layers, cache)]
    pairs = [(rgba, opacity) for rgba, opacity in decoded if rgba is not None]
    _, out, plan = plan_composite(cupy, pairs, width, height, background)
    cupy_convert.launch(plan)
    return out


def composite_gpu(layers: list[Layer], background: Background = (0, 0, 0, 0)):
    """Composite the layers (any order; the contract order is applied) -> (H, W, 4) CuPy array."""
    cupy = _cupy()
    return _composite_on_device(cupy, list(layers), background, _DecodedCache(1 << 62))


def composite(layers: list[Layer], background: Background = (0, 0, 0, 0)) -> np.ndarray:
    """Composite the layers on the GPU and return the (H, W, 4) uint8 NumPy array."""
    return composite_gpu(layers, background).get()


def render_many(
    scenes: Iterable[list[Layer]],
    background: Background = (0, 0, 0, 0),
    window: int = 64,
    cache_bytes: int = 2 << 30,
) -> Iterator[np.ndarray]:
    """Composite many scenes on the GPU; yields one (H, W, 4) uint8 NumPy array per scene.

    Scenes are taken `window` at a time: their not-yet-decoded images are decoded in
    batches (one launch per format), then each frame is composited and copied back
    asynchronously into pinned host memory on a separate stream, so the copy of frame
    i overlaps the drawing of frame i + 1. Decoded images stay cached (by row id) up
    to `cache_bytes` of device memory, so a static background layer is decoded once.
    """
    cupy = _cupy()
    import cupyx  # noqa: PLC0415 - optional dependency (ships with cupy), for pinned host memory

    cache = _DecodedCache(cache_bytes)
    copy_stream = cupy.cuda.Stream(non_blocking=True)
    pending: Optional[tuple] = None  # (event, pinned host array, device array kept alive)

    def finish(item) -> np.ndarray:
        event, host, _device = item  # _device: not freed to the pool before the copy ran
        event.synchronize()
        # The pinned buffer belongs to the array we hand out (its base), and returns to
        # CuPy's pinned pool only when the caller drops it: no extra host copy.
        return host

    scenes = iter(scenes)
    while True:
        batch = [list(s) for _, s in zip(range(window), scenes)]
        if not batch:
            break
        # decoded together, one batch per format; what an opaque layer hides is left out
        _decode_missing((l for s in batch
                         for l in drop_occluded(order_layers(s), lambda l: _invalid(l) is None)), cache)
        for layers in batch:
            out = _composite_on_device(cupy, layers, background, cache)
            copy_stream.wait_event(cupy.cuda.get_current_stream().record())
            host = cupyx.empty_pinned(out.shape, dtype=np.uint8)
            if out.nbytes:
                out.data.copy_to_host_async(ctypes.c_void_p(host.ctypes.data), out.nbytes, stream=copy_stream)
            item = (copy_stream.record(), host, out)
            if pending is not None:
                yield finish(pending)
            pending = item
    if pending is not None:
        yield finish(pending)

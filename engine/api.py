"""Headless rendering: a recording's 2D view at one time point as an (H, W, 4) uint8 array.

    from pixelrun.engine.api import render
    rgba = render("rec.rrd", timeline="step", time=19)            # the composited view
    rgba = render(rec, entity="cam/left", backend="numpy")          # a subtree, on the CPU

``source`` is an ``.rrd`` path, a memory recording (an object with ``rrd_bytes()``),
bytes, or a store (``pixelrun.engine.store.store.ChunkStore``). The view is SPEC 4's: every
image entity resolved by latest-at, drawn by DrawOrder then entity path, blended in
linear light over the background (default transparent), at native size.

Backends: "wgpu" (the Renderer on this process's shared device), "numpy" (the float64
oracle, kernels/reference/composite.py), "cupy" (kernels/cuda/composite.py, NVIDIA only), "auto"
(kernels/backends.py's rule: wgpu when an adapter exists, else numpy). Every backend
gives the same pixels (within 1 LSB).

Timeline choice when ``timeline`` is None: the recording's only timeline; with several,
the first user timeline by name (``log_time``/``log_tick``, which the SDK stamps on every
``log``, only when there is nothing else); with none, static data only. ``time`` None
means the latest data on that timeline.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence

import numpy as np

from pixelrun.engine import chunk
from pixelrun.engine.scene import Layer, canvas_size, scene_at, times_of
from pixelrun.kernels.backends import choose_backend

__all__ = [
    "render",
    "render_layers",
    "layers_at",
    "open_source",
    "default_timeline",
    "time_points",
    "resolve_backend",
    "check_timeline",
    "shared_renderer",
    "RenderWarning",
    "BACKENDS",
]

BACKENDS = ("wgpu", "numpy", "cupy", "auto")

_renderer = None


class RenderWarning(UserWarning):
    """Something in the recording could not be drawn; the message names the entity."""


def resolve_backend(backend: str) -> str:
    """A backend name checked, with "auto" resolved by kernels/backends.py's rule."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return choose_backend(backend) if backend == "auto" else backend


def shared_renderer():
    """The process-wide wgpu Renderer (created on first use, on gpu.get_device())."""
    global _renderer
    if _renderer is None:
        from pixelrun.kernels.wgpu import device as gpu  # noqa: PLC0415 - wgpu only when asked for
        from pixelrun.kernels.wgpu.composite import Renderer  # noqa: PLC0415

        _renderer = Renderer(gpu.get_device())
    return _renderer


# The largest canvas drawn (RGBA bytes: 1 GiB). Layers are drawn at native size on a
# canvas as large as the largest of them in each direction; a recording whose formats
# ask for more (a damaged or hostile width next to a tall image) is refused, not
# allocated.
MAX_CANVAS_BYTES = 1 << 30


def render_layers(layers: Sequence[Layer], background=None, backend: str = "wgpu") -> np.ndarray:
    """Composite a list of Layers at native size with one backend -> (H, W, 4) uint8.

    ValueError when the canvas would exceed MAX_CANVAS_BYTES.
    """
    bg = (0, 0, 0, 0) if background is None else tuple(background)
    name = resolve_backend(backend)
    w, h = canvas_size(list(layers))
    if w * h * 4 > MAX_CANVAS_BYTES:
        sizes = ", ".join(f"{l.entity} {l.format.width}x{l.format.height}" for l in layers)
        raise ValueError(
            f"the view would be a {w}x{h} canvas ({w * h * 4} bytes), more than the "
            f"{MAX_CANVAS_BYTES}-byte limit (images: {sizes})"
        )
    if name == "numpy":
        from pixelrun.kernels.reference.composite import composite  # noqa: PLC0415

        return composite(list(layers), bg)
    if name == "cupy":
        try:
            from pixelrun.kernels.cuda.composite import composite as cupy_composite  # noqa: PLC0415
        except ImportError as exc:
            raise RuntimeError(f"backend 'cupy' cannot be used here: {exc}") from exc
        return cupy_composite(list(layers), bg)
    return shared_renderer().render_offscreen(list(layers), bg)


def _is_store(source) -> bool:
    return hasattr(source, "latest_at") and hasattr(source, "entities")


def open_source(source):
    """A store from an .rrd path, a memory recording, bytes, or a store (returned as is).

    A path to something that is not an .rrd file at all raises ValueError
    ("not an .rrd file: PATH ..."); a damaged .rrd opens with what is intact (its
    problems in ``store.problems`` and a StoreWarning).
    """
    if _is_store(source):
        return source
    from pixelrun.engine.store.store import open_store  # noqa: PLC0415

    if isinstance(source, (str, os.PathLike)):
        from pixelrun.engine.store.source import not_rrd_reason  # noqa: PLC0415

        reason = not_rrd_reason(source)
        if reason is not None:
            raise ValueError(reason)
    return open_store(source)


def default_timeline(store) -> Optional[str]:
    """The timeline a render uses when none is named (see the module docstring)."""
    return chunk.default_timeline(store.timelines())


def check_timeline(store, timeline: Optional[str]) -> None:
    """ValueError naming the recording's timelines when `timeline` is not one of them."""
    if timeline is None:
        return
    names = sorted(store.timelines())
    if timeline not in names:
        raise ValueError(
            f"timeline {timeline!r} is not in this recording (it has: {', '.join(names) or 'no timelines'})"
        )


def layers_at(store, *, entity=None, timeline=None, time=None) -> list[Layer]:
    """The scene's layers at a time point; undrawable images are reported as RenderWarnings."""
    problems: list[str] = []
    layers = scene_at(store, timeline, time, entity, problems=problems)
    for msg in problems:
        warnings.warn(f"left out of the render: {msg}", RenderWarning, stacklevel=3)
    return layers


def render(
    source,
    *,
    entity: Optional[str] = None,
    timeline: Optional[str] = None,
    time: Optional[int] = None,
    background=None,
    backend: str = "wgpu",
) -> np.ndarray:
    """Render a recording's view at one time point -> (H, W, 4) uint8 (see module docstring).

    An empty view (no image resolves) is a (0, 0, 4) array.
    """
    store = open_source(source)
    if timeline is None:
        timeline = default_timeline(store)
    else:
        check_timeline(store, timeline)
    layers = layers_at(store, entity=entity, timeline=timeline, time=time)
    return render_layers(layers, background=background, backend=backend)


def time_points(store, timeline: str, entity: Optional[str] = None) -> np.ndarray:
    """Every time point on `timeline` where image data is logged (sorted int64)."""
    check_timeline(store, timeline)
    return times_of(store, timeline, entity)

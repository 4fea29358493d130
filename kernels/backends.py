"""The backend registry: every backend's conversion and compositor, its availability,
and the "auto" rule, in one place (contract §2-4).

backend: "numpy" (the reference), "wgpu" (WGSL compute), "cupy" (CUDA), or "auto".
"auto" takes CuPy when the input already lives on a CUDA device, or when a batch is
large and a CUDA device exists; else wgpu; else NumPy. Each backend lives in its own
modules and is imported only when chosen, so a machine without CUDA or without a GPU
adapter still has the others.

Each `Backend` names
- ``convert``: a module with ``to_display_rgba(buffer, fmt, value_range=None, *, kind="image",
  colormap=None, class_colors=None)`` (the last three: contract §8's depth, colormapped and
  segmentation images), optional ``convert_batch(frames, fmt, value_range=None, **same)`` and
  ``is_available() -> (bool, reason)``;
- ``composite``: ``"module:function"``, a function ``(layers, background) -> (H, W, 4)
  uint8`` drawing `pixelrun.kernels.layers.Layer`s at native size.
`pixelrun.engine.api.render` and the conversion API below both dispatch through it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from pixelrun.kernels.formats import ImageFormat
from pixelrun.kernels.layers import Layer, LayerKind

__all__ = [
    "Backend",
    "REGISTRY",
    "BACKENDS",
    "ORACLE",
    "AUTO_CUDA_BATCH_BYTES",
    "backend_module",
    "compositor",
    "composite",
    "availability",
    "available_backends",
    "choose_backend",
    "convert",
    "convert_batch",
]


@dataclass(frozen=True)
class Backend:
    """One backend: where its conversion and its compositor live."""

    name: str
    convert: str  # module path
    composite: str  # "module:function"
    summary: str


REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("numpy", "pixelrun.kernels.reference.convert", "pixelrun.kernels.reference.composite:composite",
                "the NumPy reference (float64 oracle), always available"),
        Backend("wgpu", "pixelrun.kernels.wgpu.backend", "pixelrun.kernels.wgpu.composite:composite",
                "WGSL compute on this process's shared wgpu device"),
        Backend("cupy", "pixelrun.kernels.cuda.convert", "pixelrun.kernels.cuda.composite:composite",
                "CUDA kernels through CuPy (NVIDIA only)"),
    )
}

# The registered names, in registry order (every name but "auto").
BACKENDS = tuple(REGISTRY)

# The backend every other one is checked against (tests/kernels/test_conformance.py).
ORACLE = "numpy"

# Batches at least this many bytes go to CUDA under "auto" when a device exists.
AUTO_CUDA_BATCH_BYTES = 64 << 20


def _entry(name: str) -> Backend:
    entry = REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)} or 'auto'")
    return entry


def backend_module(name: str):
    """The conversion module of a registered backend (ValueError for unknown names)."""
    return importlib.import_module(_entry(name).convert)


def compositor(name: str) -> Callable[[Sequence[Layer], tuple], np.ndarray]:
    """The compositor function of a registered backend.

    ValueError for unknown names; RuntimeError naming the backend when its modules
    cannot be imported here (e.g. cupy or wgpu not installed).
    """
    module, _, func = _entry(name).composite.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except ImportError as exc:
        raise RuntimeError(f"backend {name!r} cannot be used here: {exc}") from exc


def composite(name: str, layers: Sequence[Layer], background=(0, 0, 0, 0)) -> np.ndarray:
    """Composite layers at native size with one registered backend -> (H, W, 4) uint8."""
    return compositor(name)(list(layers), tuple(background))


def availability(name: str) -> tuple[bool, str]:
    """(available, reason) for one backend, never raising (ValueError for unknown names)."""
    _entry(name)
    try:
        mod = backend_module(name)
    except ImportError as exc:
        return False, f"{name} backend cannot be imported: {exc}"
    check = getattr(mod, "is_available", None)
    if check is None:
        return True, ""
    try:
        return check()
    except Exception as exc:  # a broken driver must not take the caller down
        return False, f"{name} backend unavailable: {exc}"


def available_backends() -> list[str]:
    """The registered backends usable on this machine, in registry order."""
    return [b for b in BACKENDS if availability(b)[0]]


def _on_cuda(buffer) -> bool:
    return hasattr(buffer, "__cuda_array_interface__")


def choose_backend(backend: str, buffer=None, batch_bytes: int = 0) -> str:
    """Resolve "auto" by the rule in the module docstring; validate explicit names."""
    if backend != "auto":
        _entry(backend)  # raises on unknown names
        return backend
    if (buffer is not None and _on_cuda(buffer)) or batch_bytes >= AUTO_CUDA_BATCH_BYTES:
        if availability("cupy")[0]:
            return "cupy"
    if availability("wgpu")[0]:
        return "wgpu"
    return "numpy"


def convert(
    buffer,
    fmt: ImageFormat,
    value_range: Optional[tuple[float, float]] = None,
    backend: str = "auto",
    *,
    kind: str = LayerKind.IMAGE,
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Raw bytes (bytes, memoryview, uint8 array; CuPy for "cupy") -> (H, W, 4) uint8.

    kind ("image", "depth", "segmentation"), colormap (a `colormaps.Colormap` value) and
    class_colors ((N, 4) uint8 sRGB, indexed by class id) map a one-channel image through a
    table (contract §8); value_range is then the depth / display range.
    """
    name = choose_backend(backend, buffer)
    return backend_module(name).to_display_rgba(
        buffer, fmt, value_range=value_range, kind=kind, colormap=colormap, class_colors=class_colors
    )


def convert_batch(
    frames,
    fmt: ImageFormat,
    value_range: Optional[tuple[float, float]] = None,
    backend: str = "auto",
    *,
    kind: str = LayerKind.IMAGE,
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> np.ndarray:
    """N frames of one format -> (N, H, W, 4) uint8.

    On CUDA the whole column is one launch (`cuda.convert.convert_batch`); other
    backends convert frame by frame into one preallocated output.
    frames: an (N, nbytes) uint8 array (host or CUDA) or a sequence of byte buffers.
    kind, colormap, class_colors: as for `convert` (each frame its own default depth range).
    """
    table_args = {"kind": kind, "colormap": colormap, "class_colors": class_colors}
    n = len(frames)
    batch_bytes = n * fmt.byte_count()
    name = choose_backend(backend, frames, batch_bytes=batch_bytes)
    mod = backend_module(name)
    if hasattr(mod, "convert_batch"):
        return mod.convert_batch(frames, fmt, value_range=value_range, **table_args)
    out = np.empty((n, fmt.height, fmt.width, 4), dtype=np.uint8)
    for i in range(n):  # per frame, not per pixel: each call is a whole-image kernel
        out[i] = mod.to_display_rgba(frames[i], fmt, value_range=value_range, **table_args)
    return out

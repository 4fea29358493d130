"""One conversion API over every backend: raw image bytes -> display RGBA8 (SPEC 2-3).

backend: "numpy" (the reference), "wgpu" (WGSL compute), "cupy" (CUDA), or "auto".
"auto" takes CuPy when the input already lives on a CUDA device, or when a batch is
large and a CUDA device exists; else wgpu; else NumPy. Each backend lives in its own
module and is imported only when chosen, so a machine without CUDA or without a GPU
adapter still has the others.
"""

from __future__ import annotations

import importlib
from typing import Optional

import numpy as np

from pixelrun.kernels.formats import ImageFormat

BACKENDS = ("numpy", "wgpu", "cupy")

# backend -> module providing to_display_rgba(buffer, fmt, value_range=None) and
# is_available() -> (bool, reason)
_MODULES = {
    "numpy": "pixelrun.kernels.reference.convert",
    "wgpu": "pixelrun.kernels.wgpu.backend",
    "cupy": "pixelrun.kernels.cuda.convert",
}

# Batches at least this many bytes go to CUDA under "auto" when a device exists.
AUTO_CUDA_BATCH_BYTES = 64 << 20


def backend_module(name: str):
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)} or 'auto'")
    return importlib.import_module(_MODULES[name])


def availability(name: str) -> tuple[bool, str]:
    """(available, reason) for one backend, never raising."""
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
    return [b for b in BACKENDS if availability(b)[0]]


def _on_cuda(buffer) -> bool:
    return hasattr(buffer, "__cuda_array_interface__")


def choose_backend(backend: str, buffer=None, batch_bytes: int = 0) -> str:
    """Resolve "auto" by the rule in the module docstring; validate explicit names."""
    if backend != "auto":
        backend_module(backend)  # raises on unknown names
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
) -> np.ndarray:
    """Raw bytes (bytes, memoryview, uint8 array; CuPy for "cupy") -> (H, W, 4) uint8."""
    name = choose_backend(backend, buffer)
    return backend_module(name).to_display_rgba(buffer, fmt, value_range=value_range)


def convert_batch(
    frames,
    fmt: ImageFormat,
    value_range: Optional[tuple[float, float]] = None,
    backend: str = "auto",
) -> np.ndarray:
    """N frames of one format -> (N, H, W, 4) uint8.

    On CUDA the whole column is one launch (`cupy_convert.convert_batch`); other
    backends convert frame by frame into one preallocated output.
    frames: an (N, nbytes) uint8 array (host or CUDA) or a sequence of byte buffers.
    """
    n = len(frames)
    batch_bytes = n * fmt.byte_count()
    name = choose_backend(backend, frames, batch_bytes=batch_bytes)
    mod = backend_module(name)
    if hasattr(mod, "convert_batch"):
        return mod.convert_batch(frames, fmt, value_range=value_range)
    out = np.empty((n, fmt.height, fmt.width, 4), dtype=np.uint8)
    for i in range(n):  # per frame, not per pixel: each call is a whole-image kernel
        out[i] = mod.to_display_rgba(frames[i], fmt, value_range=value_range)
    return out

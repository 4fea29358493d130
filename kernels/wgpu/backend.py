"""The "wgpu" conversion backend of `pixelrun.kernels.backends`: WGSL compute on the
process's shared device (`pixelrun.kernels.wgpu.device`). The shaders and their bindings live
in `pixelrun.kernels.wgpu.convert`; this module only supplies the device.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pixelrun.kernels.formats import ImageFormat
from pixelrun.kernels.wgpu import device as gpu


def is_available() -> tuple[bool, str]:
    """(available, reason): whether a wgpu adapter and device can be had here."""
    return gpu.is_available()


def to_display_rgba(
    buffer,
    fmt: ImageFormat,
    value_range: Optional[tuple[float, float]] = None,
    *,
    kind: str = "image",
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Raw bytes -> (H, W, 4) uint8 display RGBA, decoded on the GPU (contract §2-3; depth,
    colormaps and segmentation: §8, arguments as the reference's)."""
    from pixelrun.kernels.wgpu.convert import converter_for  # noqa: PLC0415 - imports wgpu

    return converter_for(gpu.get_device()).to_display_rgba(
        buffer, fmt, value_range, kind=kind, colormap=colormap, class_colors=class_colors
    )

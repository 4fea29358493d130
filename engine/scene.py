"""Scene building: what each entity shows at one time point (SPEC 4).

The store answers latest-at queries; this module turns their answers into an
ordered list of `Layer`s that every compositor (NumPy, wgpu, CuPy) draws the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixelrun.kernels.formats import ImageFormat

DEFAULT_OPACITY = 1.0
DEFAULT_IMAGE_DRAW_ORDER = -10.0


@dataclass(frozen=True)
class Layer:
    """One image to draw: raw bytes plus how to read them and how to blend them.

    row_id identifies the buffer's row (128-bit int) and keys GPU upload caches.
    buffer is a 1-D uint8 view of the raw bytes, never converted on the CPU.
    """

    entity: str
    row_id: int
    buffer: np.ndarray
    format: ImageFormat
    opacity: float = DEFAULT_OPACITY
    draw_order: float = DEFAULT_IMAGE_DRAW_ORDER


def order_layers(layers: list[Layer]) -> list[Layer]:
    """Draw order: DrawOrder ascending, ties by entity path; later is on top."""
    return sorted(layers, key=lambda l: (l.draw_order, l.entity))


def canvas_size(layers: list[Layer]) -> tuple[int, int]:
    """(width, height) of the union of the layers' rectangles, all at the origin."""
    if not layers:
        return (0, 0)
    return (max(l.format.width for l in layers), max(l.format.height for l in layers))

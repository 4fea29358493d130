"""How a GPU backend maps one channel through a table (contract §8), planned once on the host.

The WGSL (kernels/wgpu/shaders/table.wgsl) and CUDA (kernels/cuda/table.cu) kernels do
one of three lookups; this module decides which, and builds the table they read, from
the reference's own mapping (`reference.convert.sample_rgba`) so the integer path is the
reference's formula, not a second copy of it:

- MODE_PALETTE: samples of at most 16 bits (any kind, any range): the table holds the
  RGBA of every value of the type (256 or 65536 entries, built by `sample_rgba` on
  `arange`), and a pixel is ``table[v - first]``: bit-exact with the reference by
  construction.
- MODE_FLOAT: wider integers and floats, depth or colormapped: t = (v - lo) * inv_span in
  float32 (NaN -> 0, +-Inf clamp), index = floor(clamp(t, 0, 1) * (n - 1) + 0.5) into the
  colormap's table (kernels/colormaps.py); inv_span 0 means "no range" (t = 0).
- MODE_IDS: wider integers and floats, segmentation: id (floats: floor(v + 0.5)) ->
  ``table[id]`` when 0 <= id < n, else transparent.

Tables are packed RGBA8 words, R in the low byte (the rgba8unorm memory order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from pixelrun.kernels.buffers import as_byte_view
from pixelrun.kernels.colormaps import DEFAULT_DEPTH_COLORMAP, colormap_table
from pixelrun.kernels.formats import DATATYPES, ImageFormat, check
from pixelrun.kernels.layers import LayerKind
from pixelrun.kernels.reference.convert import (
    check_single_channel,
    class_table,
    sample_rgba,
    table_range,
    uses_table,
)

__all__ = ["MODE_PALETTE", "MODE_FLOAT", "MODE_IDS", "TablePlan", "table_plan", "plan_for", "pack_rgba_words"]

MODE_PALETTE, MODE_FLOAT, MODE_IDS = 0, 1, 2


@dataclass(frozen=True)
class TablePlan:
    """One table lookup: the mode, the packed table and the scalars the kernel reads."""

    mode: int
    words: np.ndarray  # uint32, at least one entry (GPU bindings cannot be empty)
    n: int  # table entries in use (0: every pixel transparent, MODE_IDS only)
    first: int  # MODE_PALETTE: the type's smallest value (table[0])
    lo: float  # MODE_FLOAT: t = (v - lo) * inv_span
    inv_span: float


def pack_rgba_words(rgba: np.ndarray) -> np.ndarray:
    """(N, 4) uint8 -> (max(N, 1),) uint32, R in the low byte."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8).reshape(-1, 4)
    if rgba.shape[0] == 0:
        return np.zeros(1, np.uint32)
    return rgba.view("<u4").reshape(-1).astype(np.uint32)


def table_plan(
    fmt: ImageFormat,
    kind: str,
    value_range: Optional[tuple[float, float]],
    colormap: Optional[int],
    class_colors: Optional[np.ndarray],
) -> TablePlan:
    """The lookup for one image. value_range is already resolved
    (`reference.convert.table_range`; None: no range, t = 0) and ignored for segmentation."""
    info = DATATYPES[fmt.datatype]
    if not info.is_float and info.size <= 2:
        lo_v = int(np.iinfo(info.numpy).min)
        values = np.arange(lo_v, int(np.iinfo(info.numpy).max) + 1).astype(info.numpy)
        rgba = sample_rgba(values, fmt.datatype, kind, value_range, colormap, class_colors)
        return TablePlan(MODE_PALETTE, pack_rgba_words(rgba), len(values), lo_v, 0.0, 0.0)
    if kind == LayerKind.SEGMENTATION:
        colors = class_table(class_colors)
        return TablePlan(MODE_IDS, pack_rgba_words(colors), int(colors.shape[0]), 0, 0.0, 0.0)
    table = colormap_table(DEFAULT_DEPTH_COLORMAP if colormap is None else colormap)
    if value_range is None:
        lo, inv_span = 0.0, 0.0
    else:
        lo = float(value_range[0])
        inv_span = 1.0 / (float(value_range[1]) - lo)
    return TablePlan(MODE_FLOAT, pack_rgba_words(table), int(table.shape[0]), 0, lo, inv_span)


def plan_for(
    buffer,
    fmt: ImageFormat,
    value_range: Optional[tuple[float, float]] = None,
    kind: str = LayerKind.IMAGE,
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> Optional[TablePlan]:
    """The lookup for host bytes, or None when the image follows contract §2-3 instead.

    Resolves the range on the host from the samples (as Rerun computes its image stats on
    the CPU); ValueError for a byte count that does not match or a multi-channel depth or
    segmentation image (the reference's messages).
    """
    if not uses_table(fmt, kind, colormap):
        return None
    check_single_channel(fmt, kind)
    buf = as_byte_view(buffer)
    check(buf.size, fmt)
    rng = None
    if kind != LayerKind.SEGMENTATION:
        samples = fmt.color_samples(buf).reshape(-1)  # padded rows and byte order honoured (formats.py)
        rng = table_range(samples, fmt.datatype, kind, value_range)
    return table_plan(fmt, kind, rng, colormap, class_colors)

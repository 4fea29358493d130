"""Building small chunks by hand for the store and scene tests.

Row ids are (hi, lo) = (1000, counter) unless given, so "the row with counter 7" is
how expectations are written: independent of the store's code.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from pixelrun.engine.chunk import (
    IMAGE_BUFFER,
    IMAGE_DRAW_ORDER,
    IMAGE_FORMAT,
    IMAGE_OPACITY,
    Chunk,
    TimeColumn,
)

VALUE = "Test:value"  # a plain list<int64> component: the value names the row


def value_column(values: list) -> pa.Array:
    """list<int64> column: one instance per row, None = row lacks it, [] = a clear."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, list):
            out.append(v)
        else:
            out.append([v])
    return pa.array(out, type=pa.list_(pa.int64()))


def mk(
    entity: str,
    counters: list[int],
    timelines: Optional[dict] = None,
    components: Optional[dict] = None,
    hi: int = 1000,
) -> Chunk:
    """A chunk; timelines: {name: values} or {name: (kind, values)}."""
    n = len(counters)
    row_ids = np.stack([np.full(n, hi, np.uint64), np.asarray(counters, np.uint64)], axis=1)
    tls = {}
    for name, vals in (timelines or {}).items():
        kind = "sequence"
        if isinstance(vals, tuple):
            kind, vals = vals
        tls[name] = TimeColumn(kind, np.asarray(vals, np.int64))
    comps = {}
    for name, col in (components or {}).items():
        comps[name] = col if isinstance(col, (pa.Array, pa.ChunkedArray)) else value_column(col)
    return Chunk(entity, row_ids, tls, comps)


def blob_column(blobs: list) -> pa.Array:
    """Image:buffer column: list<list<uint8>>, one blob per row (None = absent)."""
    out = [None if b is None else [list(np.frombuffer(bytes(b), np.uint8))] for b in blobs]
    return pa.array(out, type=pa.list_(pa.list_(pa.field("item", pa.uint8(), nullable=False))))


_FMT_STRUCT = pa.struct(
    [
        pa.field("width", pa.uint32(), nullable=False),
        pa.field("height", pa.uint32(), nullable=False),
        pa.field("pixel_format", pa.uint8()),
        pa.field("color_model", pa.uint8()),
        pa.field("channel_datatype", pa.uint8()),
    ]
)


def format_column(formats: list) -> pa.Array:
    """Image:format column from dicts {width, height, pixel_format?, color_model?, channel_datatype?}."""
    rows = []
    for f in formats:
        if f is None:
            rows.append(None)
        else:
            d = {"pixel_format": None, "color_model": None, "channel_datatype": None}
            d.update(f)
            rows.append([d])
    return pa.array(rows, type=pa.list_(_FMT_STRUCT))


def float_column(values: list) -> pa.Array:
    return pa.array([None if v is None else [v] for v in values], type=pa.list_(pa.float32()))


def image_chunk(
    entity: str,
    counters: list[int],
    timelines: Optional[dict],
    blobs: Optional[list] = None,
    formats: Optional[list] = None,
    opacity: Optional[list] = None,
    draw_order: Optional[list] = None,
    hi: int = 1000,
) -> Chunk:
    comps = {}
    if blobs is not None:
        comps[IMAGE_BUFFER] = blob_column(blobs)
    if formats is not None:
        comps[IMAGE_FORMAT] = format_column(formats)
    if opacity is not None:
        comps[IMAGE_OPACITY] = float_column(opacity)
    if draw_order is not None:
        comps[IMAGE_DRAW_ORDER] = float_column(draw_order)
    return mk(entity, counters, timelines, comps, hi=hi)


def one_blob_column(data: np.ndarray) -> pa.Array:
    """Image:buffer column of one row holding `data`'s bytes, without copying them."""
    n = int(data.nbytes)
    leaf = pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(data)])
    inner = pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), leaf)
    return pa.ListArray.from_arrays(pa.array([0, 1], pa.int32()), inner)


def frame_chunk(entity: str, counter: int, step: int, nbytes: int, fill: int) -> Chunk:
    """One temporal Image:buffer row of `nbytes` bytes, built zero-copy from NumPy."""
    data = np.full(nbytes, fill & 0xFF, np.uint8)
    return mk(entity, [counter], {"step": [step]}, {IMAGE_BUFFER: one_blob_column(data)})

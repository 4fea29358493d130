"""A raw ROS image in a form Rerun 0.41 shows, transformed losslessly (`pixelrun convert`).

Rerun 0.41's image formats have tight rows, little-endian samples, and no UYVY, NV21
or BT.601 planar 4:2:0. Each of those has an exact equivalent it does have:

- padded rows (``step`` > a row) -> tight rows (the padding bytes are dropped);
- big-endian samples -> the same values little-endian;
- UYVY (``yuv422``) -> YUY2: the same samples, each 4-byte group reordered;
- NV21 -> NV12 (chroma pairs swapped), I420 -> NV12 (U and V interleaved): same
  BT.601 limited-range samples.

This is the one place pixel bytes are rewritten on the CPU, and only for writing a
file Rerun reads; pixelrun itself draws the message bytes as they are. 16-bit Bayer
has no equivalent: it is written in pixelrun's own form (tight, little-endian,
PixelFormat.BayerXXXX16), which pixelrun shows and Rerun 0.41 does not
(`shown_by_rerun`). Unknown encodings raise `NotShown`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pixelrun.engine.mcap.messages import ImageMessage
from pixelrun.engine.mcap.ros_image import NotShown, ros_encoding_format
from pixelrun.kernels.formats import COLOR_MODELS, DATATYPES, PIXEL_FORMATS, ImageFormat, PixelFormat

__all__ = ["rerun_image", "RERUN_PIXEL_FORMATS", "shown_by_rerun"]

# The pixel formats Rerun 0.41 has (pixelrun's own start at 200).
RERUN_PIXEL_FORMATS = frozenset(pf for pf in PixelFormat if pf.value < 200)


def shown_by_rerun(fmt: ImageFormat) -> bool:
    """Whether Rerun 0.41 has this format (colour models and its own pixel formats)."""
    return fmt.pixel_format is None or fmt.pixel_format in RERUN_PIXEL_FORMATS


def _rows(data: np.ndarray, offset: int, stride: int, row: int, rows: int, what: str) -> np.ndarray:
    """(rows, row) view of rows `stride` bytes apart from `offset`; NotShown when short."""
    need = offset + stride * (rows - 1) + row
    if data.size < need:
        raise NotShown(f"{what} needs {need} bytes, the message has {data.size}")
    return np.lib.stride_tricks.as_strided(data[offset:], shape=(rows, row), strides=(stride, 1))


def rerun_image(msg: ImageMessage) -> tuple[str, ImageFormat, np.ndarray, Optional[float], list[str]]:
    """(kind, format, tight little-endian bytes, meter, transforms applied) for a raw message.

    kind is "image" or "depth" (REP 118, as `ros_image`); the format is one Rerun 0.41
    has; transforms names each lossless change ("padded rows -> tight", ...).
    """
    kind, fmt, meter = ros_encoding_format(msg.encoding, msg.width, msg.height)
    w, h, step = fmt.width, fmt.height, int(msg.step)
    if w <= 0 or h <= 0:
        raise NotShown(f"a {w}x{h} image has no pixels")
    data = np.frombuffer(memoryview(msg.data).cast("B"), np.uint8)
    done: list[str] = []
    if fmt.pixel_format is None:
        size = DATATYPES[fmt.datatype].size
        row = w * COLOR_MODELS[fmt.model].channels * size
        if step < row:
            raise NotShown(f"step {step} is smaller than one row of {fmt.describe()} ({row} bytes)")
        out = _rows(data, 0, step, row, h, fmt.describe())
        if step != row:
            done.append("padded rows -> tight")
        if msg.is_bigendian and size > 1:
            out = out.reshape(h, row // size, size)[..., ::-1]  # each sample's bytes reversed
            done.append("big-endian -> little-endian")
        return kind, fmt, np.ascontiguousarray(out).reshape(-1), meter, done
    info = PIXEL_FORMATS[fmt.pixel_format]
    tight = info.tight_row_bytes(w)
    if step < tight:
        raise NotShown(f"step {step} is smaller than one row of {fmt.describe()} ({tight} bytes)")
    if step != tight:
        done.append("padded rows -> tight")
    src = info.planes(w, h, step if step != tight else None)
    dst = info.planes(w, h)
    planes = [_rows(data, s.offset, s.row_bytes, d.row_bytes, d.rows, f"{fmt.describe()} {s.name} plane")
              for s, d in zip(src, dst)]
    if msg.is_bigendian and info.sample_bytes > 1:
        planes = [p.reshape(p.shape[0], -1, info.sample_bytes)[..., ::-1] for p in planes]
        done.append("big-endian -> little-endian")
    pf = fmt.pixel_format
    if pf == PixelFormat.UYVY:  # U Y0 V Y1 -> Y0 U Y1 V
        planes = [planes[0].reshape(h, -1, 4)[..., [1, 0, 3, 2]]]
        pf = PixelFormat.YUY2
        done.append("UYVY -> YUY2 byte order")
    elif pf == PixelFormat.NV21:  # V U pairs -> U V
        planes = [planes[0], planes[1].reshape(planes[1].shape[0], -1, 2)[..., ::-1]]
        pf = PixelFormat.NV12
        done.append("NV21 -> NV12")
    elif pf == PixelFormat.I420:  # planar U, V -> interleaved UV
        planes = [planes[0], np.stack([planes[1], planes[2]], axis=-1)]
        pf = PixelFormat.NV12
        done.append("I420 -> NV12")
    out = np.concatenate([np.ascontiguousarray(p).reshape(-1) for p in planes])
    return kind, ImageFormat(w, h, pixel_format=pf), out, meter, done

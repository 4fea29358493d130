"""The CUDA backend: raw image bytes -> display RGBA8 with CuPy kernels (contract §2-3).

Same contract as the NumPy reference (`pixelrun.kernels.reference.convert`): bit-exact for
integer channel types of at most 16 bits, within 1 LSB on float paths (formats.py's
precision contract). The kernels are the CUDA C sources in `kernels/cuda/` (shipped as
package data), compiled once per process through `cupy.RawModule` (and cached on disk
by CuPy); nothing about a format is restated in them: plane addresses, matrices,
ranges and Bayer patterns are computed here from `pixelrun.kernels.formats` and passed
as kernel arguments.

Public API:
- `is_available() -> (bool, reason)`: whether CuPy and a CUDA device can be used.
- `to_display_rgba(buffer, fmt, value_range=None) -> (H, W, 4) uint8 numpy array`;
  `buffer` is host bytes (bytes, bytearray, memoryview, uint8 array) or a CUDA array
  (CuPy, or anything with `__cuda_array_interface__`) holding the raw bytes.
- `to_display_rgba_gpu(...)`: the same, but the result stays on the device (CuPy).
- `convert_batch(frames, fmt, value_range=None)` / `convert_batch_gpu(...)`: N frames of
  one format in ONE kernel launch -> (N, H, W, 4). `frames` is a sequence of buffers or
  an (N, nbytes) array, on the host or on the device. Each frame gets its own
  automatic value range (contract §3.1), computed by a batched reduction on the GPU.

How it is built, so the logic can be checked without a GPU: `plan_conversion(xp, ...)`
turns a format plus the frames into `Launch` descriptions (kernel name, grid, block,
typed arguments) using only array-module calls that NumPy and CuPy share (`xp`). The
CuPy path runs those launches on the device; tests/kernels/test_cupy_host_harness.py
runs the very same plans with NumPy arrays through the kernels compiled for the CPU
by g++ (tests/kernels/cuda_host_harness.h), against the NumPy reference.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from pixelrun.kernels.buffers import as_byte_view
from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ImageFormat,
    validate,
)
from pixelrun.kernels.layers import LayerKind
from pixelrun.kernels.reference.convert import (
    check_single_channel,
    uses_integer_formula,
    uses_table,
    value_range_for,
)
from pixelrun.kernels.table_plan import MODE_PALETTE, table_plan

__all__ = [
    "is_available",
    "to_display_rgba",
    "to_display_rgba_gpu",
    "convert_batch",
    "convert_batch_gpu",
    "Launch",
    "plan_conversion",
    "frame_value_ranges",
    "frame_table_ranges",
    "cuda_source",
    "CUDA_DIR",
    "CUDA_SOURCES",
    "kernel",
    "launch",
]

CUDA_DIR = Path(__file__).parent
CUDA_HEADER = "pixelrun_common.cuh"
# Every translation unit of the RawModule, in order; composite.cu serves
# pixelrun.kernels.cuda.composite.
CUDA_SOURCES = ("yuv.cu", "color.cu", "bayer.cu", "composite.cu", "table.cu")

# Threads per block. YUV threads make 4 pixels each (see yuv.cu); 128 threads = 512
# pixels per block keeps a 1080p row in 4 blocks and leaves the scheduler room.
YUV_BLOCK = 128
YUV_PIXELS_PER_THREAD = 4  # must equal PR_YUV_PIXELS_PER_THREAD in yuv.cu
BAYER_BLOCK = 128
COLOR_BLOCK = 256
COLOR_MAX_BLOCKS = 1 << 12  # per frame; a grid-stride loop covers larger frames
MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y (rows of YUV/Bayer images)
MAX_GRID_Z = 65535  # and on gridDim.z (frames of a batch)

# Colour-kernel modes (color.cu): 0 exact integer formula, 1 wide integers with their
# automatic range, 2 float arithmetic.
MODE_EXACT, MODE_WIDE_INT, MODE_FLOAT = 0, 1, 2

_COLOR_KERNELS = {
    ChannelDatatype.U8: "pr_color_u8",
    ChannelDatatype.I8: "pr_color_i8",
    ChannelDatatype.U16: "pr_color_u16",
    ChannelDatatype.I16: "pr_color_i16",
    ChannelDatatype.U32: "pr_color_u32",
    ChannelDatatype.I32: "pr_color_i32",
    ChannelDatatype.U64: "pr_color_u64",
    ChannelDatatype.I64: "pr_color_i64",
    ChannelDatatype.F16: "pr_color_f16",
    ChannelDatatype.F32: "pr_color_f32",
    ChannelDatatype.F64: "pr_color_f64",
}

# table.cu's kernels (depth, colormapped and segmentation images, contract §8)
_TABLE_KERNELS = {dt: name.replace("pr_color_", "pr_table_") for dt, name in _COLOR_KERNELS.items()}

ValueRange = Optional[tuple[float, float]]


# ----------------------------------------------------------------------- availability


@functools.lru_cache(maxsize=1)
def is_available() -> tuple[bool, str]:
    """(True, "") when CuPy imports and sees a CUDA device; else (False, why not)."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        return False, (
            f"CuPy is not installed ({exc}); install pixelrun[cuda12] or pixelrun[cuda13] "
            "on a machine with an NVIDIA GPU"
        )
    except Exception as exc:  # a broken CUDA installation can raise anything on import
        return False, f"CuPy failed to import: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device, ...
        return False, f"no CUDA device or driver usable by CuPy: {exc}"
    if count < 1:
        return False, "no CUDA device: the CUDA runtime reports 0 devices"
    return True, ""


def _cupy():
    ok, reason = is_available()
    if not ok:
        raise RuntimeError(f"the CuPy backend cannot run here: {reason}")
    import cupy  # noqa: PLC0415 - optional dependency, present once is_available() said so

    return cupy


# ------------------------------------------------------------------- module loading


def cuda_source() -> str:
    """All kernels as one translation unit: the shared header once, then every .cu.

    The sources are joined here rather than with NVRTC include paths so that CuPy's
    compile cache keys on the full text: editing the header recompiles.
    """
    # the header's include guard means nothing in a single main file (and warns)
    header = (CUDA_DIR / CUDA_HEADER).read_text().replace("#pragma once", "// (#pragma once)")
    parts = [f"// ---- {CUDA_HEADER}\n{header}"]
    include = f'#include "{CUDA_HEADER}"'
    for name in CUDA_SOURCES:
        text = (CUDA_DIR / name).read_text().replace(include, "// (header included above)")
        parts.append(f"// ---- {name}\n{text}")
    return "\n".join(parts)


@functools.lru_cache(maxsize=1)
def _raw_module():
    cupy = _cupy()
    # No -std option: CuPy and NVRTC pick their own (C++17 today); the sources only
    # need C++11, which test_cuda_ptx.py checks with nvcc --std=c++14.
    return cupy.RawModule(code=cuda_source())


@functools.lru_cache(maxsize=None)
def kernel(name: str):
    """The compiled kernel `name` (compiled on first use, then cached)."""
    return _raw_module().get_function(name)


# ------------------------------------------------------------------------ launch plans


@dataclass(frozen=True)
class Launch:
    """One kernel launch: name, grid and block (x, y, z) and typed arguments.

    Arguments are arrays of the planning array module (NumPy or CuPy) or NumPy
    scalars whose type fixes the C type: np.int32 int, np.int64 long long,
    np.float32 float, np.float64 double.
    """

    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    args: tuple[Any, ...]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _i32(v) -> np.int32:
    return np.int32(v)


def _check_value_range(value_range) -> tuple[Any, Any]:
    """The reference's rule: a pair of finite numbers with lo < hi, else ValueError."""
    try:
        lo, hi = value_range
        flo, fhi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (lo, hi) of numbers, got {value_range!r}") from None
    if not (math.isfinite(flo) and math.isfinite(fhi) and flo < fhi):
        raise ValueError(f"value_range must be finite with lo < hi, got {value_range!r}")
    return lo, hi


def frame_value_ranges(xp, src, fmt: ImageFormat, value_range: ValueRange = None) -> dict:
    """Per-frame range parameters of color.cu for (N, nbytes) frames of a colour format.

    Returns {"mode": int, "lo_d", "lo_i", "span_i", "inv", "t0": arrays of length N}.
    The automatic range (contract §3.1) is one batched reduction over every frame at once
    (min/max of the finite colour samples, alpha excluded), then the rule applied with
    `where`, so nothing leaves the device. Padded rows and big-endian samples are
    gathered tight first (`_tight_samples`).
    """
    if fmt.row_stride is not None or fmt.big_endian:
        src, fmt = _tight_samples(xp, src, fmt)
    info = DATATYPES[fmt.datatype]
    model = COLOR_MODELS[fmt.model]
    n = int(src.shape[0])

    def full(value, dtype):
        return xp.full((n,), value, dtype=dtype)

    if value_range is not None:
        lo, hi = _check_value_range(value_range)
        if uses_integer_formula(fmt.datatype, (lo, hi)):
            ilo, ihi = int(lo), int(hi)
            return dict(mode=MODE_EXACT, lo_d=full(ilo, np.float64), lo_i=full(ilo, np.int64),
                        span_i=full(ihi - ilo, np.int64), inv=full(1.0 / (ihi - ilo), np.float64),
                        t0=full(0.0, np.float32))
        # MODE_FLOAT works on halved values so hi - lo cannot overflow (color.cu)
        flo, fhi = float(lo) * 0.5, float(hi) * 0.5
        return dict(mode=MODE_FLOAT, lo_d=full(flo, np.float64), lo_i=full(0, np.int64),
                    span_i=full(0, np.int64), inv=full(1.0 / (fhi - flo), np.float64),
                    t0=full(0.0, np.float32))

    if fmt.datatype == ChannelDatatype.U8:  # contract §3.1: always [0, 255]
        return dict(mode=MODE_EXACT, lo_d=full(0.0, np.float64), lo_i=full(0, np.int64),
                    span_i=full(255, np.int64), inv=full(1.0 / 255.0, np.float64),
                    t0=full(0.0, np.float32))

    # Colour channels, alpha excluded: in every model they are channels 0..k-1.
    colour = sorted(set(model.rgb_index))
    assert colour == list(range(len(colour))), "colour channels must lead the pixel"
    samples = src.view(info.numpy).reshape(n, -1, model.channels)[:, :, : len(colour)]

    if info.is_float:
        finite = xp.isfinite(samples)
        mn = xp.where(finite, samples, np.inf).min(axis=(1, 2)).astype(np.float64)
        mx = xp.where(finite, samples, -np.inf).max(axis=(1, 2)).astype(np.float64)
        any_finite = finite.any(axis=(1, 2))
        unit = any_finite & (mn >= 0.0) & (mx <= 1.0)
        byte = any_finite & ~unit & (mn >= 0.0) & (mx <= 255.0)
        equal = any_finite & ~unit & ~byte & (mn == mx)
        lo = xp.where(any_finite & ~unit & ~byte, xp.where(equal, mn - 1.0, mn), 0.0)
        hi = xp.where(~any_finite | unit, 1.0, xp.where(byte, 255.0, xp.where(equal, mx + 1.0, mx)))
        # MODE_FLOAT works on halved values so hi - lo cannot overflow (color.cu)
        lo, hi = lo * 0.5, hi * 0.5
        span = hi - lo
        # hi == lo can only come from min == max beyond float64's reach; the
        # reference then computes 0/0 and shows 0, and inf * 0 does the same here.
        inv = xp.where(span > 0, 1.0 / xp.where(span > 0, span, 1.0), np.inf)
        return dict(mode=MODE_FLOAT, lo_d=lo, lo_i=full(0, np.int64), span_i=full(0, np.int64),
                    inv=inv, t0=full(0.0, np.float32))

    mn = samples.min(axis=(1, 2))
    mx = samples.max(axis=(1, 2))
    in_byte = (mn >= 0) & (mx <= 255)
    equal = ~in_byte & (mn == mx)
    if info.size <= 2:
        # Exact formula: every bound (even min - 1 / max + 1) fits int64.
        mn64, mx64 = mn.astype(np.int64), mx.astype(np.int64)
        lo = xp.where(in_byte, 0, xp.where(equal, mn64 - 1, mn64))
        span = xp.where(in_byte, 255, xp.where(equal, 2, mx64 - mn64))
        return dict(mode=MODE_EXACT, lo_d=lo.astype(np.float64), lo_i=lo, span_i=span,
                    inv=1.0 / span.astype(np.float64), t0=full(0.0, np.float32))

    # 32/64-bit integers: min - 1 and max + 1 may not exist in the type, so the
    # constant image is handled as t = (v - min) / 2 + 1/2, which is the same number.
    lo_native = xp.where(in_byte, 0, mn).astype(info.numpy)
    lo_i = lo_native.view(np.int64) if info.numpy.itemsize == 8 else lo_native.astype(np.int64)
    diff = mx.astype(np.uint64) - mn.astype(np.uint64)  # exact modulo 2^64
    span_f = diff.astype(np.float64)
    inv = xp.where(in_byte, 1.0 / 255.0, xp.where(equal, 0.5, 1.0 / xp.where(span_f > 0, span_f, 1.0)))
    t0 = xp.where(equal, 0.5, 0.0).astype(np.float32)
    return dict(mode=MODE_WIDE_INT, lo_d=lo_native.astype(np.float64), lo_i=lo_i,
                span_i=full(0, np.int64), inv=inv, t0=t0)


def _plan_yuv(src, dst, fmt: ImageFormat) -> list[Launch]:
    info = PIXEL_FORMATS[fmt.pixel_format]
    w, h = fmt.width, fmt.height
    layout = fmt.yuv_layout()
    m, r = info.matrix, info.range
    no_chroma = (0, 0, 0, 0, 0)
    u = layout.u.as_tuple() if layout.u is not None else no_chroma
    v = layout.v.as_tuple() if layout.v is not None else no_chroma
    # The matrix and range folded into five float32 factors (host float64 first).
    coeffs = (
        np.float32(r.y_offset),
        np.float32(1.0 / r.y_scale),
        np.float32(m.rv / r.c_scale),
        np.float32(m.gu / r.c_scale),
        np.float32(m.gv / r.c_scale),
        np.float32(m.bu / r.c_scale),
    )
    gx = _cdiv(_cdiv(w, YUV_PIXELS_PER_THREAD), YUV_BLOCK)
    out = []
    for a, b in _frame_chunks(src.shape[0]):
        args = (
            src[a:b], dst[a:b], _i32(w), _i32(h), np.int64(src.shape[1]),
            *map(_i32, layout.y.as_tuple()), *map(_i32, u), *map(_i32, v),
            _i32(layout.u is not None), *coeffs,
        )
        out.append(Launch("pr_yuv_to_rgba", (gx, h, b - a), (YUV_BLOCK, 1, 1), args))
    return out


def _bayer_tile(fmt: ImageFormat) -> tuple[int, int, int, int]:
    """Colour index (0 R, 1 G, 2 B) of tile positions (0,0), (1,0), (0,1), (1,1)."""
    tile = [0, 0, 0, 0]
    for index, colour in enumerate("RGB"):
        for tx, ty in PIXEL_FORMATS[fmt.pixel_format].bayer_offsets()[colour]:
            tile[tx + 2 * ty] = index
    return tuple(tile)


def _plan_bayer(src, dst, fmt: ImageFormat) -> list[Launch]:
    w, h = fmt.width, fmt.height
    gx = _cdiv(w, BAYER_BLOCK)
    out = []
    for a, b in _frame_chunks(src.shape[0]):
        (plane,) = PIXEL_FORMATS[fmt.pixel_format].planes(w, h, fmt.row_stride)
        args = (src[a:b], dst[a:b], _i32(w), _i32(h), np.int64(src.shape[1]), *map(_i32, _bayer_tile(fmt)),
                _i32(plane.row_bytes), _i32(PIXEL_FORMATS[fmt.pixel_format].sample_bytes))
        out.append(Launch("pr_bayer_to_rgba", (gx, h, b - a), (BAYER_BLOCK, 1, 1), args))
    return out


def _plan_color(xp, src, dst, fmt: ImageFormat, value_range: ValueRange) -> list[Launch]:
    info = DATATYPES[fmt.datatype]
    model = COLOR_MODELS[fmt.model]
    rp = frame_value_ranges(xp, src, fmt, value_range)
    pixels = fmt.num_pixels
    gx = max(1, min(_cdiv(pixels, COLOR_BLOCK), COLOR_MAX_BLOCKS))
    out = []
    for a, b in _frame_chunks(src.shape[0], MAX_GRID_Y):  # frames ride on gridDim.y here
        args = (
            src[a:b], dst[a:b], np.int64(pixels), _i32(model.channels),
            *map(_i32, model.rgb_index), _i32(model.alpha_index), _i32(rp["mode"]),
            rp["lo_d"][a:b], rp["lo_i"][a:b], rp["span_i"][a:b], rp["inv"][a:b], rp["t0"][a:b],
            np.float64(info.max_value),
        )
        out.append(Launch(_COLOR_KERNELS[fmt.datatype], (gx, b - a, 1), (COLOR_BLOCK, 1, 1), args))
    return out


def frame_table_ranges(xp, src, fmt: ImageFormat, kind: str, value_range: ValueRange) -> list:
    """Each frame's resolved range for a depth or colormapped image (the reference's
    `table_range`, per frame): an explicit range as given; a depth image's default
    [0, largest finite sample] from one batched reduction on the device (only N numbers
    come back); a colormapped Image's contract §3.1 range, computed on the host."""
    n = int(src.shape[0])
    if value_range is not None:
        return [_check_value_range(value_range)] * n
    info = DATATYPES[fmt.datatype]
    samples = src.view(info.numpy).reshape(n, -1)
    if kind != LayerKind.DEPTH:
        host = samples.get() if hasattr(samples, "get") else np.asarray(samples)
        return [value_range_for(host[i], fmt.datatype) for i in range(n)]
    if info.is_float:
        finite = xp.isfinite(samples)
        mx = xp.where(finite, samples, -np.inf).max(axis=1).astype(np.float64)
        hi = xp.where(finite.any(axis=1), mx, float(np.finfo(info.numpy).max))
        his = [float(v) for v in (hi.get() if hasattr(hi, "get") else hi).tolist()]
    else:
        mx = samples.max(axis=1)
        his = [int(v) for v in (mx.get() if hasattr(mx, "get") else mx).tolist()]
    return [(0, hi) if hi > 0 else None for hi in his]


def _plan_table(xp, src, dst, fmt: ImageFormat, kind: str, value_range: ValueRange,
                colormap: Optional[int], class_colors) -> list[Launch]:
    """Launches of table.cu for depth, colormapped and segmentation frames (contract §8)."""
    check_single_channel(fmt, kind)
    n = int(src.shape[0])
    if kind == LayerKind.SEGMENTATION:
        ranges = [None] * n
    else:
        ranges = frame_table_ranges(xp, src, fmt, kind, value_range)
    distinct = {r: None for r in ranges}  # in order, each range planned once
    for r in distinct:
        distinct[r] = table_plan(fmt, kind, r, colormap, class_colors)
    plans = [distinct[r] for r in ranges]
    first = plans[0]
    if first.mode == MODE_PALETTE and len(distinct) > 1:  # palettes differ per frame
        table = xp.asarray(np.stack([p.words for p in plans]))
        stride = first.words.size
    else:
        table = xp.asarray(first.words)
        stride = 0
    lo = xp.asarray(np.array([p.lo for p in plans], np.float32))
    inv = xp.asarray(np.array([p.inv_span for p in plans], np.float32))
    pixels = fmt.num_pixels
    gx = max(1, min(_cdiv(pixels, COLOR_BLOCK), COLOR_MAX_BLOCKS))
    out = []
    for a, b in _frame_chunks(n, MAX_GRID_Y):  # frames ride on gridDim.y, as for colour
        args = (
            src[a:b], dst[a:b], np.int64(src.shape[1]), np.int64(pixels), _i32(first.mode),
            table[a * stride:] if stride else table, np.int64(stride), _i32(first.n), _i32(first.first),
            lo[a:b], inv[a:b],
        )
        out.append(Launch(_TABLE_KERNELS[fmt.datatype], (gx, b - a, 1), (COLOR_BLOCK, 1, 1), args))
    return out


def _frame_chunks(n: int, limit: Optional[int] = None):
    """Frame ranges of at most `limit` frames (default MAX_GRID_Z: frames on gridDim.z)."""
    limit = MAX_GRID_Z if limit is None else limit
    for a in range(0, n, limit):
        yield a, min(n, a + limit)


def plan_conversion(
    xp,
    src,
    dst,
    fmt: ImageFormat,
    value_range: ValueRange = None,
    *,
    kind: str = LayerKind.IMAGE,
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> list[Launch]:
    """Launches converting src (N, nbytes) uint8 frames into dst (N, H, W, 4) uint8.

    `xp` is the array module of src and dst (numpy or cupy); both must be
    C-contiguous, src 8-byte aligned (colour samples are read as their own type).
    value_range is ignored for pixel formats, like the reference. kind, colormap,
    class_colors: as the reference's `to_display_rgba` (contract §8).
    """
    if fmt.pixel_format is None and (fmt.row_stride is not None or fmt.big_endian):
        src, fmt = _tight_samples(xp, src, fmt)
    if uses_table(fmt, kind, colormap):
        return _plan_table(xp, src, dst, fmt, kind, value_range, colormap, class_colors)
    if fmt.height > MAX_GRID_Y and fmt.is_pixel_format:
        raise ValueError(f"{fmt.describe()}: the CUDA backend handles at most {MAX_GRID_Y} rows")
    if fmt.is_pixel_format and fmt.byte_count() >= 1 << 31:
        # plane offsets are 32-bit kernel arguments
        raise ValueError(f"{fmt.describe()}: the CUDA backend handles frames below 2 GiB")
    if fmt.pixel_format is None:
        return _plan_color(xp, src, dst, fmt, value_range)
    if PIXEL_FORMATS[fmt.pixel_format].is_bayer:
        return _plan_bayer(src, dst, fmt)
    return _plan_yuv(src, dst, fmt)


def _tight_samples(xp, src, fmt: ImageFormat):
    """Colour frames with padded rows or big-endian samples as tight little-endian frames,
    gathered on the device (one strided copy, with the byte swap, by `xp`): the colour and
    table kernels and the range reductions address samples by their type. Pixel formats
    never come here (their kernels take the stride themselves)."""
    n, h = src.shape[0], fmt.height
    size = DATATYPES[fmt.datatype].size
    row = fmt.tight_row_bytes()
    stride = fmt.row_stride if fmt.row_stride is not None else row
    rows = src[:, : stride * h].reshape(n, h, stride)[:, :, :row]
    if fmt.big_endian and size > 1:
        rows = rows.reshape(n, h, row // size, size)[..., ::-1]
    tight = xp.ascontiguousarray(rows).reshape(n, h * row)
    return tight, dataclasses.replace(fmt, row_stride=None, big_endian=False)


def launch(plan: Sequence[Launch]) -> None:
    """Run launches on the current CuPy stream."""
    for item in plan:
        kernel(item.kernel)(item.grid, item.block, item.args)


# ------------------------------------------------------------------------ input handling

Buffer = Union[bytes, bytearray, memoryview, np.ndarray, Any]


def _is_device_array(obj) -> bool:
    return hasattr(obj, "__cuda_array_interface__")


def _host_bytes_view(buffer) -> np.ndarray:
    return as_byte_view(buffer, "bytes, bytearray, memoryview, a uint8 array or a CUDA array")


def _device_bytes(cupy, obj):
    """A C-contiguous uint8 CuPy view (or aligned copy) of a CUDA array's raw bytes.

    Any dtype is accepted and read as its bytes: the raw buffer of an image that
    already lives on the GPU (e.g. a camera's NV12 frame) needs no host detour.
    """
    arr = cupy.asarray(obj)
    if not arr.flags.c_contiguous:
        arr = cupy.ascontiguousarray(arr)
    arr = arr.reshape(-1).view(cupy.uint8)
    if arr.data.ptr % 8:  # colour samples are read as their own type: keep them aligned
        arr = arr.copy()
    return arr


def _check_frames(lengths: Sequence[int], fmt: ImageFormat, batch: bool) -> None:
    for i, length in enumerate(lengths):
        msg = validate(length, fmt)
        if msg is not None:
            raise ValueError(f"frame {i}: {msg}" if batch else msg)


def _frames_on_device(cupy, frames, fmt: ImageFormat):
    """(N, nbytes) uint8 CuPy array from a batch on the host or on the device."""
    nbytes = fmt.byte_count()
    if _is_device_array(frames):
        arr = _device_bytes(cupy, frames)
        if nbytes == 0:
            _check_frames([arr.size], fmt, batch=False)  # raises with validate's message
        if arr.size == 0 or arr.size % nbytes:
            raise ValueError(
                f"{fmt.describe()}: a batch of {arr.size} bytes is not a whole number of "
                f"frames of {nbytes} bytes ({validate(arr.size % nbytes or arr.size, fmt)})"
            )
        return arr.reshape(-1, nbytes)
    if isinstance(frames, np.ndarray) and frames.ndim >= 2:
        host = np.ascontiguousarray(frames).reshape(frames.shape[0], -1).view(np.uint8)
        _check_frames([host.shape[1]] * host.shape[0], fmt, batch=True)
        return cupy.asarray(host)
    frames = list(frames)
    if not frames:
        raise ValueError("convert_batch needs at least one frame")
    if any(_is_device_array(f) for f in frames):
        # device frames stay there; host ones in a mixed batch (e.g. frames a GPU decoder
        # fell back on the CPU for) are uploaded one by one
        parts = [_device_bytes(cupy, f) if _is_device_array(f) else _host_bytes_view(f) for f in frames]
        _check_frames([p.size for p in parts], fmt, batch=True)
        return cupy.stack([p if _is_device_array(p) else cupy.asarray(p) for p in parts])
    host = [_host_bytes_view(f) for f in frames]
    _check_frames([h.size for h in host], fmt, batch=True)
    # One pinned staging buffer and one copy for the whole batch.
    import cupyx  # noqa: PLC0415 - optional dependency (ships with cupy), needed only for host frames

    staging = cupyx.empty_pinned((len(host), nbytes), dtype=np.uint8)
    for i, h in enumerate(host):
        staging[i] = h
    dev = cupy.empty((len(host), nbytes), dtype=cupy.uint8)
    dev.set(staging)
    # The pinned staging buffer goes back to CuPy's pool when this function returns;
    # wait for the (asynchronous) upload first so the pool cannot hand it out mid-copy.
    cupy.cuda.get_current_stream().synchronize()
    return dev


def _convert_device(cupy, src, fmt: ImageFormat, value_range: ValueRange, table_args: dict):
    dst = cupy.empty((src.shape[0], fmt.height, fmt.width, 4), dtype=cupy.uint8)
    launch(plan_conversion(cupy, src, dst, fmt, value_range, **table_args))
    return dst


# ------------------------------------------------------------------------------ entry


def to_display_rgba_gpu(buffer: Buffer, fmt: ImageFormat, value_range: ValueRange = None, **table_args):
    """Decode one image's raw bytes on the GPU; the (H, W, 4) uint8 result is a CuPy array.

    buffer: host bytes or a CUDA array holding exactly `fmt.byte_count()` bytes.
    table_args: kind, colormap, class_colors, as the reference's (contract §8).
    Raises ValueError with formats.validate's message on a wrong byte count.
    """
    cupy = _cupy()
    if _is_device_array(buffer):
        src = _device_bytes(cupy, buffer)
        _check_frames([src.size], fmt, batch=False)
    else:
        host = _host_bytes_view(buffer)
        _check_frames([host.size], fmt, batch=False)
        src = cupy.asarray(host)
    return _convert_device(cupy, src.reshape(1, -1), fmt, value_range, table_args)[0]


def to_display_rgba(
    buffer: Buffer,
    fmt: ImageFormat,
    value_range: ValueRange = None,
    *,
    kind: str = LayerKind.IMAGE,
    colormap: Optional[int] = None,
    class_colors: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Decode one image's raw bytes on the GPU and return the (H, W, 4) uint8 NumPy array.
    kind, colormap, class_colors: as the reference's (contract §8)."""
    return to_display_rgba_gpu(buffer, fmt, value_range, kind=kind, colormap=colormap,
                               class_colors=class_colors).get()


def convert_batch_gpu(frames, fmt: ImageFormat, value_range: ValueRange = None, **table_args):
    """N frames of one format -> (N, H, W, 4) uint8 CuPy array, in one kernel launch.

    frames: a sequence of buffers (host bytes or CUDA arrays), or an (N, nbytes)
    array on the host or the device. value_range, when given, applies to every frame;
    otherwise each frame gets its own automatic range (contract §3.1; depth: §8).
    table_args: kind, colormap, class_colors, as the reference's (contract §8).
    Raises ValueError naming the frame whose byte count is wrong.
    """
    cupy = _cupy()
    src = _frames_on_device(cupy, frames, fmt)
    return _convert_device(cupy, src, fmt, value_range, table_args)


def convert_batch(frames, fmt: ImageFormat, value_range: ValueRange = None, **table_args) -> np.ndarray:
    """`convert_batch_gpu` with the (N, H, W, 4) result copied back to a NumPy array."""
    return convert_batch_gpu(frames, fmt, value_range, **table_args).get()

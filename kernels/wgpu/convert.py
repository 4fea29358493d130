"""WGSL conversion on a wgpu device: raw image bytes -> display RGBA8 textures (contract §2-3).

The raw bytes are uploaded once, as they are, into a storage buffer (padded only at
the end to a multiple of 4 bytes, because WGSL storage buffers are arrays of u32);
compute shaders in ``kernels/wgpu/shaders/`` read every sample by byte address and write packed
RGBA8 words (R in the low byte) into a storage buffer, several pixels per invocation, rows
padded to 256 bytes; ``copy_buffer_to_texture`` then puts them into an ``rgba8unorm``
texture (on CPU drivers such as lavapipe this is much faster than storage-texture writes).
RGB is never padded, F16 and the 64-bit types are decoded on the device. When contract §3.1's
value range needs min/max, two reduction passes on the device compute it and write the
range into a small storage buffer the decode pass reads, so the whole conversion is one
submission with no CPU round trip.

Images larger than the device's maximum texture size are decoded into several tiles
(``DecodedTile``), each a texture of at most ``max_tile`` texels per side; a tile whose
output buffer would exceed the storage binding limit is decoded in bands of rows.

This module takes a ``wgpu.GPUDevice`` as an argument and never chooses one (that is
``pixelrun.kernels.wgpu.device``'s job); pipelines and bind-group layouts are built once per
device and cached (``converter_for(device)``).

Typical use::

    conv = converter_for(device)
    raw = conv.upload(buffer)                 # GPUBuffer holding the raw bytes
    tiles = conv.decode(raw, fmt)             # list[DecodedTile], submitted
    rgba = conv.read_tiles(tiles, fmt.width, fmt.height)   # (H, W, 4) uint8
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import wgpu

from pixelrun.kernels.buffers import as_byte_view
from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ImageFormat,
    SampleAddress,
    check,
)
from pixelrun.kernels.layers import LayerKind
from pixelrun.kernels.reference import convert as reference
from pixelrun.kernels.table_plan import TablePlan, plan_for
from pixelrun.kernels.wgpu.layouts import BAYER_PARAMS, COLOR_PARAMS, RANGE, TABLE_PARAMS, YUV_PARAMS
from pixelrun.kernels.wgpu.wgsl import load_wgsl

__all__ = [
    "DecodedTile",
    "WgslConverter",
    "converter_for",
    "load_wgsl",
    "tile_grid",
    "read_texture",
    "wait_idle",
]

ValueRange = Optional[tuple[float, float]]

# Mirrors color.wgsl's MODE_* constants.
_MODE_EXACT_INT, _MODE_INT64_DIFF, _MODE_FLOAT, _MODE_THRESHOLDS = 0, 1, 2, 3
_MODE_ON_DEVICE = 255  # color.wgsl's MODE constant when only the reduction knows the mode

_REDUCE_WG = 256  # color.wgsl's workgroup size for the reduction
_MAX_PARTIALS = 1024  # reduction workgroups: enough parallelism, small final pass
# On CPU adapters (lavapipe, llvmpipe) each workgroup's barriers are costly and a few
# cores are all the parallelism there is: far fewer, longer-running workgroups are faster.
_MAX_PARTIALS_CPU = 64
_DECODE_WG = (16, 4)  # decode workgroup size (x, y), as in the shaders' @workgroup_size
# Pixels per decode invocation, along x (each shader's PX; a divisor of 64, the row stride
# in words being a multiple of 64, so an invocation never writes past its row).
_DECODE_PX = {"color.wgsl": 4, "yuv.wgsl": 8, "bayer.wgsl": 4, "table.wgsl": 4}
_ROW_ALIGN = 256  # copy_buffer_to_texture's bytes_per_row alignment
_RANGE_BYTES = RANGE.size  # color.wgsl's Range struct

# a decoded tile's texture (written by copies, sampled by the composite, read back)
TEXTURE_USAGE = wgpu.TextureUsage.COPY_DST | wgpu.TextureUsage.TEXTURE_BINDING | wgpu.TextureUsage.COPY_SRC


@dataclass
class DecodedTile:
    """One texture holding the display RGBA8 of the image rectangle at (x0, y0)."""

    x0: int
    y0: int
    width: int
    height: int
    texture: "wgpu.GPUTexture"

    @property
    def nbytes(self) -> int:
        return self.width * self.height * 4


def tile_grid(width: int, height: int, max_tile: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, w, h) rectangles of at most max_tile per side covering a W x H image."""
    return [
        (x0, y0, min(max_tile, width - x0), min(max_tile, height - y0))
        for y0 in range(0, height, max_tile)
        for x0 in range(0, width, max_tile)
    ]


def _checked_range(value_range) -> tuple:
    """An explicit (lo, hi): finite numbers with lo < hi (the reference's rule), as given."""
    try:
        lo, hi = value_range
        ok = math.isfinite(float(lo)) and math.isfinite(float(hi)) and float(lo) < float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (lo, hi) of numbers, got {value_range!r}") from None
    if not ok:
        raise ValueError(f"value_range must be finite with lo < hi, got {value_range!r}")
    return lo, hi


def wait_idle(device) -> None:
    """Block until all work submitted to the device's queue so far has run.

    A 4-byte copy submitted last and then mapped: the queue runs submissions in order,
    so the map completing means everything before it finished (wgpu-py's
    on_submitted_work_done_sync is not usable with every wgpu-native build).
    """
    src = device.create_buffer(size=4, usage=wgpu.BufferUsage.COPY_SRC)
    dst = device.create_buffer(size=4, usage=wgpu.BufferUsage.COPY_DST | wgpu.BufferUsage.MAP_READ)
    enc = device.create_command_encoder()
    enc.copy_buffer_to_buffer(src, 0, dst, 0, 4)
    device.queue.submit([enc.finish()])
    dst.map_sync(wgpu.MapMode.READ)
    dst.unmap()
    src.destroy()
    dst.destroy()


def read_texture(device, texture, width: int, height: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Copy an rgba8 texture back to the CPU, honouring the 256-byte row alignment.

    With ``out`` (a (height, width, 4) uint8 view, e.g. a tile's place in a larger
    image) the pixels are written there directly: one copy out of the mapped buffer.
    """
    row = width * 4
    padded = (row + 255) // 256 * 256
    usage = wgpu.BufferUsage.COPY_DST | wgpu.BufferUsage.MAP_READ
    buf = device.create_buffer(size=padded * height, usage=usage)
    enc = device.create_command_encoder()
    enc.copy_texture_to_buffer(
        {"texture": texture},
        {"buffer": buf, "offset": 0, "bytes_per_row": padded, "rows_per_image": height},
        (width, height, 1),
    )
    device.queue.submit([enc.finish()])
    buf.map_sync(wgpu.MapMode.READ)
    try:
        data = np.frombuffer(buf.read_mapped(), dtype=np.uint8).reshape(height, padded)
        pixels = data[:, :row].reshape(height, width, 4)
        if out is None:
            out = pixels.copy()
        else:
            out[...] = pixels
    finally:
        buf.unmap()
        buf.destroy()
    return out


class WgslConverter:
    """Pipelines, layouts and helpers for one device; get it with ``converter_for``."""

    def __init__(self, device: "wgpu.GPUDevice") -> None:
        self.device = device
        self.max_texture_dim = int(device.limits["max-texture-dimension-2d"])
        self.max_binding = int(device.limits["max-storage-buffer-binding-size"])
        self.max_buffer = int(device.limits["max-buffer-size"])
        info = getattr(device, "adapter_info", None) or device.adapter.info
        self.max_partials = _MAX_PARTIALS_CPU if info.get("adapter_type") == "CPU" else _MAX_PARTIALS
        S = wgpu.ShaderStage.COMPUTE
        buf = wgpu.BufferBindingType
        # One bind-group layout for every conversion shader: bindings a shader does not
        # use are still bound (cheap), so all pipelines share it.
        self.layout = device.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": S, "buffer": {"type": buf.uniform}},
                {"binding": 1, "visibility": S, "buffer": {"type": buf.read_only_storage}},
                {"binding": 2, "visibility": S, "buffer": {"type": buf.storage}},
                {"binding": 3, "visibility": S, "buffer": {"type": buf.storage}},
                {"binding": 4, "visibility": S, "buffer": {"type": buf.storage}},
            ]
        )
        self.pipeline_layout = device.create_pipeline_layout(bind_group_layouts=[self.layout])
        self._modules = {
            name: device.create_shader_module(label=name, code=load_wgsl(name))
            for name in ("color.wgsl", "yuv.wgsl", "bayer.wgsl", "table.wgsl")
        }
        self._pipelines: dict[tuple, "wgpu.GPUComputePipeline"] = {}
        # A range buffer and a 16-byte partials buffer for shaders that ignore them.
        self._dummy_range = device.create_buffer(size=_RANGE_BYTES, usage=wgpu.BufferUsage.STORAGE)
        self._dummy_partials = device.create_buffer(size=16, usage=wgpu.BufferUsage.STORAGE)

    # ----------------------------------------------------------------- pipelines

    def _pipeline(self, module: str, entry: str, constants: Optional[dict] = None):
        key = (module, entry, tuple(sorted((constants or {}).items())))
        pipe = self._pipelines.get(key)
        if pipe is None:
            compute = {"module": self._modules[module], "entry_point": entry}
            if constants:
                compute["constants"] = dict(constants)
            pipe = self.device.create_compute_pipeline(
                label=f"{module}:{entry}", layout=self.pipeline_layout, compute=compute
            )
            self._pipelines[key] = pipe
        return pipe

    @staticmethod
    def _color_constants(fmt: ImageFormat) -> dict:
        model = COLOR_MODELS[fmt.model]
        info = DATATYPES[fmt.datatype]
        ncolor = len(set(model.rgb_index))
        assert set(model.rgb_index) == set(range(ncolor)), "colour channels must come first"
        return {
            "DT_BYTES": info.size,
            "DT_KIND": 2 if info.is_float else (1 if info.is_signed else 0),
            "CHANNELS": model.channels,
            "NCOLOR": ncolor,
            "RI": model.rgb_index[0],
            "GI": model.rgb_index[1],
            "BI": model.rgb_index[2],
            "AI": model.alpha_index,
            **WgslConverter._layout_constants(fmt),
        }

    @staticmethod
    def _layout_constants(fmt: ImageFormat) -> dict:
        """samples.wgsl's ROW_STRIDE / BIG_ENDIAN, only when the format has them (so a
        tight little-endian image keeps its one pipeline)."""
        out = {}
        if fmt.row_stride is not None:
            out["ROW_STRIDE"] = fmt.row_stride
        if fmt.big_endian:
            out["BIG_ENDIAN"] = 1
        return out

    # ----------------------------------------------------------------- upload

    def upload(self, buffer, fmt: Optional[ImageFormat] = None, *, entity: Optional[str] = None):
        """Put the raw bytes, as they are, into a new storage buffer (one copy, no conversion).

        With ``fmt`` the byte count is checked first (formats.check's message, prefixed by
        the entity). The buffer is padded at its end to a multiple of 4 bytes.
        """
        data = as_byte_view(buffer)
        if fmt is not None:
            check(data.size, fmt, entity)
        size = max(4, (data.size + 3) // 4 * 4)
        if size > self.max_binding:
            what = f"{entity}: " if entity else ""
            desc = fmt.describe() if fmt is not None else "image"
            raise ValueError(
                f"{what}{desc} has {data.size} bytes, more than this device can bind in one "
                f"storage buffer ({self.max_binding} bytes, limit max-storage-buffer-binding-size)"
            )
        gbuf = self.device.create_buffer(
            size=size, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_DST
        )
        body = data.size // 4 * 4
        if body:
            self.device.queue.write_buffer(gbuf, 0, data[:body])
        if body != data.size:  # the last 1-3 bytes, padded with zeros
            tail = np.zeros(4, dtype=np.uint8)
            tail[: data.size - body] = data[body:]
            self.device.queue.write_buffer(gbuf, body, tail)
        return gbuf

    # ----------------------------------------------------------------- params

    @staticmethod
    def _tile_fields(fmt: ImageFormat, rect) -> dict:
        """The fields every decode Params starts with (layouts._TILE_FIELDS)."""
        x0, y0, tw, th = rect
        return {"width": fmt.width, "height": fmt.height, "x0": x0, "y0": y0, "tw": tw, "th": th}

    @staticmethod
    def _row_stride(width: int) -> int:
        """Bytes per row of a decode output buffer (copy_buffer_to_texture's alignment)."""
        return (width * 4 + _ROW_ALIGN - 1) // _ROW_ALIGN * _ROW_ALIGN

    def _bands(self, rect) -> list[tuple[int, int, int, int]]:
        """A tile's rectangle cut into bands of rows whose output buffer can be bound."""
        x0, y0, tw, th = rect
        stride = self._row_stride(tw)
        rows = max(1, min(self.max_binding, self.max_buffer) // stride)
        return [(x0, y0 + by, tw, min(rows, th - by)) for by in range(0, th, rows)]

    def _color_params(self, fmt: ImageFormat, rect, n_partials: int, thresholds) -> np.ndarray:
        info = DATATYPES[fmt.datatype]
        words = COLOR_PARAMS.pack(
            **self._tile_fields(fmt, rect),
            n_partials=n_partials,
            alpha_max_u=int(info.max_value) if not info.is_float and info.size <= 2 else 1,
            alpha_max_f=info.max_value,
        )
        if thresholds is not None:
            COLOR_PARAMS.pack_into(words, thresholds=thresholds)
        return words

    @staticmethod
    def _yuv_params(fmt: ImageFormat, rect) -> np.ndarray:
        info = PIXEL_FORMATS[fmt.pixel_format]
        layout = fmt.yuv_layout()
        r, m = info.range, info.matrix
        zero = SampleAddress(0, 0, 0, 0, 0)

        def addr(a: SampleAddress) -> dict:
            return dict(zip(("offset", "row_bytes", "step", "shift_x", "shift_y"), a.as_tuple(), strict=True))

        return YUV_PARAMS.pack(
            **WgslConverter._tile_fields(fmt, rect),
            has_uv=0 if layout.u is None else 1,
            y_offset=r.y_offset, y_scale=r.y_scale, c_scale=r.c_scale,
            rv=m.rv, gu=m.gu, gv=m.gv, bu=m.bu,
            ya=addr(layout.y), ua=addr(layout.u or zero), va=addr(layout.v or zero),
        )

    @staticmethod
    def _bayer_params(fmt: ImageFormat, rect) -> np.ndarray:
        info = PIXEL_FORMATS[fmt.pixel_format]
        tile = [0, 0, 0, 0]
        for channel, colour in enumerate("RGB"):
            for tx, ty in info.bayer_offsets()[colour]:
                tile[tx + 2 * ty] = channel
        (plane,) = info.planes(fmt.width, fmt.height, fmt.row_stride)
        return BAYER_PARAMS.pack(**WgslConverter._tile_fields(fmt, rect), tile=tile, row_stride=plane.row_bytes)

    def _explicit_range(self, fmt: ImageFormat, value_range) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Range-buffer words and (for the exact integer path) thresholds, on the CPU."""
        lo, hi = _checked_range(value_range)
        if reference.uses_integer_formula(fmt.datatype, (lo, hi)):
            # byte >= k  <=>  510 (v - lo) + d >= 2 k d  <=>  v >= lo + ceil((2k - 1) d / 510)
            lo_i, d = int(lo), int(hi) - int(lo)
            t = [lo_i - ((-(2 * k - 1) * d) // 510) for k in range(1, 256)] + [2**31 - 1]
            th = np.array([min(max(v, -(2**31)), 2**31 - 1) for v in t], dtype=np.int32)
            return RANGE.pack(mode=_MODE_THRESHOLDS), th
        lo_f, hi_f = float(lo), float(hi)
        shift = 0
        big = max(abs(lo_f), abs(hi_f))
        if fmt.datatype == ChannelDatatype.F64 and big > 0 and not (2.0**-60 < big < 2.0**100):
            # as the shader does for automatic ranges: a shared power-of-two scale so
            # float64 values far outside f32's range are still told apart
            shift = math.frexp(big)[1] - 1 - 64
            lo_f, hi_f = math.ldexp(lo_f, -shift), math.ldexp(hi_f, -shift)
        words = RANGE.pack(lo_f=lo_f, hi_f=hi_f, mode=_MODE_FLOAT, shift=shift)
        return words, None

    # ----------------------------------------------------------------- decode

    def decode(
        self,
        raw,
        fmt: ImageFormat,
        value_range: ValueRange = None,
        *,
        plan: Optional[TablePlan] = None,
        max_tile: Optional[int] = None,
        encoder=None,
        level: int = 0,
        new_texture: Optional[Callable[[int, int], "wgpu.GPUTexture"]] = None,
    ) -> list[DecodedTile]:
        """Decode an uploaded raw buffer into display-RGBA8 textures (one per tile).

        raw: the storage buffer from ``upload``. value_range: explicit (lo, hi) for
        colour images (ignored for pixel formats). plan: a depth / colormapped /
        segmentation image's table lookup (``table_plan.plan_for``, contract §8), which
        replaces the colour rules. max_tile: largest tile side (default
        and upper bound: the device's max texture size). encoder: record into it and
        leave submitting to the caller; by default the work is submitted here.
        level: decode straight to that reduced level (``Renderer``'s levels: each tile's
        texture holds every 2^level-th texel, the same texels as decoding the tile and
        reducing it); only where ``decodes_level`` says so.
        new_texture(width, height): where each tile's texture comes from (default: a new
        rgba8unorm texture with ``TEXTURE_USAGE``); the decode writes every texel of it.
        """
        limit = self.max_texture_dim if max_tile is None else max(1, min(int(max_tile), self.max_texture_dim))
        tile_rects = tile_grid(fmt.width, fmt.height, limit)
        if level:
            if not self.decodes_level(fmt, level, limit, plan):
                raise ValueError(f"{fmt.describe()}: no direct decode to level {level} (decodes_level)")
            work = list(enumerate(tile_rects))  # one band per tile: its reduced output fits (decodes_level)
        else:
            # (tile index, band rectangle): the unit of one dispatch and one output buffer
            work = [(i, band) for i, rect in enumerate(tile_rects) for band in self._bands(rect)]
        rects = [band for _, band in work]
        dev = self.device
        own_encoder = encoder is None
        enc = dev.create_command_encoder() if own_encoder else encoder

        if plan is not None:
            info = DATATYPES[fmt.datatype]
            consts, partials, n_partials = None, self._dummy_partials, 0
            # the table is bound where colour images bind their range
            range_buf = dev.create_buffer_with_data(data=plan.words, usage=wgpu.BufferUsage.STORAGE)
            module, layout = "table.wgsl", TABLE_PARAMS
            decode_consts = {
                "DT_BYTES": info.size,
                "DT_KIND": 2 if info.is_float else (1 if info.is_signed else 0),
                "MODE": plan.mode,
                **self._layout_constants(fmt),
            }
            params = [
                TABLE_PARAMS.pack(**self._tile_fields(fmt, r), n=plan.n, first=plan.first, lo=plan.lo,
                                  inv_span=plan.inv_span)
                for r in rects
            ]
        elif fmt.pixel_format is None:
            consts = self._color_constants(fmt)
            n = fmt.width * fmt.height
            n_partials = 0
            thresholds = None
            range_buf = dev.create_buffer(
                size=_RANGE_BYTES, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_DST
            )
            partials = self._dummy_partials
            info = DATATYPES[fmt.datatype]
            if value_range is not None:
                words, thresholds = self._explicit_range(fmt, value_range)
                dev.queue.write_buffer(range_buf, 0, words)
                mode = RANGE.get(words, "mode")
            elif fmt.datatype == ChannelDatatype.U8:
                mode = _MODE_EXACT_INT
                words = RANGE.pack(lo=(0, 0), span=(255, 0), mode=mode)  # the identity
                dev.queue.write_buffer(range_buf, 0, words)
            else:
                n_partials = min(self.max_partials, math.ceil(n / _REDUCE_WG))
                partials = dev.create_buffer(size=16 * n_partials, usage=wgpu.BufferUsage.STORAGE)
                # what reduce_final will write: integers' mode follows from the type alone
                if info.is_float:
                    mode = _MODE_ON_DEVICE
                else:
                    mode = _MODE_EXACT_INT if info.size <= 2 else _MODE_INT64_DIFF
            module, layout = "color.wgsl", COLOR_PARAMS
            decode_consts = {**consts, "MODE": mode}
            params = [self._color_params(fmt, r, n_partials, thresholds) for r in rects]
        else:  # pixel formats: no range, no reduction
            consts, range_buf, partials, n_partials = None, self._dummy_range, self._dummy_partials, 0
            if PIXEL_FORMATS[fmt.pixel_format].is_bayer:
                module, layout = "bayer.wgsl", BAYER_PARAMS
                params = [self._bayer_params(fmt, r) for r in rects]
                decode_consts = {"SAMPLE_BYTES": PIXEL_FORMATS[fmt.pixel_format].sample_bytes}
            else:
                module, layout = "yuv.wgsl", YUV_PARAMS
                params = [self._yuv_params(fmt, r) for r in rects]
                decode_consts = {"HAS_UV": YUV_PARAMS.get(params[0], "has_uv")}
        if level:
            decode_consts["LEVEL"] = int(level)

        def out_size(w: int, h: int) -> tuple[int, int]:  # a rectangle's texels at `level`
            return -(-w >> level), -(-h >> level)

        if new_texture is None:
            def new_texture(w: int, h: int):
                return dev.create_texture(size=(w, h, 1), format=wgpu.TextureFormat.rgba8unorm, usage=TEXTURE_USAGE)
        tiles = [DecodedTile(x0, y0, tw, th, new_texture(*out_size(tw, th))) for x0, y0, tw, th in tile_rects]
        groups, outs = [], []
        for rect, words in zip(rects, params):
            bw, bh = out_size(*rect[2:])
            stride = self._row_stride(bw)
            layout.pack_into(words, out_stride=stride // 4)  # output row stride in u32 words
            out = dev.create_buffer(
                size=stride * bh, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC
            )
            ubuf = dev.create_buffer_with_data(data=words, usage=wgpu.BufferUsage.UNIFORM)
            groups.append(
                dev.create_bind_group(
                    layout=self.layout,
                    entries=[
                        {"binding": 0, "resource": {"buffer": ubuf}},
                        {"binding": 1, "resource": {"buffer": raw}},
                        {"binding": 2, "resource": {"buffer": range_buf}},
                        {"binding": 3, "resource": {"buffer": partials}},
                        {"binding": 4, "resource": {"buffer": out}},
                    ],
                )
            )
            outs.append((out, stride))

        cpass = enc.begin_compute_pass()
        if n_partials:
            cpass.set_pipeline(self._pipeline(module, "reduce_partial", consts))
            cpass.set_bind_group(0, groups[0])
            cpass.dispatch_workgroups(n_partials, 1, 1)
            cpass.set_pipeline(self._pipeline(module, "reduce_final", consts))
            cpass.dispatch_workgroups(1, 1, 1)
        cpass.set_pipeline(self._pipeline(module, "decode", decode_consts))
        wx, wy = _DECODE_WG
        for (_, _, rw, rh), group in zip(rects, groups):
            bw, bh = out_size(rw, rh)
            cpass.set_bind_group(0, group)
            cpass.dispatch_workgroups(math.ceil(bw / (_DECODE_PX[module] * wx)), math.ceil(bh / wy), 1)
        cpass.end()
        for (ti, (_, by, rw, rh)), (out, stride) in zip(work, outs):
            tile = tiles[ti]
            bw, bh = out_size(rw, rh)
            enc.copy_buffer_to_texture(
                {"buffer": out, "offset": 0, "bytes_per_row": stride, "rows_per_image": bh},
                {"texture": tile.texture, "origin": (0, by - tile.y0, 0)},
                (bw, bh, 1),
            )
        if own_encoder:
            dev.queue.submit([enc.finish()])
        return tiles

    def decodes_level(self, fmt: ImageFormat, level: int, max_tile: Optional[int] = None,
                      plan: Optional[TablePlan] = None) -> bool:
        """Whether ``decode(..., level=level)`` can decode `fmt` straight to that level:
        every shader but Bayer's (which decodes 4 pixels of a row together from shared
        neighbours), when each tile's reduced output fits one storage binding."""
        if level < 0:
            return False
        if level == 0:
            return True
        if plan is None and fmt.pixel_format is not None and PIXEL_FORMATS[fmt.pixel_format].is_bayer:
            return False
        limit = self.max_texture_dim if max_tile is None else max(1, min(int(max_tile), self.max_texture_dim))
        cap = min(self.max_binding, self.max_buffer)
        return all(self._row_stride(-(-w >> level)) * -(-h >> level) <= cap
                   for _, _, w, h in tile_grid(fmt.width, fmt.height, limit))

    # ----------------------------------------------------------------- readback

    def read_tiles(self, tiles: Sequence[DecodedTile], width: int, height: int) -> np.ndarray:
        """Assemble decoded tiles into one (H, W, 4) uint8 array on the CPU."""
        out = np.empty((height, width, 4), dtype=np.uint8)
        for t in tiles:
            read_texture(self.device, t.texture, t.width, t.height,
                         out=out[t.y0 : t.y0 + t.height, t.x0 : t.x0 + t.width])
        return out

    def to_display_rgba(
        self,
        buffer,
        fmt: ImageFormat,
        value_range: ValueRange = None,
        *,
        kind: str = LayerKind.IMAGE,
        colormap: Optional[int] = None,
        class_colors: Optional[np.ndarray] = None,
        max_tile: Optional[int] = None,
    ) -> np.ndarray:
        """Upload, decode and read back: raw bytes -> (H, W, 4) uint8 display RGBA.

        kind, colormap, class_colors: as the reference's ``to_display_rgba`` (contract §8)."""
        plan = plan_for(buffer, fmt, value_range, kind, colormap, class_colors)
        raw = self.upload(buffer, fmt)
        try:
            tiles = self.decode(raw, fmt, value_range, plan=plan, max_tile=max_tile)
            out = self.read_tiles(tiles, fmt.width, fmt.height)
        finally:
            raw.destroy()
        for t in tiles:
            t.texture.destroy()
        return out


_CONVERTERS: dict[int, WgslConverter] = {}


def converter_for(device: "wgpu.GPUDevice") -> WgslConverter:
    """The cached converter (pipelines, layouts) of a device."""
    conv = _CONVERTERS.get(id(device))
    if conv is None or conv.device is not device:
        conv = WgslConverter(device)
        _CONVERTERS[id(device)] = conv
    return conv

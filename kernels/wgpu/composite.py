"""The wgpu renderer: decoded-texture cache and the contract §4 composite, on screen or off.

API (the window viewer and headless render both use it)::

    from pixelrun.kernels.wgpu.composite import Renderer
    r = Renderer(device)                       # device: pixelrun.kernels.wgpu.device.get_device()
    r.draw(layers, target_view, (tw, th), target_format="bgra8unorm-srgb",
           background=(13, 13, 13, 255), scale=1.0, offset=(0.0, 0.0), encoder=None)
    rgba = r.render_offscreen(layers, background=(0, 0, 0, 0))   # (H, W, 4) uint8
    tiles = r.display_rgba(layer)    # list[DecodedTile]: rgba8unorm textures of one layer
    rgba = r.layer_rgba(layer)       # (h, w, 4) uint8 display RGBA of one layer

- ``layers``: ``pixelrun.kernels.layers.Layer`` objects in any order; they are drawn by
  DrawOrder ascending, ties by entity path (``layers.order_layers``), later on top.
- ``draw`` records into ``encoder`` when given (the caller submits), else submits
  itself. ``target_view`` is any GPUTextureView of size ``target_size`` (w, h) with
  RENDER_ATTACHMENT usage; ``target_format`` is its format: ``*-srgb`` formats are
  handled so the stored bytes equal those of a non-sRGB target (and of the headless
  render). ``scale`` (a number or (sx, sy)) and ``offset`` map scene units to target
  pixels: target = scene * scale + offset; sampling is nearest (the texel under each
  pixel centre), or linear for a layer with ``magnification`` 2 while it is magnified
  (contract §8.4; ``reference.composite.composite_view`` is the oracle). Target pixels
  outside the scene show ``background``;
  ``scene_size=(w, h)`` overrides the scene rectangle (default: the union of the layers).
- Cost follows the target, not the scene: compositing happens per target pixel (an
  accumulation buffer the size of the target, or of a band of its rows), and each layer
  tile is visited only over the target pixels it can cover. A 100000 x 100000 scene in
  a window costs what the window costs; ``last_draw`` (`DrawStats`) says what was
  allocated and visited.
- Blending is contract §4 exactly: premultiplied alpha in linear light in f32, then one
  encode to sRGB bytes with straight alpha. Colours are within 1 LSB of
  ``pixelrun.kernels.reference.composite`` (the NumPy oracle); ``render_offscreen`` is at native
  size, one texel per output pixel.
- Decoded textures are cached by row id (plus format and buffer address) and level with
  LRU eviction under ``vram_budget`` bytes (default env ``PIXELRUN_VRAM_BUDGET_MB`` or
  1024 MiB; the viewer derives it from ``--memory-limit``). ``draw`` shows a layer from
  a reduced level (every k-th texel, k a power of two) when the view is zoomed out to
  1/k or less, and when the frame's textures would not fit the budget together (the
  largest layers are reduced first; ``last_draw.levels`` names the reduced layers,
  ``last_draw.over_budget`` those reduced for the budget); at zoom 1/k with a whole-pixel
  offset a reduced level gives exactly the full image's pixels. A layer not yet decoded
  is decoded straight to its level (``WgslConverter.decode(level=)``: only the texels the
  level keeps; Bayer images are decoded, then reduced). ``render_offscreen``
  always uses full resolution. ``forget(layers)`` / ``retain(layers)`` drop those layers' /
  all other layers' textures and keep them as spares that the next decodes of the same
  size write into (a live viewer retains what it shows, so a stream reuses its memory
  instead of growing it); spares count against the budget and are freed first. Images
  larger than the device's max texture size are kept as several tiles; targets whose
  accumulation buffer exceeds one storage binding are composited in bands of rows.
  ``max_texture_dim`` / ``max_acc_bytes`` lower those limits (for tests).
- A layer that cannot be decoded (wrong byte count, too big for the device) is left out
  of the picture with a ``RenderWarning`` naming the entity; ``last_errors`` maps entity
  -> message for the last frame. Everything else is still drawn.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import wgpu

from pixelrun.kernels.errors import RenderWarning, user_stacklevel
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat
from pixelrun.kernels.layers import (
    MAGNIFICATION_LINEAR,
    Layer,
    blend_opacity,
    canvas_size,
    check_background,
    decode_key,
    decode_uncovered,
    layer_decode_args,
    order_layers,
    premultiplied_background,
    srgb_decode,
)
from pixelrun.kernels.table_plan import plan_for
from pixelrun.kernels.wgpu import device as gpu
from pixelrun.kernels.wgpu.convert import TEXTURE_USAGE, DecodedTile, converter_for, read_texture, tile_grid
from pixelrun.kernels.wgpu.layouts import FRAME, TILE
from pixelrun.kernels.wgpu.wgsl import load_wgsl

__all__ = [
    "Renderer", "RenderWarning", "DrawStats", "default_vram_budget", "zoom_shift",
    "shared_renderer", "composite",
]

Color = tuple[int, int, int, int]

_DEFAULT_BUDGET_MB = 1024
_ACC_CAP = 1 << 30  # bytes of accumulation buffer a frame may hold at once
_RECORD = 256  # bytes per parameter record (a multiple of every storage offset alignment)
# a reduced level's texture (written by the reduce pass)
_REDUCED_USAGE = wgpu.TextureUsage.TEXTURE_BINDING | wgpu.TextureUsage.STORAGE_BINDING | wgpu.TextureUsage.COPY_SRC


@dataclass
class DrawStats:
    """What the last ``draw``/``render_offscreen`` allocated and visited.

    target_pixels: pixels of the target(s); acc_bytes: size of the accumulation buffer
    held; blended_pixels: target pixels visited by blend passes, all layers together;
    levels: entity -> k for layers drawn from a reduced level (every k-th texel);
    over_budget: the part of `levels` that is coarser than the zoom asks for, because
    the frame's textures would not fit the texture budget together; hidden: entities
    left out because an opaque layer above covers them (`drop_occluded`), not decoded.
    """

    target_pixels: int = 0
    acc_bytes: int = 0
    blended_pixels: int = 0
    levels: dict = field(default_factory=dict)
    over_budget: dict = field(default_factory=dict)
    hidden: list = field(default_factory=list)


@dataclass
class _Entry:
    tiles: list[DecodedTile]
    views: list
    nbytes: int


@dataclass
class _Target:
    view: object
    size: tuple[int, int]
    format: str
    scale: tuple[float, float]
    offset: tuple[float, float]


def _texture_bytes(tiles: Sequence[DecodedTile]) -> int:
    return sum(int(t.texture.size[0]) * int(t.texture.size[1]) * 4 for t in tiles)


def _covered(lo: int, hi: int, scale: float, offset: float, limit: int) -> tuple[int, int]:
    """Target pixels [a, b) whose centres can fall on scene texels [lo, hi), within
    [0, limit). The shader tests each pixel exactly; the margin of one pixel on each
    side absorbs f32 versus float64 rounding."""
    a = math.ceil(lo * scale + offset - 0.5) - 1
    b = math.ceil(hi * scale + offset - 0.5) + 1
    return max(0, a), min(limit, b)


def _frame_and_acc(frame, region) -> list[dict]:
    """Bindings 0 and 1 of both the blend (scene) and the present (view) groups: the
    frame uniforms and the band's slice (buffer, offset, size) of the accumulator."""
    acc, offset, size = region
    return [
        {"binding": 0, "resource": frame},
        {"binding": 1, "resource": {"buffer": acc, "offset": offset, "size": size}},
    ]


def default_vram_budget() -> int:
    """The texture cache budget when none is given: env PIXELRUN_VRAM_BUDGET_MB, else 1 GiB."""
    return int(float(os.environ.get("PIXELRUN_VRAM_BUDGET_MB", _DEFAULT_BUDGET_MB)) * (1 << 20))


def zoom_shift(scale: float) -> int:
    """The reduced level a zoom allows: the largest s with 2**s <= 1 / scale (0 above
    scale 1/2): a level never has fewer texels than the screen shows of it."""
    if not scale < 1.0:
        return 0
    return max(0, int(math.floor(math.log2(1.0 / scale) + 1e-9)))


class Renderer:
    """Composites layers with wgpu; see the module docstring for the API."""

    def __init__(
        self,
        device,
        *,
        vram_budget: Optional[int] = None,
        max_texture_dim: Optional[int] = None,
        max_acc_bytes: Optional[int] = None,
    ) -> None:
        self.device = device
        self.converter = converter_for(device)
        lim = device.limits
        self.max_tile = int(lim["max-texture-dimension-2d"])
        if max_texture_dim is not None:
            self.max_tile = max(1, min(self.max_tile, int(max_texture_dim)))
        acc_limit = min(int(lim["max-storage-buffer-binding-size"]), int(lim["max-buffer-size"]))
        if max_acc_bytes is not None:
            acc_limit = max(16, min(acc_limit, int(max_acc_bytes)))
        self.max_acc_bytes = acc_limit
        # all bands of a frame side by side, up to this many bytes (then regions are reused)
        self._acc_region_cap = max(self.max_acc_bytes, min(int(lim["max-buffer-size"]), _ACC_CAP))
        self.vram_budget = default_vram_budget() if vram_budget is None else int(vram_budget)
        self.last_errors: dict[str, str] = {}
        self.last_draw = DrawStats()
        self._cache: "OrderedDict[tuple, _Entry]" = OrderedDict()
        self._cache_bytes = 0
        # textures of forgotten layers, by (width, height, usage), for the next decodes
        self._spares: dict[tuple[int, int, int], list] = {}
        self._spare_bytes = 0
        self._acc = None
        self._acc_size = 0
        self._present_pipelines: dict[str, object] = {}
        self._shift_buffers: dict[int, object] = {}
        self._fuse_clear = True  # `blend_first` where it can replace `clear` (False: never; for tests)
        self._build_pipelines()

    # ------------------------------------------------------------------ setup

    def _build_pipelines(self) -> None:
        dev = self.device
        C, F, V = wgpu.ShaderStage.COMPUTE, wgpu.ShaderStage.FRAGMENT, wgpu.ShaderStage.VERTEX
        B = wgpu.BufferBindingType
        ro = {"type": B.read_only_storage}
        unfilterable = {
            "sample_type": wgpu.TextureSampleType.unfilterable_float,
            "view_dimension": wgpu.TextureViewDimension.d2,
        }
        self._module = dev.create_shader_module(label="composite.wgsl", code=load_wgsl("composite.wgsl"))
        self._scene_layout = dev.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": C, "buffer": ro},
                {"binding": 1, "visibility": C, "buffer": {"type": B.storage}},
                {"binding": 2, "visibility": C, "buffer": ro},
            ]
        )
        lut = srgb_decode(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
        self._decode_lut = dev.create_buffer_with_data(data=lut, usage=wgpu.BufferUsage.STORAGE)
        self._layer_layout = dev.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": C, "buffer": ro},
                {"binding": 1, "visibility": C, "texture": unfilterable},
            ]
        )
        self._view_layout = dev.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": F | V, "buffer": ro},
                {"binding": 1, "visibility": F, "buffer": ro},
            ]
        )
        self._reduce_layout = dev.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": C, "buffer": ro},
                {"binding": 1, "visibility": C, "texture": unfilterable},
                {
                    "binding": 2,
                    "visibility": C,
                    "storage_texture": {
                        "access": wgpu.StorageTextureAccess.write_only,
                        "format": wgpu.TextureFormat.rgba8unorm,
                        "view_dimension": wgpu.TextureViewDimension.d2,
                    },
                },
            ]
        )
        compute_layout = dev.create_pipeline_layout(bind_group_layouts=[self._scene_layout, self._layer_layout])
        self._clear = dev.create_compute_pipeline(
            layout=compute_layout, compute={"module": self._module, "entry_point": "clear"}
        )
        self._blend = dev.create_compute_pipeline(
            layout=compute_layout, compute={"module": self._module, "entry_point": "blend"}
        )
        self._blend_first = dev.create_compute_pipeline(
            layout=compute_layout, compute={"module": self._module, "entry_point": "blend_first"}
        )
        self._reduce = dev.create_compute_pipeline(
            layout=dev.create_pipeline_layout(bind_group_layouts=[self._reduce_layout]),
            compute={"module": self._module, "entry_point": "reduce"},
        )
        self._present_layout = dev.create_pipeline_layout(bind_group_layouts=[self._view_layout])
        # bound for `clear`, which does not read a layer
        self._dummy_tex = dev.create_texture(
            size=(1, 1, 1), format=wgpu.TextureFormat.rgba8unorm, usage=wgpu.TextureUsage.TEXTURE_BINDING
        )
        dummy_params = dev.create_buffer_with_data(
            data=np.zeros(TILE.words, np.uint32), usage=wgpu.BufferUsage.STORAGE
        )
        self._dummy_layer_group = dev.create_bind_group(
            layout=self._layer_layout,
            entries=[
                {"binding": 0, "resource": {"buffer": dummy_params}},
                {"binding": 1, "resource": self._dummy_tex.create_view()},
            ],
        )

    def _present_pipeline(self, fmt: str):
        pipe = self._present_pipelines.get(fmt)
        if pipe is None:
            pipe = self.device.create_render_pipeline(
                layout=self._present_layout,
                vertex={"module": self._module, "entry_point": "vs_fullscreen", "buffers": []},
                primitive={"topology": wgpu.PrimitiveTopology.triangle_list},
                fragment={
                    "module": self._module,
                    "entry_point": "fs",
                    "targets": [{"format": fmt}],
                },
            )
            self._present_pipelines[fmt] = pipe
        return pipe

    # ------------------------------------------------------------------ texture cache

    @staticmethod
    def _key(layer: Layer) -> tuple:
        # The row id names the data; the buffer's address and size are added so that
        # hand-built layers reusing a row id for different bytes are not confused (a
        # store hands out views of the same chunk memory, so its keys stay stable).
        # decode_key adds what the colours depend on besides the bytes (kind, range,
        # colormap, class colours), so a changed colormap is a new decode, never a stale one.
        buf = np.asarray(layer.buffer)
        return (layer.row_id, decode_key(layer), buf.__array_interface__["data"][0], buf.nbytes)

    def _store(self, key: tuple, tiles: list[DecodedTile]) -> _Entry:
        entry = _Entry(tiles, [t.texture.create_view() for t in tiles], _texture_bytes(tiles))
        self._cache[key] = entry
        self._cache_bytes += entry.nbytes
        self._fit_spares()  # no spare is worth more than a cached frame
        return entry

    def _decode(self, layer: Layer, encoder, shift: int = 0) -> Optional[list[DecodedTile]]:
        """The layer's textures at level `shift`, decoded straight to it; None when the
        converter cannot decode this layer straight to that level (decode, then reduce)."""
        conv = self.converter
        # depth / colormapped / segmentation layers: their table lookup (contract §8)
        plan = plan_for(layer.buffer, layer.format, **layer_decode_args(layer))
        if shift and not conv.decodes_level(layer.format, shift, self.max_tile, plan):
            return None
        raw = conv.upload(layer.buffer, layer.format, entity=layer.entity)
        # wgpu keeps the raw buffer alive until the recorded work has run; dropping our
        # reference lets it go once that is done (the display textures are what we keep)
        return conv.decode(raw, layer.format, layer.value_range, plan=plan, max_tile=self.max_tile,
                           encoder=encoder, level=shift,
                           new_texture=lambda w, h: self._texture(w, h, TEXTURE_USAGE))

    def _entry(self, layer: Layer, shift: int, encoder) -> _Entry:
        """The cached textures of `layer` at reduced level `shift` (0: full resolution),
        decoded (and reduced) now when missing. Raises ValueError for undecodable data."""
        base = self._key(layer)
        key = (base, shift)
        entry = self._cache.get(key)
        if entry is not None:
            self._cache.move_to_end(key)
            return entry
        if shift == 0:
            return self._store(key, self._decode(layer, encoder))
        full = self._cache.get((base, 0))
        if full is not None:
            self._cache.move_to_end((base, 0))
            src = full.tiles
        else:
            # a new frame shown reduced: decode only the texels the level keeps (a quarter
            # of the work at level 1), the same pixels as decoding all and reducing
            direct = self._decode(layer, encoder, shift)
            if direct is not None:
                return self._store(key, direct)
            src = self._decode(layer, encoder)  # decoded for this reduction only: let go once used
        enc = encoder if encoder is not None else self.device.create_command_encoder()
        reduced = [self._reduce_tile(enc, t, shift) for t in src]
        if encoder is None:
            self.device.queue.submit([enc.finish()])
        return self._store(key, reduced)

    def _reduce_tile(self, enc, tile: DecodedTile, shift: int) -> DecodedTile:
        k = 1 << shift
        w, h = -(-tile.width // k), -(-tile.height // k)
        tex = self._texture(w, h, _REDUCED_USAGE)
        sbuf = self._shift_buffers.get(shift)
        if sbuf is None:
            sbuf = self._shift_buffers[shift] = self.device.create_buffer_with_data(
                data=np.array([shift, 0, 0, 0], np.uint32), usage=wgpu.BufferUsage.STORAGE
            )
        group = self.device.create_bind_group(
            layout=self._reduce_layout,
            entries=[
                {"binding": 0, "resource": {"buffer": sbuf}},
                {"binding": 1, "resource": tile.texture.create_view()},
                {"binding": 2, "resource": tex.create_view()},
            ],
        )
        cpass = enc.begin_compute_pass()
        cpass.set_pipeline(self._reduce)
        cpass.set_bind_group(0, group)
        cpass.dispatch_workgroups(math.ceil(w / 8), math.ceil(h / 8), 1)
        cpass.end()
        return DecodedTile(tile.x0, tile.y0, tile.width, tile.height, tex)

    def display_rgba(self, layer: Layer, encoder=None) -> list[DecodedTile]:
        """The decoded display-RGBA8 textures (tiles) of a layer, from the cache or decoded now.

        With ``encoder`` the decode is recorded there (the caller submits); otherwise it
        is submitted at once. Raises ValueError (with the entity) for undecodable data.
        """
        return self._entry(layer, 0, encoder).tiles

    def layer_rgba(self, layer: Layer) -> np.ndarray:
        """One layer's display RGBA (h, w, 4) uint8, read back from its cached textures."""
        tiles = self.display_rgba(layer)
        return self.converter.read_tiles(tiles, layer.format.width, layer.format.height)

    def level_bytes(self, fmt, shift: int) -> int:
        """Bytes of a layer's textures at reduced level `shift` (its tiles, each reduced)."""
        k = 1 << shift
        return sum(
            -(-w // k) * -(-h // k) * 4 for _, _, w, h in tile_grid(fmt.width, fmt.height, self.max_tile)
        )

    def _shifts(self, layers: Sequence[Layer], zoom: int) -> list[int]:
        """The level to draw each layer from: what the zoom allows, then, while the
        frame's textures would not fit the budget together, the largest layer one
        level coarser (a layer with a single texel left cannot shrink further)."""
        shifts = [zoom] * len(layers)
        # a raw buffer too big to bind will be left out of the frame: it takes no budget
        sizes = [0 if np.asarray(l.buffer).nbytes > self.converter.max_binding else self.level_bytes(l.format, zoom)
                 for l in layers]
        while sum(sizes) > self.vram_budget:
            i = max(range(len(layers)), key=lambda j: sizes[j])  # the largest first
            fmt = layers[i].format
            if fmt.width >> shifts[i] <= 1 and fmt.height >> shifts[i] <= 1:
                break  # nothing left to shrink: the budget is smaller than one texel per layer
            shifts[i] += 1
            sizes[i] = self.level_bytes(fmt, shifts[i])
        return shifts

    def _texture(self, width: int, height: int, usage: int):
        """An rgba8unorm texture for a decode or reduce (which write all of it): a spare
        one of that size where there is one, else a new one."""
        pool = self._spares.get((width, height, int(usage)))
        if pool:
            self._spare_bytes -= width * height * 4
            return pool.pop()
        return self.device.create_texture(size=(width, height, 1), format=wgpu.TextureFormat.rgba8unorm,
                                          usage=usage)

    def forget(self, layers: Sequence[Layer], reuse: bool = True) -> None:
        """Drop the cached textures of ``layers`` (every level).

        With ``reuse`` their textures are kept as spares for the next decodes of the same
        size, within the texture budget (the spares are the first thing eviction frees).
        """
        keys = {self._key(layer) for layer in layers}
        self._drop(lambda base: base in keys, reuse)

    def retain(self, layers: Sequence[Layer], reuse: bool = True) -> None:
        """Drop the cached textures of every layer but ``layers``, as `forget` does.

        A live viewer following the newest data keeps only what it shows: a frame a newer
        one replaced is decoded again only if the user goes back to it, and the next frame
        is decoded into its memory instead of new memory, so the textures of a stream stop
        growing. On lavapipe a new texture kept cost a 3-4 ms ``queue.submit`` in one frame
        out of ten (as device memory grew); a reused one, none.
        """
        keys = {self._key(layer) for layer in layers}
        self._drop(lambda base: base not in keys, reuse)

    def _drop(self, which, reuse: bool) -> None:
        for key in [k for k in self._cache if which(k[0])]:
            entry = self._cache.pop(key)
            self._cache_bytes -= entry.nbytes
            for t in entry.tiles:
                tex = t.texture
                if reuse:
                    w, h = int(tex.size[0]), int(tex.size[1])
                    self._spares.setdefault((w, h, int(tex.usage)), []).append(tex)
                    self._spare_bytes += w * h * 4
                else:
                    tex.destroy()
        self._evict(set())

    def _free_spares(self) -> None:
        for pool in self._spares.values():
            for tex in pool:
                tex.destroy()
        self._spares.clear()
        self._spare_bytes = 0

    def _fit_spares(self) -> None:
        """Free the spares when they and the cache together are over the budget."""
        if self._spares and self._cache_bytes + self._spare_bytes > self.vram_budget:
            self._free_spares()

    def _evict(self, keep: set) -> None:
        """Free spare textures, then drop least recently used cached ones, until both fit
        the budget together."""
        self._fit_spares()
        for key in list(self._cache):
            if self._cache_bytes <= self.vram_budget:
                break
            if key in keep:
                continue
            entry = self._cache.pop(key)
            self._cache_bytes -= entry.nbytes
            for t in entry.tiles:
                t.texture.destroy()

    def clear_cache(self) -> None:
        """Release every cached texture, and the spares."""
        for entry in self._cache.values():
            for t in entry.tiles:
                t.texture.destroy()
        self._cache.clear()
        self._cache_bytes = 0
        self._free_spares()

    @property
    def cache_bytes(self) -> int:
        """Bytes of decoded textures currently cached."""
        return self._cache_bytes

    @property
    def spare_bytes(self) -> int:
        """Bytes of textures kept for reuse (`forget`); within the budget with the cache."""
        return self._spare_bytes

    # ------------------------------------------------------------------ compositing

    def _prepare(self, layers: Sequence[Layer], encoder, zoom: Optional[int],
                 stats: DrawStats) -> list[tuple[Layer, _Entry, int]]:
        """Order the layers and make sure each has its textures; skip (and warn) bad ones.

        zoom None: full resolution always (headless); else the zoom's level, or coarser
        where the frame's textures would not fit the budget together (`_shifts`).
        """
        self.last_errors = {}
        ordered = order_layers(list(layers))
        out: list = []

        def decode(todo: list) -> set:
            # every call is a fresh plan (the last one is what gets drawn); entries a
            # previous call decoded come from the cache, and no layer fails twice
            out.clear()
            stats.levels, stats.over_budget = {}, {}
            shifts = [0] * len(todo) if zoom is None else self._shifts(todo, zoom)
            lost = set()
            for layer, shift in zip(todo, shifts, strict=True):
                try:
                    entry = self._entry(layer, shift, encoder)
                except ValueError as exc:
                    msg = str(exc)
                    if not msg.startswith(f"{layer.entity}:"):
                        msg = f"{layer.entity}: {msg}"
                    self.last_errors[layer.entity] = msg
                    warnings.warn(f"layer left out of the frame: {msg}", RenderWarning,
                                  stacklevel=user_stacklevel())
                    lost.add(id(layer))
                    continue
                out.append((layer, entry, shift))
                if shift:
                    stats.levels[layer.entity] = 1 << shift
                    if shift > zoom:
                        stats.over_budget[layer.entity] = 1 << shift
            return lost

        # layers under an opaque one are neither decoded nor blended (the frame is the
        # same to the bit); a stack of same-size cameras decodes its top only
        drawn = decode_uncovered(ordered, decode)
        shown = {id(l) for l in drawn}
        stats.hidden = [l.entity for l in ordered if id(l) not in shown and l.entity not in self.last_errors]
        self._evict({(self._key(layer), shift) for layer, _, shift in out})
        return out

    def _acc_buffer(self, size: int):
        if self._acc is None or self._acc_size < size:
            if self._acc is not None:
                self._acc.destroy()
            self._acc = self.device.create_buffer(size=size, usage=wgpu.BufferUsage.STORAGE)
            self._acc_size = size
        return self._acc

    def _bands(self, width: int, height: int) -> list[tuple[int, int]]:
        """(first row, rows) bands of a target whose accumulation buffer fits one binding."""
        rows = max(1, self.max_acc_bytes // (16 * max(width, 1)))
        return [(y0, min(rows, height - y0)) for y0 in range(0, height, rows)]

    def _render(self, enc, layers, targets: Sequence[_Target], background: Color, scene_size=None,
                zoom: Optional[int] = None) -> None:
        stats = DrawStats()
        prepared = self._prepare(layers, enc, zoom, stats)
        if scene_size is None:  # every layer's rectangle counts, drawn or not
            width, height = canvas_size(list(layers))
        else:
            width, height = (int(v) for v in scene_size)
        bg_lin = premultiplied_background(background).astype(np.float32)
        bg_bytes = np.asarray(background, dtype=np.float32) / 255.0

        # Plan every (target, band): its accumulator region and the tile dispatches.
        jobs = []
        for t in targets:
            tw, th = t.size
            stats.target_pixels += tw * th
            for band in self._bands(tw, th):
                jobs.append((t, band, self._dispatches(prepared, t, band)))
        # Each (target, band) gets its own region of the accumulation buffer (up to a
        # memory cap): reusing one region for the next band is a write-after-read hazard
        # that some backends do not order (GL on llvmpipe defers draws past later dispatches).
        region_bytes = max((16 * t.size[0] * band[1] + 255) // 256 * 256 for t, band, _ in jobs)
        n_regions = max(1, min(len(jobs), self._acc_region_cap // region_bytes))
        acc = self._acc_buffer(n_regions * region_bytes)
        stats.acc_bytes = self._acc_size

        # All parameters of this draw in one storage buffer, one 256-byte record each.
        n_records = sum(1 + len(d) for _, _, d in jobs)
        words = np.zeros((n_records, _RECORD // 4), dtype=np.uint32)
        rec = 0
        clear_rects = []
        for t, (y0, bh), dispatches in jobs:
            cx0, cy0, cw, ch = self._scene_rect(t, (y0, bh), width, height)
            clear_rects.append((cx0, cy0, cw, ch))
            FRAME.pack_into(
                words[rec], scale=t.scale, offset=t.offset, scene_w=width, scene_h=height,
                width=t.size[0], band_y0=y0, band_h=bh,
                srgb_target=1 if str(t.format).endswith("-srgb") else 0,
                clear_x0=cx0, clear_y0=cy0, clear_w=cw, clear_h=ch, bg_lin=bg_lin, bg_bytes=bg_bytes,
            )
            rec += 1
            for (x0, ty0, w, h), tile, _, shift, opacity, filt in dispatches:
                TILE.pack_into(
                    words[rec], x0=x0, y0=ty0, w=w, h=h, tx0=tile.x0, ty0=tile.y0,
                    tw=tile.width, th=tile.height, shift=shift, opacity=opacity, sampling=filt,
                )
                stats.blended_pixels += w * h
                rec += 1
        params = self.device.create_buffer_with_data(data=words, usage=wgpu.BufferUsage.STORAGE)

        rec = 0
        for i, (t, band, dispatches) in enumerate(jobs):
            region = (acc, (i % n_regions) * region_bytes, max(16, 16 * t.size[0] * band[1]))
            frame = {"buffer": params, "offset": rec * _RECORD, "size": FRAME.size}
            rec += 1
            self._accumulate(enc, t, clear_rects[i], frame, region, dispatches, params, rec)
            rec += len(dispatches)
            self._present(enc, t, frame, region, band[0] == 0)
        self.last_draw = stats

    @staticmethod
    def _scene_rect(t: _Target, band, width: int, height: int) -> tuple[int, int, int, int]:
        """(x0, y0, w, h): the band's target pixels that can show the scene (a margin
        of a pixel included; the accumulator is cleared there only)."""
        y0, bh = band
        x_a, x_b = _covered(0, width, t.scale[0], t.offset[0], t.size[0])
        y_a, y_b = _covered(0, height, t.scale[1], t.offset[1], y0 + bh)
        y_a = max(y_a, y0)
        if x_b <= x_a or y_b <= y_a:
            return (0, y0, 0, 0)
        return (x_a, y_a, x_b - x_a, y_b - y_a)

    def _dispatches(self, prepared, t: _Target, band) -> list:
        """(target rect, tile, view, shift, opacity, filter) for each layer tile that can show in the band.

        filter 1 (linear) for a layer asking for MagnificationFilter.Linear (magnification 2)
        while it is magnified (more than one target pixel per texel, as Rerun switches to its
        magnification filter) and drawn at full resolution; else 0 (nearest)."""
        tw, _ = t.size
        y0, bh = band
        (sx, sy), (ox, oy) = t.scale, t.offset
        out = []
        magnified = min(sx, sy) > 1.0
        for layer, entry, shift in prepared:
            opacity = blend_opacity(layer.opacity)
            filt = 1 if (layer.magnification == MAGNIFICATION_LINEAR and magnified and shift == 0) else 0
            for tile, view in zip(entry.tiles, entry.views, strict=True):
                x_a, x_b = _covered(tile.x0, tile.x0 + tile.width, sx, ox, tw)
                y_a, y_b = _covered(tile.y0, tile.y0 + tile.height, sy, oy, y0 + bh)
                y_a = max(y_a, y0)
                if x_b > x_a and y_b > y_a:
                    out.append(((x_a, y_a, x_b - x_a, y_b - y_a), tile, view, shift, opacity, filt))
        return out

    def _accumulate(self, enc, t: _Target, clear_rect, frame, region, dispatches, params, rec) -> None:
        """Clear the band's accumulator region to the background and blend every layer tile.

        When the first tile's pixels cover the whole cleared rectangle (one image filling
        its view: the usual case), `blend_first` clears and blends in one pass."""
        scene_group = self.device.create_bind_group(
            layout=self._scene_layout,
            entries=[*_frame_and_acc(frame, region), {"binding": 2, "resource": {"buffer": self._decode_lut}}],
        )
        cx0, cy0, cw, ch = clear_rect
        fused = False
        if dispatches and self._fuse_clear:
            x0, y0, w, h = dispatches[0][0]
            fused = x0 <= cx0 and y0 <= cy0 and x0 + w >= cx0 + cw and y0 + h >= cy0 + ch
        if not fused:
            cpass = enc.begin_compute_pass()
            cpass.set_pipeline(self._clear)
            cpass.set_bind_group(0, scene_group)
            cpass.set_bind_group(1, self._dummy_layer_group)
            groups = math.ceil(cw * ch / 64)
            if groups:
                gx = min(groups, 65535)
                cpass.dispatch_workgroups(gx, math.ceil(groups / gx), 1)
            cpass.end()
        # One pass per dispatch: layers overlap in `acc`, and a pass boundary is where every
        # backend (GL included) is sure to order the writes.
        for i, ((_, _, w, h), _, view, _, _, _) in enumerate(dispatches):
            group = self.device.create_bind_group(
                layout=self._layer_layout,
                entries=[
                    {"binding": 0, "resource": {"buffer": params, "offset": (rec + i) * _RECORD,
                                                "size": TILE.size}},
                    {"binding": 1, "resource": view},
                ],
            )
            cpass = enc.begin_compute_pass()
            cpass.set_pipeline(self._blend_first if fused and i == 0 else self._blend)
            cpass.set_bind_group(0, scene_group)
            cpass.set_bind_group(1, group)
            cpass.dispatch_workgroups(math.ceil(w / 8), math.ceil(h / 8), 1)
            cpass.end()

    def _present(self, enc, t: _Target, frame, region, first: bool) -> None:
        """Encode the band's accumulated pixels into the target."""
        group = self.device.create_bind_group(layout=self._view_layout, entries=_frame_and_acc(frame, region))
        rpass = enc.begin_render_pass(
            color_attachments=[
                {
                    "view": t.view,
                    "load_op": wgpu.LoadOp.clear if first else wgpu.LoadOp.load,
                    "store_op": wgpu.StoreOp.store,
                    "clear_value": (0.0, 0.0, 0.0, 0.0),
                }
            ]
        )
        rpass.set_pipeline(self._present_pipeline(str(t.format)))
        rpass.set_bind_group(0, group)
        rpass.draw(3, 1, 0, 0)
        rpass.end()

    # ------------------------------------------------------------------ public

    def draw(
        self,
        layers: Sequence[Layer],
        target_view,
        target_size: tuple[int, int],
        *,
        target_format: str,
        background=(0, 0, 0, 0),
        scale: Union[float, tuple[float, float]] = 1.0,
        offset: tuple[float, float] = (0.0, 0.0),
        encoder=None,
        scene_size: Optional[tuple[int, int]] = None,
    ) -> None:
        """Composite ``layers`` into ``target_view`` (see the module docstring)."""
        bg = check_background(background)
        sx, sy = (scale, scale) if np.isscalar(scale) else scale
        if not (sx > 0 and sy > 0):
            raise ValueError(f"scale must be positive, got {scale!r}")
        tw, th = (int(v) for v in target_size)
        if tw < 1 or th < 1:
            raise ValueError(f"target_size must be at least 1 x 1, got {target_size!r}")
        target = _Target(target_view, (tw, th), str(target_format), (float(sx), float(sy)),
                         (float(offset[0]), float(offset[1])))
        enc = encoder if encoder is not None else self.device.create_command_encoder()
        # the finer axis decides the level: never show fewer texels than the screen has
        self._render(enc, layers, [target], bg, scene_size, zoom=zoom_shift(max(float(sx), float(sy))))
        if encoder is None:
            self.device.queue.submit([enc.finish()])

    def warm_up(self, target_format: str) -> None:
        """Draw two 2 x 2 images (RGBA8, NV12) into a 1 x 1 target of ``target_format`` and
        forget them: the pipelines and first-use paths (shader compiles on the device, the
        binding's struct types) are then ready before the first frame with data, which
        otherwise pays a few hundred ms for them (a live viewer calls this when it opens)."""
        tex = self.device.create_texture(size=(1, 1, 1), format=target_format,
                                         usage=wgpu.TextureUsage.RENDER_ATTACHMENT)
        formats = (ImageFormat(2, 2, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.U8),
                   ImageFormat(2, 2, pixel_format=PixelFormat.NV12))
        layers = [Layer(f"warm-up {i}", -1, np.zeros(f.byte_count(), np.uint8), f) for i, f in enumerate(formats)]
        for layer in layers:
            self.draw([layer], tex.create_view(), (1, 1), target_format=target_format)
        self.forget(layers, reuse=False)
        tex.destroy()
        self.last_draw, self.last_errors = DrawStats(), {}

    def render_offscreen(self, layers: Sequence[Layer], background=(0, 0, 0, 0)) -> np.ndarray:
        """The composited scene at native size (one texel per pixel) as (H, W, 4) uint8.

        Output larger than the device's max texture size is rendered in tiles.
        """
        bg = check_background(background)
        ordered = order_layers(list(layers))
        width, height = canvas_size(ordered)
        if width == 0 or height == 0:
            return np.zeros((height, width, 4), dtype=np.uint8)
        fmt = wgpu.TextureFormat.rgba8unorm
        rects = tile_grid(width, height, self.max_tile)
        textures = [
            self.device.create_texture(
                size=(w, h, 1), format=fmt,
                usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC,
            )
            for (_, _, w, h) in rects
        ]
        targets = [
            _Target(tex.create_view(), (w, h), fmt, (1.0, 1.0), (-float(x0), -float(y0)))
            for tex, (x0, y0, w, h) in zip(textures, rects)
        ]
        enc = self.device.create_command_encoder()
        self._render(enc, ordered, targets, bg, (width, height))
        self.device.queue.submit([enc.finish()])
        out = np.empty((height, width, 4), dtype=np.uint8)
        for tex, (x0, y0, w, h) in zip(textures, rects):
            read_texture(self.device, tex, w, h, out=out[y0 : y0 + h, x0 : x0 + w])
            tex.destroy()
        return out


_shared: Optional[Renderer] = None


def shared_renderer() -> Renderer:
    """The process-wide Renderer on the shared device (created on first use)."""
    global _shared
    if _shared is None:
        _shared = Renderer(gpu.get_device())
    return _shared


def composite(layers: Sequence[Layer], background=(0, 0, 0, 0)) -> np.ndarray:
    """The backend registry's wgpu compositor: ``render_offscreen`` on the shared Renderer."""
    return shared_renderer().render_offscreen(list(layers), background)

"""The wgpu renderer: decoded-texture cache and the SPEC 4 composite, on screen or off.

API (the window viewer and headless render both use it)::

    from pixelrun.engine.renderer import Renderer
    r = Renderer(device)                       # device: pixelrun.engine.gpu.get_device()
    r.draw(layers, target_view, (tw, th), target_format="bgra8unorm-srgb",
           background=(13, 13, 13, 255), scale=1.0, offset=(0.0, 0.0), encoder=None)
    rgba = r.render_offscreen(layers, background=(0, 0, 0, 0))   # (H, W, 4) uint8
    tiles = r.display_rgba(layer)    # list[DecodedTile]: rgba8unorm textures of one layer
    rgba = r.layer_rgba(layer)       # (h, w, 4) uint8 display RGBA of one layer

- ``layers``: ``pixelrun.engine.scene.Layer`` objects in any order; they are drawn by
  DrawOrder ascending, ties by entity path (``scene.order_layers``), later on top.
- ``draw`` records into ``encoder`` when given (the caller submits), else submits
  itself. ``target_view`` is any GPUTextureView of size ``target_size`` (w, h) with
  RENDER_ATTACHMENT usage; ``target_format`` is its format: ``*-srgb`` formats are
  handled so the stored bytes equal those of a non-sRGB target (and of the headless
  render). ``scale`` (a number or (sx, sy)) and ``offset`` map scene units to target
  pixels: target = scene * scale + offset; sampling is nearest. Target pixels outside
  the scene show ``background``; ``scene_size=(w, h)`` overrides the scene rectangle
  (default: the union of the layers).
- Blending is SPEC 4 exactly: premultiplied alpha in linear light in an internal f32
  accumulation buffer, then one encode to sRGB bytes with straight alpha. Colours are
  within 1 LSB of ``pixelrun.engine.composite`` (the NumPy oracle).
- Decoded textures are cached by row id (plus format and buffer address) with LRU
  eviction under a VRAM budget (``vram_budget`` bytes, default env
  ``PIXELRUN_VRAM_BUDGET_MB`` or 1024 MiB); images larger than the device's max texture
  size are kept as several tiles, and scenes whose accumulation buffer exceeds one
  storage binding are composited in bands of rows. ``max_texture_dim`` /
  ``max_acc_bytes`` lower those limits (for tests).
- A layer that cannot be decoded (wrong byte count, too big for the device) is left out
  of the picture with a ``RenderWarning`` naming the entity; ``last_errors`` maps entity
  -> message for the last frame. Everything else is still drawn.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import wgpu

from pixelrun.engine.scene import (
    Layer, blend_opacity, canvas_size, check_background, order_layers, premultiplied_background,
)
from pixelrun.kernels.reference import srgb_decode
from pixelrun.kernels.wgsl_convert import DecodedTile, converter_for, load_wgsl, read_texture, tile_grid

__all__ = ["Renderer", "RenderWarning", "background_linear"]

Color = tuple[int, int, int, int]

_DEFAULT_BUDGET_MB = 1024
_ACC_CAP = 1 << 30  # bytes of accumulation buffer a frame may hold at once


class RenderWarning(UserWarning):
    """A layer was left out of a frame; the message names the entity and why."""


def background_linear(background: Color) -> np.ndarray:
    """The background as the accumulator starts it (scene.premultiplied_background), f32."""
    return premultiplied_background(background).astype(np.float32)


@dataclass
class _Entry:
    tiles: list[DecodedTile]
    nbytes: int


@dataclass
class _Target:
    view: object
    size: tuple[int, int]
    format: str
    scale: tuple[float, float]
    offset: tuple[float, float]


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
        if vram_budget is None:
            vram_budget = int(float(os.environ.get("PIXELRUN_VRAM_BUDGET_MB", _DEFAULT_BUDGET_MB)) * (1 << 20))
        self.vram_budget = int(vram_budget)
        self.last_errors: dict[str, str] = {}
        self._cache: "OrderedDict[tuple, _Entry]" = OrderedDict()
        self._cache_bytes = 0
        self._acc = None
        self._acc_size = 0
        self._present_pipelines: dict[str, object] = {}
        self._build_pipelines()

    # ------------------------------------------------------------------ setup

    def _build_pipelines(self) -> None:
        dev = self.device
        C, F, V = wgpu.ShaderStage.COMPUTE, wgpu.ShaderStage.FRAGMENT, wgpu.ShaderStage.VERTEX
        B = wgpu.BufferBindingType
        self._module = dev.create_shader_module(label="composite.wgsl", code=load_wgsl("composite.wgsl"))
        self._scene_layout = dev.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": C, "buffer": {"type": B.uniform}},
                {"binding": 1, "visibility": C, "buffer": {"type": B.storage}},
                {"binding": 2, "visibility": C, "buffer": {"type": B.read_only_storage}},
            ]
        )
        lut = srgb_decode(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
        self._decode_lut = dev.create_buffer_with_data(data=lut, usage=wgpu.BufferUsage.STORAGE)
        self._layer_layout = dev.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": C, "buffer": {"type": B.uniform}},
                {
                    "binding": 1,
                    "visibility": C,
                    "texture": {
                        "sample_type": wgpu.TextureSampleType.unfilterable_float,
                        "view_dimension": wgpu.TextureViewDimension.d2,
                    },
                },
            ]
        )
        self._view_layout = dev.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": F | V, "buffer": {"type": B.uniform}},
                {"binding": 1, "visibility": F, "buffer": {"type": B.read_only_storage}},
            ]
        )
        compute_layout = dev.create_pipeline_layout(bind_group_layouts=[self._scene_layout, self._layer_layout])
        self._clear = dev.create_compute_pipeline(
            layout=compute_layout, compute={"module": self._module, "entry_point": "clear"}
        )
        self._blend = dev.create_compute_pipeline(
            layout=compute_layout, compute={"module": self._module, "entry_point": "blend"}
        )
        self._present_layout = dev.create_pipeline_layout(bind_group_layouts=[self._view_layout])
        # bound for `clear`, which does not read a layer
        self._dummy_tex = dev.create_texture(
            size=(1, 1, 1), format=wgpu.TextureFormat.rgba8unorm, usage=wgpu.TextureUsage.TEXTURE_BINDING
        )
        self._dummy_layer_group = self._layer_group(self._params_layer(0, 0, 0, 0, 0, 0.0), self._dummy_tex)

    def _present_pipeline(self, fmt: str):
        pipe = self._present_pipelines.get(fmt)
        if pipe is None:
            pipe = self.device.create_render_pipeline(
                layout=self._present_layout,
                vertex={"module": self._module, "entry_point": "vs", "buffers": []},
                primitive={"topology": wgpu.PrimitiveTopology.triangle_list},
                fragment={
                    "module": self._module,
                    "entry_point": "fs",
                    "targets": [{"format": fmt}],
                },
            )
            self._present_pipelines[fmt] = pipe
        return pipe

    # ------------------------------------------------------------------ uniforms

    def _uniform(self, words: np.ndarray):
        return self.device.create_buffer_with_data(data=words, usage=wgpu.BufferUsage.UNIFORM)

    def _params_layer(self, x0, y0, w, row0, rows, opacity):
        words = np.zeros(8, dtype=np.uint32)
        words[:5] = (x0, y0, w, row0, rows)
        words[6:7].view(np.float32)[0] = opacity
        return self._uniform(words)

    def _layer_group(self, ubuf, texture):
        return self.device.create_bind_group(
            layout=self._layer_layout,
            entries=[
                {"binding": 0, "resource": {"buffer": ubuf}},
                {"binding": 1, "resource": texture.create_view()},
            ],
        )

    # ------------------------------------------------------------------ texture cache

    @staticmethod
    def _key(layer: Layer) -> tuple:
        # The row id names the data; the buffer's address and size are added so that
        # hand-built layers reusing a row id for different bytes are not confused (a
        # store hands out views of the same chunk memory, so its keys stay stable).
        buf = np.asarray(layer.buffer)
        return (layer.row_id, layer.format, buf.__array_interface__["data"][0], buf.nbytes)

    def display_rgba(self, layer: Layer, encoder=None) -> list[DecodedTile]:
        """The decoded display-RGBA8 textures (tiles) of a layer, from the cache or decoded now.

        With ``encoder`` the decode is recorded there (the caller submits); otherwise it
        is submitted at once. Raises ValueError (with the entity) for undecodable data.
        """
        key = self._key(layer)
        entry = self._cache.get(key)
        if entry is not None:
            self._cache.move_to_end(key)
            return entry.tiles
        conv = self.converter
        raw = conv.upload(layer.buffer, layer.format, entity=layer.entity)
        tiles = conv.decode(raw, layer.format, max_tile=self.max_tile, encoder=encoder)
        # wgpu keeps the raw buffer alive until the recorded work has run; dropping our
        # reference lets it go once that is done (the display textures are what we keep)
        del raw
        entry = _Entry(tiles, sum(t.nbytes for t in tiles))
        self._cache[key] = entry
        self._cache_bytes += entry.nbytes
        return tiles

    def layer_rgba(self, layer: Layer) -> np.ndarray:
        """One layer's display RGBA (h, w, 4) uint8, read back from its cached textures."""
        tiles = self.display_rgba(layer)
        return self.converter.read_tiles(tiles, layer.format.width, layer.format.height)

    def _evict(self, keep: set) -> None:
        """Drop least recently used textures until the cache fits the budget."""
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
        """Release every cached texture."""
        self._evict_all()

    def _evict_all(self) -> None:
        for entry in self._cache.values():
            for t in entry.tiles:
                t.texture.destroy()
        self._cache.clear()
        self._cache_bytes = 0

    @property
    def cache_bytes(self) -> int:
        """Bytes of decoded textures currently cached."""
        return self._cache_bytes

    # ------------------------------------------------------------------ compositing

    def _prepare(self, layers: Sequence[Layer], encoder) -> list[tuple[Layer, list[DecodedTile]]]:
        """Order the layers and make sure each has its textures; skip (and warn) bad ones."""
        self.last_errors = {}
        out = []
        for layer in order_layers(list(layers)):
            try:
                tiles = self.display_rgba(layer, encoder=encoder)
            except ValueError as exc:
                msg = str(exc)
                if not msg.startswith(f"{layer.entity}:"):
                    msg = f"{layer.entity}: {msg}"
                self.last_errors[layer.entity] = msg
                warnings.warn(f"layer left out of the frame: {msg}", RenderWarning, stacklevel=3)
                continue
            out.append((layer, tiles))
        self._evict({self._key(layer) for layer, _ in out})
        return out

    def _acc_buffer(self, size: int):
        if self._acc is None or self._acc_size < size:
            if self._acc is not None:
                self._acc.destroy()
            self._acc = self.device.create_buffer(size=size, usage=wgpu.BufferUsage.STORAGE)
            self._acc_size = size
        return self._acc

    def _bands(self, width: int, height: int) -> list[tuple[int, int]]:
        """(first row, rows) bands whose accumulation buffer fits one storage binding."""
        rows = max(1, self.max_acc_bytes // (16 * max(width, 1)))
        return [(y0, min(rows, height - y0)) for y0 in range(0, height, rows)]

    def _accumulate(self, enc, prepared, width, height, band, bg_lin, region) -> None:
        """Clear the band's accumulator region to the background and blend every layer tile."""
        y0, bh = band
        acc, offset = region
        words = np.zeros(8, dtype=np.uint32)
        words[:4] = (width, height, y0, bh)
        words[4:8].view(np.float32)[:] = bg_lin
        scene_group = self.device.create_bind_group(
            layout=self._scene_layout,
            entries=[
                {"binding": 0, "resource": {"buffer": self._uniform(words)}},
                {"binding": 1, "resource": {"buffer": acc, "offset": offset, "size": 16 * width * bh}},
                {"binding": 2, "resource": {"buffer": self._decode_lut}},
            ],
        )
        cpass = enc.begin_compute_pass()
        cpass.set_pipeline(self._clear)
        cpass.set_bind_group(0, scene_group)
        cpass.set_bind_group(1, self._dummy_layer_group)
        groups = math.ceil(width * bh / 64)
        gx = min(groups, 65535)
        cpass.dispatch_workgroups(gx, math.ceil(groups / gx), 1)
        cpass.end()
        # One pass per layer: layers overlap in `acc`, and a pass boundary is where every
        # backend (GL included) is sure to order the writes; one layer's tiles do not overlap.
        for layer, tiles in prepared:
            opacity = blend_opacity(layer.opacity)
            cpass = enc.begin_compute_pass()
            cpass.set_pipeline(self._blend)
            cpass.set_bind_group(0, scene_group)
            for t in tiles:
                r0 = max(t.y0, y0) - t.y0
                r1 = min(t.y0 + t.height, y0 + bh) - t.y0
                if r1 <= r0:
                    continue
                ubuf = self._params_layer(t.x0, t.y0, t.width, r0, r1 - r0, opacity)
                cpass.set_bind_group(1, self._layer_group(ubuf, t.texture))
                cpass.dispatch_workgroups(math.ceil(t.width / 8), math.ceil((r1 - r0) / 8), 1)
            cpass.end()

    def _present(self, enc, target: _Target, region, width, height, band, background: Color, first: bool) -> None:
        """Encode the band's accumulated pixels into the target (and the outside, once)."""
        y0, bh = band
        words = np.zeros(20, dtype=np.uint32)
        f = words.view(np.float32)
        f[0:2] = target.scale
        f[2:4] = target.offset
        words[4:8] = (width, height, y0, bh)
        f[8:12] = np.asarray(background, dtype=np.float32) / 255.0
        words[12] = 1 if str(target.format).endswith("-srgb") else 0
        words[13] = 1 if first else 0
        acc, offset = region
        acc_binding = {"buffer": acc, "offset": offset, "size": max(16, 16 * width * bh)}
        group = self.device.create_bind_group(
            layout=self._view_layout,
            entries=[
                {"binding": 0, "resource": {"buffer": self._uniform(words)}},
                {"binding": 1, "resource": acc_binding},
            ],
        )
        rpass = enc.begin_render_pass(
            color_attachments=[
                {
                    "view": target.view,
                    "load_op": wgpu.LoadOp.clear if first else wgpu.LoadOp.load,
                    "store_op": wgpu.StoreOp.store,
                    "clear_value": (0.0, 0.0, 0.0, 0.0),
                }
            ]
        )
        rpass.set_pipeline(self._present_pipeline(str(target.format)))
        rpass.set_bind_group(0, group)
        rpass.draw(3, 1, 0, 0)
        rpass.end()

    def _render(self, enc, layers, targets: Sequence[_Target], background: Color, scene_size=None) -> None:
        prepared = self._prepare(layers, enc)
        if scene_size is None:  # every layer's rectangle counts, drawn or not
            width, height = canvas_size(list(layers))
        else:
            width, height = (int(v) for v in scene_size)
        bg_lin = background_linear(background)
        if width == 0 or height == 0:  # nothing to show: the background everywhere
            region = (self._acc_buffer(16), 0)
            for t in targets:
                self._present(enc, t, region, 0, 0, (0, 0), background, True)
            return
        bands = self._bands(width, height)
        # Each band gets its own region of the accumulation buffer (up to a memory cap):
        # reusing one region for the next band is a write-after-read hazard that some
        # backends do not order (GL on llvmpipe defers draws past later dispatches).
        region_bytes = (16 * width * bands[0][1] + 255) // 256 * 256
        n_regions = max(1, min(len(bands), self._acc_region_cap // region_bytes))
        acc = self._acc_buffer(n_regions * region_bytes)
        for i, band in enumerate(bands):
            region = (acc, (i % n_regions) * region_bytes)
            self._accumulate(enc, prepared, width, height, band, bg_lin, region)
            for t in targets:
                self._present(enc, t, region, width, height, band, background, i == 0)

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
        target = _Target(target_view, tuple(target_size), str(target_format), (float(sx), float(sy)),
                         (float(offset[0]), float(offset[1])))
        enc = encoder if encoder is not None else self.device.create_command_encoder()
        self._render(enc, layers, [target], bg, scene_size)
        if encoder is None:
            self.device.queue.submit([enc.finish()])

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
            out[y0 : y0 + h, x0 : x0 + w] = read_texture(self.device, tex, w, h)
            tex.destroy()
        return out

"""Scene building: what each entity shows at one time point (contract §4).

The store answers latest-at queries; this module turns their answers into an
ordered list of `Layer`s that every compositor (NumPy, wgpu, CuPy) draws the same way.
Which archetypes are drawn, and which components each is asked for, comes from the
archetype table (engine/archetypes.py: DRAWABLE); how each becomes a Layer is below:
Image, DepthImage and SegmentationImage hand their raw bytes on; an EncodedImage is
decoded first (engine/encoded.py); a SegmentationImage's class colours come from the
AnnotationContext of its nearest ancestor (itself included), as in Rerun 0.41.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
import weakref
from typing import Callable, Optional

import numpy as np
import pyarrow as pa

from pixelrun.engine import encoded
from pixelrun.engine.archetypes import (
    ANNOTATION_CONTEXT,
    DEPTH_IMAGE,
    DRAWABLE,
    ENCODED_IMAGE,
    IMAGE,
    SEGMENTATION_IMAGE,
    Archetype,
    undrawn_archetypes,
)
from pixelrun.engine.arrow_numpy import fixed_width_values, validity_mask
from pixelrun.engine.chunk import _parse_parts, format_from_struct, normalize_entity_path
from pixelrun.kernels.colormaps import DEFAULT_DEPTH_COLORMAP, Colormap
from pixelrun.kernels.errors import RenderWarning, user_stacklevel
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, validate
from pixelrun.kernels.layers import (  # noqa: F401 - Layer and the compositors' rules, re-exported
    DEFAULT_IMAGE_DRAW_ORDER,
    DEFAULT_OPACITY,
    Layer,
    LayerKind,
    blend_opacity,
    canvas_size,
    check_background,
    order_layers,
    premultiplied_background,
    q,
    srgb_decode,
    srgb_encode,
)

# ------------------------------------------------------------------ from the store
#
# scene_at asks the store one latest-at question per entity and drawable archetype (per
# entity, not per row or pixel) and builds Layers whose buffers are zero-copy views
# into the chunks (or, for an EncodedImage, its cached decoded frame).


class SceneWarning(RenderWarning):
    """An entity's image cannot be drawn (bad format, wrong byte count); it is left out."""


# Rerun 0.41's defaults for components an entity did not log (DepthImage's colormap:
# DEFAULT_DEPTH_COLORMAP, Turbo).
DEFAULT_MAGNIFICATION = 1  # MagnificationFilter.Nearest
# A SegmentationImage without Opacity, drawn in a view that also shows an Image,
# EncodedImage or DepthImage (Rerun's fallback; 1.0 when it is alone).
SEGMENTATION_OVER_IMAGES_OPACITY = 0.5
_COLORMAPS = frozenset(int(c) for c in Colormap)
_CONTEXT = ANNOTATION_CONTEXT.column("context")


def _last_instance(hit):
    """The last instance of a hit's component batch (Rerun's mono-component rule), or None."""
    if hit is None:
        return None
    values = hit.values
    n = len(values)
    return values[n - 1] if n else None


def _blob(hit) -> Optional[np.ndarray]:
    """The bytes of a buffer/blob hit as a 1-D uint8 view (no copy)."""
    inst = _last_instance(hit)
    if inst is None or not inst.is_valid:
        return None
    if isinstance(inst, pa.ListScalar):
        leaf = inst.values
        if leaf is None:
            return None
        return fixed_width_values(leaf, np.uint8)  # a view of the Arrow buffer
    # binary-typed blobs (tolerated, though Rerun writes list<uint8>)
    return np.frombuffer(inst.as_buffer(), dtype=np.uint8)


def _format(hit) -> Optional[ImageFormat]:
    inst = _last_instance(hit)
    if inst is None or not inst.is_valid:
        return None
    return format_from_struct(inst.as_py())  # ValueError on damage: reported by the caller


def _value(hit):
    """The hit's last instance as a Python value; None when absent or null."""
    inst = _last_instance(hit)
    return None if inst is None or not inst.is_valid else inst.as_py()


def _float(hit, default: float) -> float:
    v = _value(hit)
    return default if v is None else float(v)


def _problem(problems: Optional[list], msg: str) -> None:
    if problems is None:
        warnings.warn(SceneWarning(msg), stacklevel=user_stacklevel())
    else:
        problems.append(msg)


class _Query:
    """One drawable archetype's latest-at answer for one entity: its hits by field."""

    def __init__(self, archetype: Archetype, entity: str, hits: dict, problems: Optional[list]) -> None:
        self.archetype, self.entity, self.problems = archetype, entity, problems
        self.hits = {c.field: hits.get(c.column) for c in archetype.components}
        self.reported: list[str] = []  # kept with a cached layer, said again each time it is used

    def rows(self) -> tuple:
        """The row ids the answer came from (None for a component not found)."""
        return tuple(h.row_id if h is not None else None for h in self.hits.values())

    def problem(self, msg: str) -> None:
        self.reported.append(f"{self.entity}: {msg}")
        _problem(self.problems, self.reported[-1])

    def enum(self, field: str, allowed, default: int, what: str) -> int:
        v = _value(self.hits[field])
        if v is None:
            return default
        if v not in allowed:
            self.problem(f"{self.archetype.short_name}:{field} {v} is not a {what} value "
                         f"(expected {min(allowed)}..{max(allowed)}); drawn with the default {default}")
            return default
        return int(v)

    def magnification(self) -> int:
        # Bicubic (3) is drawn linear: the compositors sample nearest or linear
        return min(self.enum("magnification_filter", (1, 2, 3), DEFAULT_MAGNIFICATION, "MagnificationFilter"), 2)

    def value_range(self, field: str) -> Optional[tuple[float, float]]:
        v = _value(self.hits[field])
        if v is None:
            return None
        try:
            lo, hi = (float(x) for x in v)
        except (TypeError, ValueError):
            self.problem(f"{self.archetype.short_name}:{field} {v!r} is not a [min, max] pair; drawn with the "
                         "default range")
            return None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            self.problem(f"{self.archetype.short_name}:{field} [{lo}, {hi}] is not a range (expected finite "
                         "min < max); drawn with the default range")
            return None
        return (lo, hi)

    def raw_image(self) -> Optional[tuple[np.ndarray, ImageFormat]]:
        """(bytes, format) of a buffer + format archetype, checked; None when it is
        cleared or cannot be drawn (then the reason is reported)."""
        name = self.archetype.short_name
        try:
            fmt = _format(self.hits["format"])
        except ValueError as exc:
            self.problem(f"{name}:format cannot be read: {exc} (expected Rerun 0.41's "
                         "PixelFormat / ColorModel / ChannelDatatype values)")
            return None
        blob = _blob(self.hits["buffer"])
        if fmt is None or blob is None:
            return None  # cleared (an empty batch): nothing to show
        if self.archetype is not IMAGE and (fmt.pixel_format is not None or fmt.model != ColorModel.L):
            self.problem(f"{name} needs one channel per pixel (a channel datatype only), got {fmt.describe()}")
            return None
        msg = validate(int(blob.shape[0]), fmt)
        if msg is not None:
            self.problem(msg)
            return None
        return blob, fmt


def _image_layer(q: _Query, ctx: "_SceneContext") -> Optional[Layer]:
    got = q.raw_image()
    if got is None:
        return None
    return Layer(q.entity, q.hits["buffer"].row_id, got[0], got[1],
                 _float(q.hits["opacity"], DEFAULT_OPACITY),
                 _float(q.hits["draw_order"], IMAGE.default_draw_order),
                 value_range=q.value_range("value_range"), magnification=q.magnification())


def _depth_layer(q: _Query, ctx: "_SceneContext") -> Optional[Layer]:
    # meter (units per metre) and point_fill_ratio shape Rerun's 3D point cloud only;
    # a 2D view maps the raw values through depth_range
    got = q.raw_image()
    if got is None:
        return None
    return Layer(q.entity, q.hits["buffer"].row_id, got[0], got[1], DEFAULT_OPACITY,
                 _float(q.hits["draw_order"], DEPTH_IMAGE.default_draw_order), kind=LayerKind.DEPTH,
                 value_range=q.value_range("depth_range"),
                 colormap=q.enum("colormap", _COLORMAPS, int(DEFAULT_DEPTH_COLORMAP), "Colormap"),
                 magnification=q.magnification())


def _segmentation_layer(q: _Query, ctx: "_SceneContext") -> Optional[Layer]:
    got = q.raw_image()
    if got is None:
        return None
    blob, fmt = got
    context = ctx.annotation_context(q.entity)
    n = 256 if fmt.datatype == ChannelDatatype.U8 else 65536  # Rerun maps u8 and u16 ids; others past 65535 are not
    colors, key = ctx.class_colors(context, n, q)
    # opacity NaN: "not logged", settled once the whole view is known (scene_at)
    return Layer(q.entity, q.hits["buffer"].row_id, blob, fmt, _float(q.hits["opacity"], math.nan),
                 _float(q.hits["draw_order"], SEGMENTATION_IMAGE.default_draw_order),
                 kind=LayerKind.SEGMENTATION, class_colors=colors, class_colors_key=key)


def _encoded_layer(q: _Query, ctx: "_SceneContext") -> Optional[Layer]:
    blob = _blob(q.hits["blob"])
    if blob is None:
        return None  # cleared
    media_type = _value(q.hits["media_type"])
    hb = q.hits["blob"]
    gpu = ctx.gpu_decoder()
    cache = encoded.decoded_cache(ctx.store, "cpu" if gpu is None else "cuda")
    key = (hb.row_id, media_type)
    got = cache.get(key)
    if got is None:
        try:
            if gpu is None:
                got = encoded.decode(blob, media_type)
            else:  # a JPEG decoded on the device: the Layer's buffer is a CuPy array
                got = encoded.decode_on_device(blob, media_type, gpu, q.entity)
            cache.put(key, got, int(got[0].nbytes))
        except encoded.DecodeError as exc:
            got = str(exc)
            cache.put(key, got, len(got))  # a damaged frame is not decoded again every frame
    if isinstance(got, str):
        q.problem(f"EncodedImage cannot be decoded: {got}")
        return None
    return Layer(q.entity, hb.row_id, got[0], got[1], _float(q.hits["opacity"], DEFAULT_OPACITY),
                 _float(q.hits["draw_order"], ENCODED_IMAGE.default_draw_order),
                 magnification=q.magnification())


# How each drawable archetype becomes a Layer (which ones are drawn: DRAWABLE).
_BUILDERS: dict[str, Callable[[_Query, "_SceneContext"], Optional[Layer]]] = {
    IMAGE.name: _image_layer,
    DEPTH_IMAGE.name: _depth_layer,
    SEGMENTATION_IMAGE.name: _segmentation_layer,
    ENCODED_IMAGE.name: _encoded_layer,
}


# ------------------------------------------------------------------ class colours


def auto_class_colors(n: int) -> np.ndarray:
    """Rerun 0.41's colour for class ids 0..n-1 that no annotation context describes
    (re_viewer_context's auto_color_egui, class 0 included): hue = id * golden ratio,
    HSV(hue, 0.85, 0.5) taken as linear RGB and encoded to sRGB bytes the way egui
    does, all in float32 as Rerun computes it -> (n, 4) uint8, opaque."""
    f = np.float32
    golden = (np.sqrt(f(5)) - f(1)) / f(2)
    h = np.arange(n, dtype=np.float32) * golden
    h = h - np.floor(h)  # ids are >= 0: egui's (fract + 1).fract is this
    s, v = f(0.85), f(0.5)
    f6 = h * f(6)
    frac = f6 - np.floor(f6)
    p, qq, t = v * (f(1) - s), v * (f(1) - frac * s), v * (f(1) - (f(1) - frac) * s)
    sector = np.floor(f6).astype(np.int64) % 6
    vv = np.full_like(h, v)
    pp = np.full_like(h, p)
    r = np.choose(sector, [vv, qq, pp, pp, t, vv])
    g = np.choose(sector, [t, vv, vv, qq, pp, pp])
    b = np.choose(sector, [pp, pp, t, vv, vv, qq])
    lin = np.stack([r, g, b], axis=-1)
    # egui's gamma_u8_from_linear_f32 (values here are in (0, 1))
    srgb = np.where(lin <= f(0.0031308), f(3294.6) * lin,
                    f(269.025) * np.power(lin, f(1 / 2.4)) - f(14.025))
    out = np.full((n, 4), 255, dtype=np.uint8)
    out[:, :3] = np.floor(srgb + f(0.5)).astype(np.uint8)
    return out


_AUTO_COLORS: list = []  # the 65536-entry table, built on first use
_GPU_FALLBACK_SAID: list = []  # why EncodedImage is not decoded on the GPU, once said
_DECODE_DEVICES = ("cpu", "cuda")


def _auto_colors(n: int) -> np.ndarray:
    if not _AUTO_COLORS:
        _AUTO_COLORS.append(auto_class_colors(65536))
        _AUTO_COLORS[0].flags.writeable = False
    return _AUTO_COLORS[0][:n]


class _SceneContext:
    """What one scene_at call shares between entities: the store and time point, the
    annotation contexts resolved so far, and the store's class-colour tables."""

    def __init__(self, store, timeline: Optional[str], time: Optional[int], tables: dict,
                 decode_device: str = "cpu") -> None:
        self.store, self.timeline, self.time = store, timeline, time
        self.decode_device = decode_device
        self._holders: Optional[set] = None
        self._resolved: dict = {}
        self._tables = tables

    def gpu_decoder(self) -> Optional[encoded.GpuJpegDecoder]:
        """nvImageCodec's decoder when this scene is built for the CUDA device and one
        can run here; else None (Pillow decodes). Why not is said once per process."""
        if self.decode_device != "cuda":
            return None
        decoder, why = encoded.gpu_decoder()
        if decoder is None and not _GPU_FALLBACK_SAID:
            _GPU_FALLBACK_SAID.append(why)
            warnings.warn(encoded.GpuDecodeWarning(f"EncodedImage frames are decoded by Pillow on the CPU: {why}"),
                          stacklevel=user_stacklevel())
        return decoder

    def annotation_context(self, entity: str):
        """The AnnotationContext hit that applies to `entity` at this time point: the
        entity's own, else its nearest ancestor's that has one by latest-at (Rerun's
        AnnotationMap::find); None when no ancestor has one."""
        if self._holders is None:
            self._holders = set(self.store.entities(with_component=_CONTEXT))
        walked = []
        hit = None
        for path in _self_and_ancestors(entity):
            if path in self._resolved:
                hit = self._resolved[path]
                break
            walked.append(path)
            if path in self._holders:
                found = self.store.latest_at(path, [_CONTEXT], self.timeline, self.time).get(_CONTEXT)
                inst = _last_instance(found)
                if inst is not None and inst.is_valid:  # a cleared context (no instance) hands on upwards
                    hit = found
                    break
        for path in walked:  # every path walked resolves to what was found above it
            self._resolved[path] = hit
        return hit

    def class_colors(self, context, n: int, q: _Query) -> tuple[np.ndarray, int]:
        """The (n, 4) straight-alpha sRGB table for class ids 0..n-1 under `context`
        (a hit or None) and a key naming it; built once per context row."""
        row = context.row_id if context is not None else None
        key = (row, n)
        got = self._tables.get(key)
        if got is not None:
            return got
        table = _auto_colors(n).copy()
        if context is not None:
            try:
                _apply_context(table, _last_instance(context).values)
            except (pa.ArrowException, KeyError, TypeError, ValueError) as exc:
                q.problem(f"its AnnotationContext (row {row}) cannot be read ({exc}); "
                          "classes drawn with Rerun's automatic colours")
                table = _auto_colors(n).copy()
        table.flags.writeable = False
        if len(self._tables) >= 64:  # one entry per context row in use: bounded all the same
            self._tables.clear()
        # keyed by content: GPU caches outlive stores, and row ids repeat across files
        digest = hashlib.blake2b(table.tobytes(), digest_size=8).digest()
        got = self._tables[key] = (table, int.from_bytes(digest, "little") >> 1)
        return got


def _self_and_ancestors(entity: str) -> list[str]:
    """["/a/b", "/a", "/"] for "/a/b": split on unescaped slashes only (contract §5)."""
    parts = [p for p in _parse_parts(entity) if p]
    return ["/" + "/".join(parts[:k]) for k in range(len(parts), 0, -1)] + ["/"]


def _apply_context(table: np.ndarray, elements: pa.StructArray) -> None:
    """Write an AnnotationContext instance's class colours into `table` (vectorized):
    a described class takes its colour; one described without a colour takes the
    automatic colour of its info id (Rerun's ResolvedAnnotationInfo::color)."""
    if len(elements) == 0:
        return
    class_id = fixed_width_values(elements.field("class_id"), np.int64)
    info = elements.field("class_description").field("info")
    info_id = fixed_width_values(info.field("id"), np.int64)
    color = info.field("color")
    has = validity_mask(color)
    packed = np.where(has, fixed_width_values(color, np.uint32), 0).astype(np.uint32)
    n = table.shape[0]
    inside = class_id < n
    auto = _auto_colors(65536)
    cols = np.empty((len(class_id), 4), dtype=np.uint8)
    for i, shift in enumerate((24, 16, 8, 0)):  # Rgba32 is 0xRRGGBBAA
        cols[:, i] = (packed >> shift) & 0xFF
    _as_rerun_premultiplies(cols)
    cols[~has] = auto[info_id[~has]]
    table[class_id[inside]] = cols[inside]


def _as_rerun_premultiplies(cols: np.ndarray) -> None:
    """Make translucent class colours (0 < alpha < 255) show as Rerun 0.41 shows them.

    Rerun premultiplies a class colour by its alpha on the sRGB byte values
    (round(c * a / 255)) and its texture decodes that to linear light; the compositors
    here premultiply in linear light (contract §4). The straight-alpha colour stored is
    the one whose linear-light premultiple is Rerun's: sRGB(decode(round(c a / 255)) / a).
    Measured: (0, 255, 0, 128) over white shows (187, 220, 187) in Rerun's viewer, not
    (187, 255, 187)."""
    a = cols[:, 3].astype(np.float64)
    part = (a > 0) & (a < 255)
    if not part.any():
        return
    c = cols[part, :3].astype(np.float64)
    alpha = a[part, None] / 255.0
    premul = srgb_decode(np.floor(c * alpha + 0.5) / 255.0)
    cols[part, :3] = q(srgb_encode(np.minimum(premul / alpha, 1.0)))


# ------------------------------------------------------------------ the scene


def scene_at(
    store,
    timeline: Optional[str],
    time: Optional[int],
    entity: Optional[str] = None,
    problems: Optional[list] = None,
    decode_device: str = "cpu",
) -> list[Layer]:
    """The layers to draw at `time` on `timeline` (contract §4), in draw order.

    Each drawable archetype (engine/archetypes.py: DRAWABLE) is asked for its
    components by latest-at, one question per entity. An entity is in the scene for
    that archetype when its required components (buffer and format; an EncodedImage's
    blob) resolve; the others resolve on their own with Rerun 0.41's defaults (draw
    order -10 for images, -20 for depth, 0 for segmentation; a SegmentationImage
    without Opacity is drawn at 0.5 over other images, 1.0 alone). `entity` restricts
    to that subtree. timeline None: static data only; time None: the latest data on
    the timeline.

    An image that cannot be drawn (unknown enum value, byte count not matching its
    format, an undecodable EncodedImage) is left out with a message naming the
    entity: appended to `problems` when a list is given, else issued as a
    SceneWarning. Everything else is still drawn. Entities of archetypes the scene
    does not draw are named by `undrawn_notices`.

    decode_device "cuda" (for the CuPy backend only): JPEG EncodedImages are decoded by
    nvImageCodec on the GPU and their layers' buffers are CuPy arrays (kernels/layers.py);
    where nvImageCodec or a CUDA device is missing, or a frame fails there, Pillow decodes
    (a GpuDecodeWarning says why). "cpu" (default): every buffer is a NumPy view.
    """
    if decode_device not in _DECODE_DEVICES:
        raise ValueError(f"decode_device must be one of {_DECODE_DEVICES}, got {decode_device!r}")
    layers: list[Layer] = []
    caches = _caches(store)
    cache = caches["layers"]
    ctx = _SceneContext(store, timeline, time, caches["class_colors"], decode_device)
    for arch in DRAWABLE:
        build = _BUILDERS[arch.name]
        required = arch.required_columns
        for ent in store.entities(under=entity, with_component=required[0]):
            hits = store.latest_at(ent, arch.columns, timeline, time)
            if any(hits.get(c) is None for c in required):
                continue
            q = _Query(arch, ent, hits, problems)
            key = q.rows()
            if arch is SEGMENTATION_IMAGE:  # its colours depend on the context row too
                context = ctx.annotation_context(ent)
                key += (context.row_id if context is not None else None,)
            elif arch is ENCODED_IMAGE:  # a layer decoded on the device is not one for the CPU
                key += (decode_device,)
            cached = cache.get((arch.name, ent))
            if cached is not None and cached[0] == key:
                for msg in cached[2]:  # drawn with a default: said on every frame, as when first built
                    _problem(problems, msg)
                layers.append(cached[1])
                continue
            layer = build(q, ctx)
            if layer is None:
                continue
            cache[(arch.name, ent)] = (key, layer, q.reported)  # one entry per entity and archetype: bounded
            layers.append(layer)
    return order_layers(_settle_segmentation_opacity(layers))


def _settle_segmentation_opacity(layers: list[Layer]) -> list[Layer]:
    """Rerun's fallback Opacity of a SegmentationImage that logged none: 0.5 when the
    view also shows another image (Image, EncodedImage, DepthImage), else 1.0."""
    unset = [i for i, l in enumerate(layers) if l.kind == LayerKind.SEGMENTATION and math.isnan(l.opacity)]
    if not unset:
        return layers
    over_images = any(l.kind != LayerKind.SEGMENTATION for l in layers)
    opacity = SEGMENTATION_OVER_IMAGES_OPACITY if over_images else DEFAULT_OPACITY
    out = list(layers)
    for i in unset:
        out[i] = dataclasses.replace(out[i], opacity=opacity)
    return out


def undrawn_notices(store, under: Optional[str], named: set) -> list[str]:
    """"/cam/depth: DepthImage is not drawn yet" for each entity under `under` (all when
    None) whose components the store skipped as not drawable (DepthImage, Points2D, ...),
    unless already in `named`; the entities reported are added to `named`, so a caller
    keeping one set per store names each entity once."""
    skipped = getattr(store, "skipped_components", None)
    if skipped is None:
        return []
    by_entity: dict[str, list[str]] = {}
    for ent, comp in skipped():
        if ent not in named:
            by_entity.setdefault(ent, []).append(comp)
    under = None if under is None else normalize_entity_path(under)
    prefix = None if under in (None, "/") else under.rstrip("/") + "/"
    out = []
    for ent in sorted(by_entity):
        if prefix is not None and ent != under and not ent.startswith(prefix):
            continue
        names = undrawn_archetypes(ent, by_entity[ent])
        if names:
            named.add(ent)
            out.append(f"{ent}: {', '.join(names)} {'is' if len(names) == 1 else 'are'} not drawn yet")
    return out


# store -> {"layers": {(archetype, entity): (row-id key, Layer)}, "class_colors": {...}}:
# the viewer asks for the same scene every frame
_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _caches(store) -> dict:
    try:
        cache = _CACHES.get(store)
        if cache is None:
            cache = _CACHES[store] = {"layers": {}, "class_colors": {}}
        return cache
    except TypeError:  # a store that cannot be weakly referenced: no cache
        return {"layers": {}, "class_colors": {}}


def times_of(store, timeline: str, entity: Optional[str] = None) -> np.ndarray:
    """Sorted distinct time points on `timeline` where something drawn changes: a
    drawable archetype's required component (an image's buffer or format, an encoded
    blob) or an annotation context, over the entities under `entity` (all when None)."""
    parts = [np.empty(0, np.int64)]
    for arch in DRAWABLE + (ANNOTATION_CONTEXT,):
        for ent in store.entities(under=entity, with_component=arch.required_columns[0]):
            for col in arch.required_columns:
                parts.append(store.index_times(ent, timeline, col))
    return np.unique(np.concatenate(parts))

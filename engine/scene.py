"""Scene building: what each entity shows at one time point (contract §4).

The store answers latest-at queries; this module turns their answers into an
ordered list of `Layer`s that every compositor (NumPy, wgpu, CuPy) draws the same way.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Optional

import numpy as np
import pyarrow as pa

from pixelrun.engine.archetypes import IMAGE, undrawn_archetypes
from pixelrun.engine.chunk import format_from_struct, normalize_entity_path
from pixelrun.kernels.errors import RenderWarning, user_stacklevel
from pixelrun.kernels.formats import ImageFormat, validate
from pixelrun.kernels.layers import (  # noqa: F401 - Layer and the compositors' rules, re-exported
    DEFAULT_IMAGE_DRAW_ORDER,
    DEFAULT_OPACITY,
    Layer,
    blend_opacity,
    canvas_size,
    check_background,
    order_layers,
    premultiplied_background,
)

# ------------------------------------------------------------------ from the store
#
# scene_at asks the store one latest-at question per image entity (per entity, not per
# row or pixel) and builds Layers whose buffers are zero-copy views into the chunks.


class SceneWarning(RenderWarning):
    """An entity's image cannot be drawn (bad format, wrong byte count); it is left out."""


# What a scene asks of each entity, from the archetype table: the components an Image
# needs to be drawn (buffer, format), then those with defaults (opacity, draw order).
_IMAGE_QUERY = IMAGE.required_columns + IMAGE.optional_columns


def _last_instance(hit):
    """The last instance of a hit's component batch (Rerun's mono-component rule), or None."""
    values = hit.values
    n = len(values)
    return values[n - 1] if n else None


def _blob(hit) -> Optional[np.ndarray]:
    """The image bytes of an Image:buffer hit as a 1-D uint8 view (no copy)."""
    inst = _last_instance(hit)
    if inst is None or not inst.is_valid:
        return None
    if isinstance(inst, pa.ListScalar):
        leaf = inst.values
        if leaf is None:
            return None
        return leaf.to_numpy(zero_copy_only=True)
    # binary-typed blobs (tolerated, though Rerun writes list<uint8>)
    return np.frombuffer(inst.as_buffer(), dtype=np.uint8)


def _format(hit) -> Optional[ImageFormat]:
    inst = _last_instance(hit)
    if inst is None or not inst.is_valid:
        return None
    return format_from_struct(inst.as_py())  # ValueError on damage: reported by the caller


def _float(hit, default: float) -> float:
    if hit is None:
        return default
    inst = _last_instance(hit)
    if inst is None or not inst.is_valid:
        return default
    return float(inst.as_py())


def _problem(problems: Optional[list], msg: str) -> None:
    if problems is None:
        warnings.warn(SceneWarning(msg), stacklevel=user_stacklevel())
    else:
        problems.append(msg)


def scene_at(
    store,
    timeline: Optional[str],
    time: Optional[int],
    entity: Optional[str] = None,
    problems: Optional[list] = None,
) -> list[Layer]:
    """The layers to draw at `time` on `timeline` (contract §4), in draw order.

    An entity is in the scene when its Image:buffer and Image:format both resolve by
    latest-at; Image:opacity and Image:draw_order resolve on their own, defaulting to
    1.0 and -10. `entity` restricts to that subtree. timeline None: static data only;
    time None: the latest data on the timeline.

    An image that cannot be drawn (unknown enum value, byte count not matching its
    format) is left out with a message naming the entity: appended to `problems` when
    a list is given, else issued as a SceneWarning. Everything else is still drawn.
    Entities of archetypes the scene does not draw yet are named by `undrawn_notices`.
    """
    buf_c, fmt_c, op_c, do_c = (IMAGE.column(f) for f in ("buffer", "format", "opacity", "draw_order"))
    layers: list[Layer] = []
    cache = _layer_cache(store)
    for ent in store.entities(under=entity, with_component=buf_c):
        hits = store.latest_at(ent, _IMAGE_QUERY, timeline, time)
        hb, hf = hits.get(buf_c), hits.get(fmt_c)
        if hb is None or hf is None:
            continue
        hop, hdo = hits.get(op_c), hits.get(do_c)
        # rows never change once logged: the same four rows give the same Layer
        key = (hb.row_id, hf.row_id, hop.row_id if hop else None, hdo.row_id if hdo else None)
        cached = cache.get(ent)
        if cached is not None and cached[0] == key:
            layers.append(cached[1])
            continue
        try:
            # a static format serves every frame: parse it once
            fmt = cached[1].format if cached is not None and cached[0][1] == hf.row_id else _format(hf)
        except ValueError as exc:
            _problem(
                problems,
                f"{ent}: Image:format cannot be read: {exc} (expected Rerun 0.41's "
                "PixelFormat / ColorModel / ChannelDatatype values)",
            )
            continue
        blob = _blob(hb)
        if fmt is None or blob is None:
            continue  # cleared (an empty batch): nothing to show
        msg = validate(int(blob.shape[0]), fmt)
        if msg is not None:
            _problem(problems, f"{ent}: {msg}")
            continue
        layer = Layer(
            ent,
            hb.row_id,
            blob,
            fmt,
            _float(hop, DEFAULT_OPACITY),
            _float(hdo, IMAGE.default_draw_order),
        )
        cache[ent] = (key, layer)  # one entry per entity: bounded, at most one frame each
        layers.append(layer)
    return order_layers(layers)


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


# store -> {entity: (row-id key, Layer)}: the viewer asks for the same scene every frame
_LAYER_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _layer_cache(store) -> dict:
    try:
        cache = _LAYER_CACHES.get(store)
        if cache is None:
            cache = _LAYER_CACHES[store] = {}
        return cache
    except TypeError:  # a store that cannot be weakly referenced: no cache
        return {}


def times_of(store, timeline: str, entity: Optional[str] = None) -> np.ndarray:
    """Sorted distinct time points on `timeline` where image data (a buffer or a
    format row) is logged, over the entities under `entity` (all when None)."""
    buf_c, fmt_c = IMAGE.required_columns
    parts = [np.empty(0, np.int64)]
    for ent in store.entities(under=entity, with_component=buf_c):
        parts.append(store.index_times(ent, timeline, buf_c))
        parts.append(store.index_times(ent, timeline, fmt_c))
    return np.unique(np.concatenate(parts))

"""DepthImage and SegmentationImage in the scene and on screen (with AnnotationContext),
rendered through pixelrun.engine.render on the NumPy oracle and on wgpu.

Expected pixels are computed here, independently of the code under test: depth through
Rerun 0.41's colormap formulas written out below (Turbo's polynomial, Grayscale's
identity) over the range Rerun uses; class colours from Rerun's rule (an annotation
colour, else HSV(id x golden ratio, 0.85, 0.5) taken as linear RGB, via colorsys), and
against colours measured in Rerun 0.41's own headless viewer.
"""

from __future__ import annotations

import colorsys
import math
import warnings

import numpy as np
import pyarrow as pa
import pytest
from store_helpers import mk

import pixelrun as rr
from pixelrun.engine import api, scene
from pixelrun.engine.archetypes import ANNOTATION_CONTEXT, DEPTH_IMAGE
from pixelrun.engine.scene import scene_at
from pixelrun.engine.store.store import ChunkStore
from pixelrun.kernels.layers import LayerKind
from pixelrun.kernels.wgpu.backend import is_available

WGPU_OK, WHY = is_available()
BACKENDS = ["numpy", pytest.param("wgpu", marks=pytest.mark.skipif(not WGPU_OK, reason=f"no wgpu adapter: {WHY}"))]
TOL = {"numpy": 1, "wgpu": 1}  # table steps (kernels/colormaps.py) are within 1 LSB of the formula


def _store(log) -> ChunkStore:
    rec = rr.RecordingStream("depth-seg-test")
    mem = rec.memory_recording()
    log(rec)
    rec.flush()
    store = ChunkStore(memory_limit=None)  # what render and view keep by default
    store.ingest_bytes(mem.rrd_bytes())
    rec.close()
    return store


def _render(store, backend, **kw) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return api.render(store, backend=backend, **kw)


def _close(got, want, tol):
    got, want = np.asarray(got, int), np.asarray(want, int)
    assert got.shape == want.shape, (got.shape, want.shape)
    bad = np.argwhere(np.abs(got - want) > tol)
    assert bad.size == 0, (bad[:3].tolist(), got[tuple(bad[0][:-1])].tolist(), want[tuple(bad[0][:-1])].tolist())


def _byte(x):
    return np.floor(np.clip(np.asarray(x, np.float64), 0, 1) * 255 + 0.5)


def turbo(t) -> np.ndarray:
    """Rerun's Turbo: the published polynomial fit, sRGB out (Rerun's colormap.wgsl)."""
    t = np.clip(np.asarray(t, np.float64), 0, 1)
    r = [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943]
    g = [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604]
    b = [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973]
    powers = np.stack([t**k for k in range(6)], axis=-1)
    return np.stack([_byte(powers @ np.array(c)) for c in (r, g, b)], axis=-1)


def grey(t) -> np.ndarray:
    v = _byte(t)
    return np.stack([v, v, v], axis=-1)


def auto_color(class_id: int) -> tuple:
    """Rerun's colour for a class without one (egui: HSV as linear RGB, then sRGB bytes).
    The hue is id x golden ratio as Rerun computes it, in float32 (at large ids float32
    loses the hue's fraction: Rerun's colours there are float32's); the rest in float64."""
    h = float(np.float32(class_id) * np.float32((math.sqrt(5) - 1) / 2)) % 1.0
    lin = colorsys.hsv_to_rgb(h, 0.85, 0.5)
    return tuple(int(math.floor((12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055) * 255 + 0.5))
                 for c in lin) + (255,)


def _lin(c):
    c = np.asarray(c, np.float64) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _enc(x):
    x = np.asarray(x, np.float64)
    return _byte(np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0) ** (1 / 2.4) - 0.055))


def rerun_translucent(rgb, a) -> tuple:
    """A class colour with 0 < alpha < 255 as Rerun 0.41 shows it, as straight-alpha sRGB:
    Rerun premultiplies the sRGB bytes (round(c a / 255)) and decodes that to linear
    light; this is the colour whose linear premultiple is the same."""
    premul = _lin(np.floor(np.asarray(rgb, np.float64) * a / 255 + 0.5))
    return tuple(int(v) for v in _enc(np.minimum(premul / (a / 255), 1.0))) + (a,)


def _opaque(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    return np.concatenate([rgb, np.full(rgb.shape[:-1] + (1,), 255)], axis=-1)


# ------------------------------------------------------------------ depth


DEPTHS = {
    "u8": np.array([[0, 10, 50], [100, 200, 250]], np.uint8),
    "u16": np.array([[0, 1000, 2000], [3000, 4000, 65535 // 16]], np.uint16),
    "f32": np.array([[0.0, 0.5, 1.25], [2.0, 3.5, 4.0]], np.float32),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", sorted(DEPTHS))
def test_depth_default_turbo_over_zero_to_max(backend, kind):
    d = DEPTHS[kind]
    store = _store(lambda rec: rec.log("depth", rr.DepthImage(d, meter=1000.0), static=True))
    (layer,) = scene_at(store, None, None)
    assert (layer.kind, layer.colormap, layer.value_range, layer.draw_order) == (LayerKind.DEPTH, 5, None, -20.0)
    got = _render(store, backend)
    # Rerun 0.41's default range: [0, largest finite value] (measured in its viewer)
    _close(got, _opaque(turbo(d.astype(np.float64) / float(d.max()))), TOL[backend])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", sorted(DEPTHS))
def test_depth_range_and_colormap_as_logged(backend, kind):
    d = DEPTHS[kind]
    lo, hi = float(d.max()) * 0.25, float(d.max()) * 0.75
    store = _store(lambda rec: rec.log("depth", rr.DepthImage(d, colormap="grayscale", depth_range=[lo, hi]),
                                       static=True))
    got = _render(store, backend)
    _close(got, _opaque(grey((d.astype(np.float64) - lo) / (hi - lo))), TOL[backend])


def test_rerun_measured_turbo_default():
    """Rerun 0.41's headless viewer showed u16 depth 0, 1000, 2000, 3000, 4000 (no range)
    as these colours (screenshot pixels)."""
    d = np.array([[0, 1000, 2000, 3000, 4000]], np.uint16)
    store = _store(lambda rec: rec.log("depth", rr.DepthImage(d, meter=1000.0), static=True))
    got = _render(store, "numpy")
    assert got[0, :, :3].tolist() == [[35, 23, 27], [38, 189, 225], [150, 250, 80], [255, 128, 29], [144, 13, 0]]


def test_depth_sits_below_images_by_default():
    def log(rec):
        rec.log("a_img", rr.Image(np.full((2, 3, 3), 255, np.uint8), opacity=0.5), static=True)
        rec.log("z_depth", rr.DepthImage(np.zeros((2, 3), np.uint16)), static=True)

    layers = scene_at(_store(log), None, None)
    assert [(l.entity, l.draw_order) for l in layers] == [("/z_depth", -20.0), ("/a_img", -10.0)]


def _raw_store(entity: str, comps: dict) -> ChunkStore:
    store = ChunkStore(memory_limit=None)
    store.add_chunk(mk(entity, [1], None, comps))
    return store


def _mono(values, type_) -> pa.Array:
    return pa.array([[v] for v in values], type=pa.list_(type_))


def test_bad_depth_components_are_named_and_defaults_used():
    d = np.array([[0, 100]], np.uint16)
    blob = pa.array([[list(d.reshape(-1).view(np.uint8))]], type=pa.list_(DEPTH_IMAGE.component("buffer").arrow_type))
    fmt = pa.array([[{"width": 2, "height": 1, "channel_datatype": 8}]],
                   type=pa.list_(DEPTH_IMAGE.component("format").arrow_type))
    store = _raw_store("d", {"DepthImage:buffer": blob, "DepthImage:format": fmt,
                             "DepthImage:colormap": _mono([99], pa.uint8()),
                             "DepthImage:depth_range": pa.array([[[5.0, 5.0]]], type=pa.list_(
                                 DEPTH_IMAGE.component("depth_range").arrow_type))})
    problems: list = []
    (layer,) = scene_at(store, None, None, problems=problems)
    assert (layer.colormap, layer.value_range) == (5, None)
    again: list = []
    assert scene_at(store, None, None, problems=again)[0].buffer is layer.buffer  # the cached layer ...
    assert again == problems  # ... still says what is wrong with it (the viewer shows it every frame)
    assert sorted(problems) == [
        "/d: DepthImage:colormap 99 is not a Colormap value (expected 1..12); drawn with the default 5",
        "/d: DepthImage:depth_range [5.0, 5.0] is not a range (expected finite min < max); "
        "drawn with the default range",
    ]


def test_depth_with_a_colour_format_is_left_out_the_rest_drawn():
    rgb = np.zeros((1, 2, 3), np.uint8)
    blob = pa.array([[list(rgb.reshape(-1))]], type=pa.list_(DEPTH_IMAGE.component("buffer").arrow_type))
    fmt = pa.array([[{"width": 2, "height": 1, "color_model": 2, "channel_datatype": 6}]],
                   type=pa.list_(DEPTH_IMAGE.component("format").arrow_type))
    store = _raw_store("d", {"DepthImage:buffer": blob, "DepthImage:format": fmt})
    problems: list = []
    assert scene_at(store, None, None, problems=problems) == []
    assert problems == ["/d: DepthImage needs one channel per pixel (a channel datatype only), got RGB/U8 2x1"]


# ------------------------------------------------------------------ segmentation


def test_auto_colors_match_rerun_and_the_hsv_rule():
    # measured in Rerun 0.41's headless viewer: ids 0, 1, 2, 7, 300, no annotation context
    measured = {0: (188, 77, 77), 1: (77, 123, 188), 2: (154, 188, 77), 7: (86, 188, 77), 300: (77, 188, 142)}
    table = scene.auto_class_colors(65536)
    for i, rgb in measured.items():
        assert tuple(table[i]) == rgb + (255,)
    sample = np.r_[0:300, 65000:65536]
    want = np.array([auto_color(int(i)) for i in sample])
    assert np.abs(table[sample].astype(int) - want).max() <= 1  # float32 (Rerun) vs float64 (here)


MASK8 = np.array([[0, 1, 2, 3], [7, 3, 2, 1]], np.uint8)
MASK16 = np.array([[0, 1, 2, 3], [300, 65535, 2, 1]], np.uint16)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", [MASK8, MASK16], ids=["u8", "u16"])
def test_segmentation_alone_without_context_uses_rerun_auto_colours(backend, mask):
    store = _store(lambda rec: rec.log("seg", rr.SegmentationImage(mask), static=True))
    (layer,) = scene_at(store, None, None)
    assert (layer.kind, layer.opacity, layer.draw_order) == (LayerKind.SEGMENTATION, 1.0, 0.0)
    assert layer.class_colors.shape == ((256, 4) if mask.dtype == np.uint8 else (65536, 4))
    want = np.array([[auto_color(int(i)) for i in row] for row in mask])
    _close(_render(store, backend), want, 1)


CONTEXT = [rr.AnnotationInfo(id=1, label="car", color=(255, 0, 0)), (2, "person", (0, 255, 0, 128)), (3, "sky")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", [MASK8, MASK16], ids=["u8", "u16"])
def test_segmentation_with_context_colours_described_classes(backend, mask):
    def log(rec):
        rec.log("cam", rr.AnnotationContext(CONTEXT), static=True)
        rec.log("cam/seg", rr.SegmentationImage(mask), static=True)

    got = _render(_store(log), backend)
    # 2: translucent, as Rerun shows it; 3: described, no colour
    colours = {1: (255, 0, 0, 255), 2: rerun_translucent((0, 255, 0), 128), 3: auto_color(3)}
    want = np.array([[colours.get(int(i)) or auto_color(int(i)) for i in row] for row in mask])
    _close(got, want, 1)


def _context_colour(store, t, entity="/a/b/seg") -> tuple:
    out = _render(store, "numpy", timeline="step", time=t, entity=entity)
    return tuple(out[0, 0])


def test_nearest_ancestor_context_wins_and_changes_over_time():
    def log(rec):
        rec.log("a", rr.AnnotationContext([(1, "far", (255, 0, 0))]), static=True)
        rec.set_time("step", sequence=0)
        rec.log("a/b/seg", rr.SegmentationImage(np.ones((1, 1), np.uint8)))
        rec.set_time("step", sequence=5)
        rec.log("a/b", rr.AnnotationContext([(1, "near", (0, 0, 255))]))
        rec.set_time("step", sequence=8)
        rec.log("a/b", rr.AnnotationContext([(1, "near, later", (0, 255, 0))]))

    store = _store(log)
    assert api.time_points(store, "step").tolist() == [0, 5, 8]  # a context change is a new frame
    # before /a/b has one, /a's applies; then the nearer one, as it changes (and back)
    seen = [_context_colour(store, t) for t in (0, 6, 9, 4, 7)]
    assert seen == [(255, 0, 0, 255), (0, 0, 255, 255), (0, 255, 0, 255), (255, 0, 0, 255), (0, 0, 255, 255)]


def test_context_on_the_entity_itself_and_unrelated_branches():
    def log(rec):
        rec.log("x", rr.AnnotationContext([(1, "other branch", (255, 0, 0))]), static=True)
        rec.log("y/seg", rr.AnnotationContext([(1, "own", (0, 0, 255))]), static=True)
        rec.log("y/seg", rr.SegmentationImage(np.ones((1, 1), np.uint8)), static=True)
        rec.log("z/seg", rr.SegmentationImage(np.ones((1, 1), np.uint8)), static=True)

    store = _store(log)
    assert tuple(_render(store, "numpy", entity="y/seg")[0, 0]) == (0, 0, 255, 255)
    assert tuple(_render(store, "numpy", entity="z/seg")[0, 0]) == auto_color(1)  # /x is not its ancestor


@pytest.mark.parametrize("backend", BACKENDS)
def test_segmentation_over_an_image_is_half_opaque_unless_logged(backend):
    white = np.full((2, 4, 3), 255, np.uint8)

    def log(rec, opacity=None):
        rec.log("/", rr.AnnotationContext([(1, "red", (255, 0, 0))]), static=True)
        rec.log("img", rr.Image(white), static=True)
        rec.log("seg", rr.SegmentationImage(np.ones((2, 4), np.uint8), opacity=opacity), static=True)

    store = _store(log)
    seg = [l for l in scene_at(store, None, None) if l.kind == LayerKind.SEGMENTATION][0]
    assert seg.opacity == 0.5
    got = _render(store, backend)
    # red at 0.5 over white in linear light: R 1.0, G/B 0.5 linear -> sRGB 188 (Rerun's viewer: 187)
    _close(got, np.broadcast_to([255, 188, 188, 255], got.shape), TOL[backend])
    logged = _store(lambda rec: log(rec, opacity=1.0))
    _close(_render(logged, backend), np.broadcast_to([255, 0, 0, 255], got.shape), 0)


def test_segmentation_cache_key_includes_the_context_row():
    def log(rec):
        rec.log("cam/seg", rr.SegmentationImage(np.ones((1, 1), np.uint8)), static=True)
        rec.set_time("step", sequence=1)
        rec.log("cam", rr.AnnotationContext([(1, "a", (10, 20, 30))]))
        rec.set_time("step", sequence=2)
        rec.log("cam", rr.AnnotationContext([(1, "b", (40, 50, 60))]))

    store = _store(log)
    first = scene_at(store, "step", 1)[0]
    second = scene_at(store, "step", 2)[0]
    assert first.row_id == second.row_id  # same image row ...
    assert first.class_colors_key != second.class_colors_key  # ... different colours
    assert tuple(first.class_colors[1]) == (10, 20, 30, 255) and tuple(second.class_colors[1]) == (40, 50, 60, 255)
    again = scene_at(store, "step", 2)[0]  # unchanged rows: the cached layer's buffer and table
    assert again.buffer is second.buffer and again.class_colors is second.class_colors


@pytest.mark.parametrize("backend", BACKENDS)
def test_family_composite_depth_image_segmentation(backend):
    """One view of all three with Rerun's default orders: depth (-20) under the image
    (-10) under the segmentation (0, at 0.5 over images)."""
    def log(rec):
        rec.log("cam", rr.AnnotationContext([(1, "blue", (0, 0, 255))]), static=True)
        rec.log("cam/depth", rr.DepthImage(np.full((2, 2), 1000, np.uint16), colormap="grayscale"), static=True)
        rec.log("cam/img", rr.Image(np.zeros((2, 2, 4), np.uint8)), static=True)  # fully transparent RGBA
        rec.log("cam/seg", rr.SegmentationImage(np.array([[0, 1]], np.uint8)), static=True)

    store = _store(log)
    assert [l.entity for l in scene_at(store, None, None)] == ["/cam/depth", "/cam/img", "/cam/seg"]
    got = _render(store, backend)
    assert got.shape == (2, 2, 4)
    white = 1.0  # depth 1000 over its default range [0, 1000]: t = 1, grayscale white
    lin = lambda c: (c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4)  # noqa: E731
    enc = lambda x: int(_byte(12.92 * x if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055))  # noqa: E731
    c0 = [lin(c) for c in auto_color(0)[:3]]
    want00 = [enc(0.5 * c + 0.5 * white) for c in c0] + [255]
    want01 = [enc(0.5 * white), enc(0.5 * white), enc(0.5 + 0.5 * white), 255]
    _close(got[0, 0], want00, 1)
    _close(got[0, 1], want01, 1)
    _close(got[1], [[255, 255, 255, 255]] * 2, 1)


def test_cleared_context_hands_on_upwards_and_an_empty_one_does_not():
    def log(rec):
        rec.log("a", rr.AnnotationContext([(1, "far", (255, 0, 0))]), static=True)
        rec.set_time("step", sequence=0)
        rec.log("a/b/seg", rr.SegmentationImage(np.ones((1, 1), np.uint8)))
        rec.set_time("step", sequence=2)
        rec.log("a/b", rr.AnnotationContext([(1, "near", (0, 0, 255))]))

    store = _store(log)
    ctx_type = pa.list_(ANNOTATION_CONTEXT.component("context").arrow_type)
    # a clear at 5 (no instance: Rerun's latest-at finds nothing there), an empty context at 8 (one
    # instance describing no class: it is the nearest context, so class 1 takes its automatic colour)
    store.add_chunk(mk("a/b", [1], {"step": [5]}, {"AnnotationContext:context": pa.array([[]], ctx_type)}, hi=1 << 62))
    store.add_chunk(mk("a/b", [2], {"step": [8]}, {"AnnotationContext:context": pa.array([[[]]], ctx_type)},
                       hi=1 << 62))
    seen = [_context_colour(store, t) for t in (3, 6, 9)]
    assert seen == [(0, 0, 255, 255), (255, 0, 0, 255), auto_color(1)]


def test_context_lookup_splits_paths_on_unescaped_slashes_only():
    def log(rec):
        rec.log(["cam/left"], rr.AnnotationContext([(1, "escaped", (0, 0, 255))]), static=True)  # "/cam\/left"
        rec.log("cam", rr.AnnotationContext([(1, "plain", (255, 0, 0))]), static=True)
        rec.log(["cam/left", "seg"], rr.SegmentationImage(np.ones((1, 1), np.uint8)), static=True)

    store = _store(log)
    (layer,) = scene_at(store, None, None)
    assert layer.entity == "/cam\\/left/seg"
    assert tuple(layer.class_colors[1]) == (0, 0, 255, 255)  # its parent is /cam\/left, not /cam


@pytest.mark.parametrize("backend", BACKENDS)
def test_translucent_class_colours_over_white_match_rerun(backend):
    """Rerun 0.41's headless viewer showed these translucent class colours, drawn at
    opacity 1 over a white image, as (187, 220, 187), (231, 224, 224), (128, 128, 230):
    its premultiplication happens on sRGB bytes, not in linear light."""
    def log(rec):
        rec.log("/", rr.AnnotationContext([(1, "a", (0, 255, 0, 128)), (2, "b", (255, 0, 0, 64)),
                                           (3, "c", (0, 0, 255, 200))]), static=True)
        rec.log("img", rr.Image(np.full((1, 3, 3), 255, np.uint8)), static=True)
        rec.log("seg", rr.SegmentationImage(np.array([[1, 2, 3]], np.uint8), opacity=1.0), static=True)

    got = _render(_store(log), backend)
    _close(got[0, :, :3], [[187, 220, 187], [231, 224, 224], [128, 128, 230]], 0 if backend == "numpy" else 1)

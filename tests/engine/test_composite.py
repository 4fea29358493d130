"""Every registered compositor (kernels/backends.py) against contract §4 written out in the test.

Expected pixels are computed here from the contract formulas (sRGB decode/encode, linear
premultiplied "over"), not by the code under test. Each case runs on every backend in
the registry (NumPy, wgpu, CuPy); one that cannot run here is skipped with the
registry's reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pixelrun.engine.scene import Layer
from pixelrun.kernels import backends
from pixelrun.kernels.formats import ImageFormat
from pixelrun.kernels.reference.composite import CompositeWarning

# ---------------------------------------------------------------- contract §4, by hand


def dec(b: int) -> float:
    c = b / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def enc(c: float) -> float:
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def qb(x: float) -> int:
    return int(math.floor(min(max(x, 0.0), 1.0) * 255 + 0.5))


def over(stack, background=(0, 0, 0, 0)):
    """contract §4 for one pixel: stack = [(r, g, b, a_byte, opacity), ...] bottom first."""
    ab = background[3] / 255
    acc = [dec(background[i]) * ab for i in range(3)] + [ab]
    for r, g, b, a, op in stack:
        al = a / 255 * min(max(op, 0.0), 1.0)
        acc = [dec(v) * al + acc[i] * (1 - al) for i, v in enumerate((r, g, b))] + [al + acc[3] * (1 - al)]
    if acc[3] <= 0:
        return (0, 0, 0, 0)
    return tuple(qb(enc(acc[i] / acc[3])) for i in range(3)) + (qb(acc[3]),)


def rgba_layer(entity, pixels, opacity=1.0, draw_order=-10.0, row_id=None) -> Layer:
    """A layer from an (H, W, 4) or (H, W, 3) uint8 array (RGBA / RGB U8)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    model = "RGBA" if pixels.shape[2] == 4 else "RGB"
    fmt = ImageFormat(pixels.shape[1], pixels.shape[0], color_model=model, channel_datatype="U8")
    rid = row_id if row_id is not None else abs(hash((entity, pixels.tobytes()))) % (1 << 60)
    return Layer(entity, rid, pixels.reshape(-1), fmt, opacity, draw_order)


def solid(h, w, rgba) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgba, np.uint8), (h, w, len(rgba))).copy()


RED, GREEN, BLUE = (255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255)


def _left_out_warning(name: str) -> type:
    """The warning class a backend's compositor gives a layer it leaves out."""
    if name == "wgpu":
        from pixelrun.kernels.wgpu.composite import RenderWarning  # imports wgpu

        return RenderWarning
    return CompositeWarning


@pytest.fixture(params=backends.BACKENDS)
def backend(request) -> str:
    ok, reason = backends.availability(request.param)
    if not ok:
        pytest.skip(f"{request.param} backend unavailable: {reason}")
    return request.param


@pytest.fixture
def run(backend):
    def composite(layers, background=(0, 0, 0, 0)):
        return backends.composite(backend, layers, background)

    return composite


# ---------------------------------------------------------------- tests


def test_single_opaque_image_is_its_display_rgba(run):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out = run([rgba_layer("cam", img)])
    assert out.shape == (7, 9, 4)
    assert np.array_equal(out[..., :3], img) and np.all(out[..., 3] == 255)


def test_half_opacity_over_opaque_matches_spec_formula(run):
    bottom = rgba_layer("a", solid(4, 4, (200, 30, 90, 255)), draw_order=0)
    top = rgba_layer("b", solid(4, 4, (10, 240, 128, 255)), opacity=0.5, draw_order=1)
    want = over([(200, 30, 90, 255, 1.0), (10, 240, 128, 255, 0.5)])
    out = run([top, bottom])
    assert np.abs(out.astype(int) - np.array(want)).max() <= 1, (out[0, 0], want)


def test_swapped_draw_orders_swap_what_is_on_top(run):
    a = rgba_layer("a", solid(3, 3, RED), draw_order=1.0)
    b = rgba_layer("b", solid(3, 3, BLUE), draw_order=2.0)
    assert tuple(run([a, b])[1, 1]) == BLUE
    a2 = rgba_layer("a", solid(3, 3, RED), draw_order=2.0)
    b2 = rgba_layer("b", solid(3, 3, BLUE), draw_order=1.0)
    assert tuple(run([a2, b2])[1, 1]) == RED


def test_equal_draw_orders_are_ordered_by_entity_path(run):
    # later path is on top, whatever the order the layers come in
    z = rgba_layer("z/cam", solid(2, 2, GREEN), draw_order=5.0)
    a = rgba_layer("a/cam", solid(2, 2, RED), draw_order=5.0)
    assert tuple(run([z, a])[0, 0]) == GREEN
    assert tuple(run([a, z])[0, 0]) == GREEN


def test_canvas_is_union_and_uncovered_pixels_show_the_background(run):
    wide = rgba_layer("wide", solid(2, 6, RED))
    tall = rgba_layer("tall", solid(5, 3, BLUE), draw_order=0)
    out = run([wide, tall])
    assert out.shape == (5, 6, 4)
    assert tuple(out[0, 0]) == BLUE and tuple(out[0, 5]) == RED
    assert tuple(out[4, 5]) == (0, 0, 0, 0)  # transparent default background
    out = run([wide, tall], background=(13, 13, 13, 255))
    assert tuple(out[4, 5]) == (13, 13, 13, 255)


def test_translucent_pixels_over_background_and_straight_alpha_output(run):
    px = (120, 60, 250, 100)
    layer = rgba_layer("t", solid(2, 2, px), opacity=0.8)
    for bg in [(0, 0, 0, 0), (13, 13, 13, 255), (200, 100, 0, 128)]:
        want = over([(*px, 0.8)], background=bg)
        got = run([layer], background=bg)[0, 0]
        assert np.abs(got.astype(int) - np.array(want)).max() <= 1, (bg, got, want)


def test_opacity_is_clamped_and_nan_means_default(run):
    img = solid(2, 2, (10, 20, 30, 255))
    assert tuple(run([rgba_layer("x", img, opacity=7.0)])[0, 0]) == (10, 20, 30, 255)
    assert tuple(run([rgba_layer("x", img, opacity=-1.0)])[0, 0]) == (0, 0, 0, 0)
    assert tuple(run([rgba_layer("x", img, opacity=float("nan"))])[0, 0]) == (10, 20, 30, 255)


def test_undecodable_layer_is_left_out_with_its_entity_named(run, backend):
    good = rgba_layer("good", solid(2, 2, RED))
    fmt = ImageFormat(2, 2, color_model="RGB", channel_datatype="U8")
    bad = Layer("broken/cam", 7, np.zeros(5, np.uint8), fmt, 1.0, 0.0)
    with pytest.warns(_left_out_warning(backend), match="broken/cam"):
        out = run([good, bad])
    assert tuple(out[0, 0]) == RED


def test_empty_scene_is_empty_array(run):
    assert run([]).shape == (0, 0, 4)

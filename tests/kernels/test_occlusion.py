"""Layers under an opaque layer are neither decoded nor blended (kernels.layers.drop_occluded),
and the frame is the one contract §4 gives for every layer.

The expected images come from composite_spec (contract §4 in float64 over the NumPy
reference's decode of every layer, hidden ones included); the renderer's `last_draw.hidden`
and its texture cache say what it left out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from composite_spec import spec_composite_layers

from pixelrun.kernels.backends import availability
from pixelrun.kernels.colormaps import Colormap
from pixelrun.kernels.errors import RenderWarning
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat
from pixelrun.kernels.layers import MAGNIFICATION_LINEAR, Layer, drop_occluded


@pytest.fixture
def renderer():
    ok, reason = availability("wgpu")
    if not ok:
        pytest.skip(f"wgpu unavailable: {reason}")
    from pixelrun.kernels.wgpu import device as gpu
    from pixelrun.kernels.wgpu.composite import Renderer

    r = Renderer(gpu.get_device())
    yield r
    r.clear_cache()


RNG = np.random.default_rng(7)


def _rgb(entity, w, h, row, order, model=ColorModel.RGB, **kw):
    fmt = ImageFormat(w, h, None, model, ChannelDatatype.U8)
    return Layer(entity, row, RNG.integers(0, 256, fmt.byte_count(), dtype=np.uint8), fmt, draw_order=order, **kw)


def _nv12(entity, w, h, row, order, **kw):
    fmt = ImageFormat(w, h, pixel_format=PixelFormat.NV12)
    return Layer(entity, row, RNG.integers(0, 256, fmt.byte_count(), dtype=np.uint8), fmt, draw_order=order, **kw)


def _grey(entity, w, h, row, order, **kw):
    return _rgb(entity, w, h, row, order, model=ColorModel.L, **kw)


def _same(got, want):
    assert got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1, f"max difference {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"


def test_layers_under_an_opaque_image_are_not_decoded_and_the_frame_is_the_same(renderer):
    bottom = _rgb("/cam/raw", 40, 30, 1, -30.0)
    middle = _grey("/cam/mask", 20, 10, 2, -20.0, opacity=0.5)
    top = _nv12("/cam/rect", 40, 30, 3, -10.0)
    layers = [bottom, middle, top]
    got = renderer.render_offscreen(layers)
    _same(got, spec_composite_layers(layers))
    assert renderer.last_draw.hidden == ["/cam/raw", "/cam/mask"]
    assert renderer.cache_bytes == renderer.level_bytes(top.format, 0)  # only the top was decoded
    assert drop_occluded(layers) == [top]


def _top(kind: str) -> Layer:
    """A layer over a 40x30 RGB image that must not hide it, and why."""
    if kind == "translucent":
        return _nv12("/top", 40, 30, 10, 0.0, opacity=0.99)
    if kind == "alpha channel":
        return _rgb("/top", 40, 30, 10, 0.0, model=ColorModel.RGBA)
    if kind == "linear magnification":
        return _nv12("/top", 40, 30, 10, 0.0, magnification=MAGNIFICATION_LINEAR)
    if kind == "colormap":  # the costmap palettes are transparent at 0
        return _grey("/top", 40, 30, 10, 0.0, colormap=Colormap.Turbo)
    if kind == "depth":
        fmt = ImageFormat(40, 30, None, ColorModel.L, ChannelDatatype.U16)
        return Layer("/top", 10, RNG.integers(0, 3000, 1200).astype(np.uint16).view(np.uint8), fmt, draw_order=0.0,
                     kind="depth")
    if kind == "smaller":
        return _nv12("/top", 20, 16, 10, 0.0)
    if kind == "wider but shorter":
        return _nv12("/top", 60, 10, 10, 0.0)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["translucent", "alpha channel", "linear magnification", "colormap", "depth",
                                  "smaller", "wider but shorter"])
def test_a_layer_that_does_not_fully_cover_hides_nothing(renderer, kind):
    bottom = _rgb("/bottom", 40, 30, 20, -10.0)
    layers = [bottom, _top(kind)]
    got = renderer.render_offscreen(layers)
    _same(got, spec_composite_layers(layers))
    assert renderer.last_draw.hidden == []


def test_an_opaque_layer_that_cannot_be_decoded_hides_nothing(renderer):
    bottom = _rgb("/bottom", 40, 30, 30, -10.0)
    good = _nv12("/top", 40, 30, 31, 0.0)
    broken = dataclasses.replace(good, buffer=good.buffer[:-7])  # 7 bytes short
    with pytest.warns(RenderWarning, match=r"layer left out of the frame: /top: .*"):
        got = renderer.render_offscreen([bottom, broken])
    _same(got, spec_composite_layers([bottom]))
    assert renderer.last_draw.hidden == []
    assert "/top" in renderer.last_errors


def test_an_opaque_layer_over_the_top_of_a_stack_counts_from_the_top_down():
    # the middle layer is opaque and covers the bottom; the top is translucent: only the
    # bottom is hidden (pure logic, no device)
    bottom = _rgb("/a", 40, 30, 40, -30.0)
    middle = _rgb("/b", 40, 30, 41, -20.0)
    top = _rgb("/c", 40, 30, 42, -10.0, opacity=0.3)
    assert drop_occluded([bottom, middle, top]) == [middle, top]
    assert drop_occluded([bottom, middle, top], can_cover=lambda l: l is not middle) == [bottom, middle, top]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    from cuda_host_harness import host_kernels_or_skip

    return host_kernels_or_skip(tmp_path_factory, "cuda_host_occlusion")


@pytest.fixture
def cupy_composite(request, monkeypatch):
    """The CuPy compositor run on the CPU through the CuPy stand-in: (compose, cache)."""
    from cuda_host_harness import clear_cupy_caches, install_fake_cupy

    cupy = install_fake_cupy(request.getfixturevalue("host"), monkeypatch)
    from pixelrun.kernels.cuda import composite as cc

    cache = cc._DecodedCache(1 << 30)
    yield (lambda layers: np.asarray(cc._composite_on_device(cupy, list(layers), (0, 0, 0, 0), cache))), cache, cc
    clear_cupy_caches()


def test_the_cupy_compositor_leaves_out_the_same_layers(cupy_composite):
    compose, cache, cc = cupy_composite
    bottom = _rgb("/cam/raw", 40, 30, 51, -30.0)
    middle = _grey("/cam/mask", 20, 10, 52, -20.0, opacity=0.5)
    top = _nv12("/cam/rect", 40, 30, 53, -10.0)
    _same(compose([bottom, middle, top]), spec_composite_layers([bottom, middle, top]))
    assert cache.get(cc._key(top)) is not None
    assert cache.get(cc._key(bottom)) is None and cache.get(cc._key(middle)) is None  # never decoded


def test_the_cupy_compositor_draws_what_a_broken_opaque_layer_would_hide(cupy_composite):
    compose, cache, cc = cupy_composite
    bottom = _rgb("/bottom", 40, 30, 61, -10.0)
    good = _nv12("/top", 40, 30, 62, 0.0)
    broken = dataclasses.replace(good, buffer=good.buffer[:-7])
    from pixelrun.kernels.reference.composite import CompositeWarning

    with pytest.warns(CompositeWarning, match=r"layer left out of the composite: /top: ") as caught:
        got = compose([bottom, broken])
    assert len([w for w in caught if "/top" in str(w.message)]) == 1  # said once
    _same(got, spec_composite_layers([bottom]))

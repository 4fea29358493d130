"""The compositors honour a layer's kind, value_range, colormap and class colours (contract §4, §8).

Every compositor (NumPy, wgpu, and the CuPy one run on the CPU through the CuPy stand-in
of cuda_host_harness) is compared with contract §4 computed here in float64 over the
reference's decode of each layer (the decode itself is pinned against Rerun in
test_depth_segmentation.py). Decode caches must never show a stale colormap, range or
class-colour table for a row they have already decoded.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from composite_spec import spec_composite_layers
from cuda_host_harness import clear_cupy_caches, host_kernels_or_skip, install_fake_cupy

from pixelrun.kernels.backends import availability
from pixelrun.kernels.colormaps import Colormap
from pixelrun.kernels.errors import RenderWarning
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat
from pixelrun.kernels.layers import Layer
from pixelrun.kernels.reference import composite as numpy_composite


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return host_kernels_or_skip(tmp_path_factory, "cuda_host_composite_table")


@pytest.fixture(params=["numpy", "wgpu", "cupy-fake"])
def compose(request, monkeypatch):
    """compose(layers) -> (H, W, 4) uint8 with one compositor; one instance (and decode
    cache) per test, so a test can draw twice and see a stale cache."""
    name = request.param
    if name == "numpy":
        yield numpy_composite.composite
        return
    if name == "wgpu":
        ok, reason = availability("wgpu")
        if not ok:
            pytest.skip(f"wgpu unavailable: {reason}")
        from pixelrun.kernels.wgpu import device as gpu
        from pixelrun.kernels.wgpu.composite import Renderer

        renderer = Renderer(gpu.get_device())
        yield renderer.render_offscreen
        renderer.clear_cache()
        return
    cupy = install_fake_cupy(request.getfixturevalue("host"), monkeypatch)
    from pixelrun.kernels.cuda import composite as cupy_composite

    cache = cupy_composite._DecodedCache(1 << 30)

    def run(layers):  # one decode cache across calls, as render_many keeps it
        return np.asarray(cupy_composite._composite_on_device(cupy, list(layers), (0, 0, 0, 0), cache))

    yield run
    clear_cupy_caches()


def _close(got, want, what):
    got = np.asarray(got)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1, f"{what}: max difference {diff.max()}"


def _fmt(w, h, dt, model=ColorModel.L):
    return ImageFormat(w, h, None, model, dt)


def _layers(colormap=Colormap.Turbo, depth_range=None, colors_seed=0):
    rng = np.random.default_rng(3)
    rgb = _fmt(20, 12, ChannelDatatype.U8, ColorModel.RGB)
    depth = _fmt(24, 10, ChannelDatatype.U16)
    seg = _fmt(16, 14, ChannelDatatype.U8)
    colors = np.random.default_rng(colors_seed).integers(0, 256, (5, 4), dtype=np.uint8)
    colors[0] = 0  # class 0 transparent, as an annotation context usually leaves it
    return [
        Layer("/depth", 11, rng.integers(0, 5000, depth.num_pixels).astype(np.uint16).view(np.uint8), depth,
              1.0, -20.0, kind="depth", value_range=depth_range, colormap=colormap),
        Layer("/rgb", 12, rng.integers(0, 256, rgb.byte_count(), dtype=np.uint8), rgb, 0.6, -10.0),
        Layer("/seg", 13, rng.integers(0, 7, seg.num_pixels, dtype=np.uint8), seg, 0.5, 0.0,
              kind="segmentation", class_colors=colors, class_colors_key=colors_seed),
    ]


def test_depth_image_and_segmentation_composite_like_the_contract(compose):
    layers = _layers()
    _close(compose(layers), spec_composite_layers(layers), "depth -20, image -10, segmentation 0")


def test_a_changed_colormap_range_or_class_table_is_never_a_stale_decode(compose):
    first = _layers()
    _close(compose(first), spec_composite_layers(first), "first draw")
    # same rows (row ids and bytes), new colours: each must show the new mapping
    for changed in (_layers(colormap=Colormap.Viridis), _layers(depth_range=(1000, 2000)),
                    _layers(colors_seed=1)):
        for layer, old in zip(changed, first):
            assert layer.row_id == old.row_id
        changed = [Layer(l.entity, l.row_id, old.buffer, l.format, l.opacity, l.draw_order, kind=l.kind,
                         value_range=l.value_range, colormap=l.colormap, class_colors=l.class_colors,
                         class_colors_key=l.class_colors_key) for l, old in zip(changed, first)]
        want = spec_composite_layers(changed)
        assert not np.array_equal(want, spec_composite_layers(first))
        _close(compose(changed), want, "after a change")


def test_an_image_s_pinned_value_range_is_honoured(compose):
    fmt = _fmt(9, 5, ChannelDatatype.U16)
    data = np.arange(45, dtype=np.uint16).reshape(5, 9) * 40
    auto = Layer("/img", 21, data.view(np.uint8).reshape(-1), fmt)
    pinned = Layer("/img", 21, auto.buffer, fmt, value_range=(0, 1000))
    _close(compose([auto]), spec_composite_layers([auto]), "automatic range")
    got = compose([pinned])
    _close(got, spec_composite_layers([pinned]), "pinned range")
    assert (got[..., 0][data >= 1000] == 255).all()  # the pin, not the image's own max (1760)


def test_a_multi_channel_depth_layer_is_left_out_with_its_name(compose):
    good = _layers()[1]
    fmt = _fmt(3, 2, ChannelDatatype.U8, ColorModel.RGB)
    bad = Layer("/bad_depth", 31, np.zeros(fmt.byte_count(), np.uint8), fmt, kind="depth")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = compose([good, bad])
    assert any(issubclass(w.category, RenderWarning) and "/bad_depth" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    _close(got, spec_composite_layers([good]), "without the bad layer")

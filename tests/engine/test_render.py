"""The wgpu Renderer (kernels/wgpu/composite.py): contract §4 on the GPU, tiling, bands, targets.

Runs on whatever adapter wgpu finds (lavapipe in CI). Expected pixels come from the
the contract formulas written in test_composite.py (`over`), or, for random scenes, from the
NumPy oracle (kernels/reference/composite.py), within 1 LSB.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_composite import BLUE, GREEN, RED, over, rgba_layer, solid

from pixelrun.engine.scene import Layer
from pixelrun.kernels.formats import ImageFormat, PixelFormat
from pixelrun.kernels.reference import convert as reference
from pixelrun.kernels.reference.composite import composite
from pixelrun.kernels.wgpu.backend import is_available

ok, why = is_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no wgpu adapter: {why}")


@pytest.fixture(scope="module")
def device():
    from pixelrun.kernels.wgpu import device as gpu

    return gpu.get_device()


@pytest.fixture(scope="module")
def renderer(device):
    from pixelrun.kernels.wgpu.composite import Renderer

    return Renderer(device)


def close(got, want, tol=1):
    got = np.asarray(got).astype(int)
    want = np.asarray(want).astype(int)
    assert got.shape == want.shape, (got.shape, want.shape)
    d = np.abs(got - want)
    assert d.max() <= tol, f"max diff {d.max()} at {np.argwhere(d > tol)[:3].tolist()}"


# ---------------------------------------------------------------- contract §4 scenes


def test_single_opaque_image_is_its_display_rgba(renderer):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    out = renderer.render_offscreen([rgba_layer("cam", img)])
    assert out.shape == (13, 17, 4)
    assert np.array_equal(out[..., :3], img) and np.all(out[..., 3] == 255)


def test_half_opacity_over_opaque_matches_spec_formula(renderer):
    bottom = rgba_layer("a", solid(4, 4, (200, 30, 90, 255)), draw_order=0)
    top = rgba_layer("b", solid(4, 4, (10, 240, 128, 255)), opacity=0.5, draw_order=1)
    want = over([(200, 30, 90, 255, 1.0), (10, 240, 128, 255, 0.5)])
    close(renderer.render_offscreen([top, bottom])[2, 2], want)


def test_swapped_draw_orders(renderer):
    a = rgba_layer("a", solid(3, 3, RED), draw_order=1.0)
    b = rgba_layer("b", solid(3, 3, BLUE), draw_order=2.0)
    assert tuple(renderer.render_offscreen([a, b])[1, 1]) == BLUE
    a2 = rgba_layer("a", solid(3, 3, RED), draw_order=2.0)
    b2 = rgba_layer("b", solid(3, 3, BLUE), draw_order=1.0)
    assert tuple(renderer.render_offscreen([a2, b2])[1, 1]) == RED


def test_equal_draw_orders_by_entity_path(renderer):
    z = rgba_layer("z/cam", solid(2, 2, GREEN), draw_order=5.0)
    a = rgba_layer("a/cam", solid(2, 2, RED), draw_order=5.0)
    assert tuple(renderer.render_offscreen([z, a])[0, 0]) == GREEN
    assert tuple(renderer.render_offscreen([a, z])[0, 0]) == GREEN


def test_background_and_union_canvas(renderer):
    wide = rgba_layer("wide", solid(2, 6, RED))
    tall = rgba_layer("tall", solid(5, 3, (0, 0, 255, 128)), draw_order=0)
    for bg in [(0, 0, 0, 0), (13, 13, 13, 255), (200, 100, 0, 128)]:
        out = renderer.render_offscreen([wide, tall], background=bg)
        assert out.shape == (5, 6, 4)
        close(out[4, 5], bg, tol=0)
        close(out[0, 5], over([(255, 0, 0, 255, 1.0)], bg))
        # tall (draw order 0) is over wide (default -10)
        close(out[0, 0], over([(255, 0, 0, 255, 1.0), (0, 0, 255, 128, 1.0)], bg))
        close(out[4, 0], over([(0, 0, 255, 128, 1.0)], bg))


def _random_scene(rng):
    """Layers of several formats, sizes, opacities and draw orders."""
    layers = []
    a = rng.integers(0, 256, (37, 50, 4), dtype=np.uint8)
    layers.append(rgba_layer("rgba", a, opacity=0.7, draw_order=1.0))
    f = rng.normal(0, 3, (29, 61, 3)).astype("<f4")
    layers.append(Layer("float", 11, f.view(np.uint8).reshape(-1),
                        ImageFormat(61, 29, color_model="RGB", channel_datatype="F32"), 0.6, 2.0))
    nv = ImageFormat(45, 33, pixel_format=PixelFormat.NV12)
    layers.append(Layer("nv12", 12, rng.integers(0, 256, nv.byte_count(), dtype=np.uint8), nv, 1.0, 0.0))
    bay = ImageFormat(20, 41, pixel_format=PixelFormat.BayerGRBG8)
    layers.append(Layer("bayer", 13, rng.integers(0, 256, bay.byte_count(), dtype=np.uint8), bay, 0.4, 3.0))
    u16 = rng.integers(0, 4000, (25, 30), dtype="<u2")
    layers.append(Layer("depth", 14, u16.view(np.uint8).reshape(-1),
                        ImageFormat(30, 25, color_model="L", channel_datatype="U16"), 0.5, 2.0))
    return layers


@pytest.mark.parametrize("background", [(0, 0, 0, 0), (13, 13, 13, 255), (30, 200, 90, 77)])
def test_random_scene_matches_numpy_oracle(renderer, background):
    layers = _random_scene(np.random.default_rng(3))
    close(renderer.render_offscreen(layers, background), composite(layers, background))


def test_tiles_and_bands_give_the_same_picture(device):
    """A tiny max texture size and accumulation buffer force every tiled/banded path."""
    from pixelrun.kernels.wgpu.composite import Renderer

    layers = _random_scene(np.random.default_rng(4))
    small = Renderer(device, max_texture_dim=16, max_acc_bytes=16 * 61 * 5)
    assert small.max_tile == 16
    want = composite(layers, (13, 13, 13, 255))
    close(small.render_offscreen(layers, (13, 13, 13, 255)), want)
    assert any(len(t) > 1 for t in (small.display_rgba(l) for l in layers))


def test_20000_by_50_image_renders(renderer):
    x = np.arange(20000)
    img = np.zeros((50, 20000, 3), np.uint8)
    img[..., 0] = x % 256
    img[..., 1] = (x // 256) % 256
    img[..., 2] = np.arange(50)[:, None]
    out = renderer.render_offscreen([rgba_layer("wide", img)])
    assert out.shape == (50, 20000, 4)
    assert np.array_equal(out[..., :3], img) and np.all(out[..., 3] == 255)


def test_20000_by_50_image_with_forced_small_textures(device):
    from pixelrun.kernels.wgpu.composite import Renderer

    img = np.zeros((50, 20000, 4), np.uint8)
    img[..., 0] = np.arange(20000) % 251
    img[..., 3] = 255
    img[:, 12345, :] = (1, 2, 3, 255)
    r = Renderer(device, max_texture_dim=4096)
    out = r.render_offscreen([rgba_layer("wide", img)])
    assert np.array_equal(out, img)
    assert len(r.display_rgba(rgba_layer("wide", img))) == 5


# ---------------------------------------------------------------- draw() into targets


def _target(device, fmt, size):
    import wgpu

    tex = device.create_texture(size=(size[0], size[1], 1), format=fmt,
                                usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC)
    return tex


@pytest.mark.parametrize("fmt", ["rgba8unorm", "bgra8unorm", "bgra8unorm-srgb", "rgba8unorm-srgb"])
def test_draw_into_target_with_scale_offset(device, renderer, fmt):
    from pixelrun.kernels.wgpu.convert import read_texture

    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    layer = rgba_layer("cam", img, opacity=0.9)
    bg = (13, 13, 13, 255)
    tw, th = 17, 15
    tex = _target(device, fmt, (tw, th))
    renderer.draw([layer], tex.create_view(), (tw, th), target_format=fmt, background=bg,
                  scale=2.0, offset=(3.0, 1.0))
    got = read_texture(device, tex, tw, th)
    if fmt.startswith("bgra"):
        got = got[..., [2, 1, 0, 3]]
    native = renderer.render_offscreen([layer], bg)
    want = np.empty((th, tw, 4), np.uint8)
    for y in range(th):
        for x in range(tw):
            sx, sy = int(np.floor((x + 0.5 - 3.0) / 2.0)), int(np.floor((y + 0.5 - 1.0) / 2.0))
            inside = 0 <= sx < 5 and 0 <= sy < 6
            want[y, x] = native[sy, sx] if inside else bg
    # the bytes stored in any target equal the headless render's
    assert np.array_equal(got, want)


# ---------------------------------------------------------------- cache


def test_texture_cache_is_keyed_by_row_and_bounded(device):
    from pixelrun.kernels.wgpu.composite import Renderer

    budget = 2 * 32 * 32 * 4
    r = Renderer(device, vram_budget=budget)
    layers = [rgba_layer(f"e{i}", solid(32, 32, (i, 0, 0, 255)), row_id=100 + i) for i in range(5)]
    for layer in layers:
        assert tuple(r.render_offscreen([layer])[0, 0]) == (layer.buffer[0], 0, 0, 255)
        assert r.cache_bytes <= budget
    # the same row id is not decoded again: its textures are the cached ones
    t1 = r.display_rgba(layers[-1])
    assert r.display_rgba(layers[-1]) is t1


def test_layer_rgba_reads_back_one_layer(renderer):
    nv = ImageFormat(7, 5, pixel_format=PixelFormat.NV12)
    data = np.arange(nv.byte_count(), dtype=np.uint8)
    layer = Layer("nv", 99, data, nv)
    close(renderer.layer_rgba(layer), reference.to_display_rgba(data, nv))


def test_undecodable_layer_is_left_out_with_warning(renderer):
    from pixelrun.kernels.wgpu.composite import RenderWarning

    good = rgba_layer("good", solid(2, 2, RED))
    bad = Layer("broken/cam", 7, np.zeros(5, np.uint8), ImageFormat(2, 2, color_model="RGB", channel_datatype="U8"))
    with pytest.warns(RenderWarning, match="broken/cam"):
        out = renderer.render_offscreen([good, bad])
    assert tuple(out[0, 0]) == RED
    assert "broken/cam" in renderer.last_errors


def test_bad_background_is_a_clear_error(renderer):
    with pytest.raises(ValueError, match="background"):
        renderer.render_offscreen([rgba_layer("a", solid(1, 1, RED))], background=(1, 2, 3))


def test_draw_in_bands_equals_one_pass(device):
    """A scene whose accumulator needs several bands draws the same bytes into a window."""
    from pixelrun.kernels.wgpu.composite import Renderer
    from pixelrun.kernels.wgpu.convert import read_texture

    layers = _random_scene(np.random.default_rng(8))
    bg = (13, 13, 13, 255)
    outs = []
    for r in (Renderer(device), Renderer(device, max_acc_bytes=16 * 61 * 4, max_texture_dim=32)):
        tex = _target(device, "bgra8unorm", (90, 70))
        r.draw(layers, tex.create_view(), (90, 70), target_format="bgra8unorm", background=bg,
               scale=1.5, offset=(-4.0, 2.0))
        outs.append(read_texture(device, tex, 90, 70))
    assert np.array_equal(outs[0], outs[1])
    assert tuple(outs[0][0, 0][[2, 1, 0, 3]]) == bg  # (0, 0) lies above the scene: background


def test_same_row_id_with_different_bytes_is_not_confused(renderer):
    a = rgba_layer("a", solid(2, 2, RED), row_id=0)
    b = rgba_layer("a", solid(2, 2, BLUE), row_id=0)
    assert tuple(renderer.render_offscreen([a])[0, 0]) == RED
    assert tuple(renderer.render_offscreen([b])[0, 0]) == BLUE


# ---------------------------------------------------------------- cost follows the target


def _nearest(native, tw, th, scale, offset, bg):
    """What nearest sampling of `native` shows in a (th, tw) target (contract §4 view rule)."""
    xs = np.floor((np.arange(tw) + 0.5 - offset[0]) / scale).astype(int)
    ys = np.floor((np.arange(th) + 0.5 - offset[1]) / scale).astype(int)
    h, w = native.shape[:2]
    inside = (ys[:, None] >= 0) & (ys[:, None] < h) & (xs[None, :] >= 0) & (xs[None, :] < w)
    out = native[np.clip(ys, 0, h - 1)[:, None], np.clip(xs, 0, w - 1)[None, :]]
    return np.where(inside[..., None], out, np.asarray(bg, np.uint8))


def test_degenerate_scene_costs_what_the_target_costs(device):
    """100000x1 + 1x100000 make a 10^10-texel scene: the composite stays target-sized."""
    from pixelrun.kernels.wgpu.composite import Renderer
    from pixelrun.kernels.wgpu.convert import read_texture

    wide = np.zeros((1, 100000, 4), np.uint8)
    wide[0, :, 0] = np.arange(100000) % 251
    wide[..., 3] = 255
    tall = np.zeros((100000, 1, 4), np.uint8)
    tall[:, 0, 1] = np.arange(100000) % 241
    tall[..., 3] = 255
    layers = [rgba_layer("wide", wide, draw_order=1.0), rgba_layer("tall", tall)]
    r = Renderer(device)
    tw, th = 300, 200
    bg = (13, 13, 13, 255)
    for scale, offset in [(1.0, (0.0, 0.0)), (1.0, (-99800.0, -5.0)), (3.0, (10.0, 4.0))]:
        tex = _target(device, "rgba8unorm", (tw, th))
        r.draw(layers, tex.create_view(), (tw, th), target_format="rgba8unorm", background=bg,
               scale=scale, offset=offset)
        got = read_texture(device, tex, tw, th)
        stats = r.last_draw
        assert stats.target_pixels == tw * th
        assert stats.acc_bytes <= 16 * tw * th + 256  # one f32 RGBA per target pixel
        assert stats.blended_pixels <= 2 * (tw + 2) * (th + 2)  # each layer at most once per pixel
        # the pixels: wide's row on top of tall's column, the background elsewhere in the scene
        xs = np.floor((np.arange(tw) + 0.5 - offset[0]) / scale).astype(int)
        ys = np.floor((np.arange(th) + 0.5 - offset[1]) / scale).astype(int)
        for y in (0, 1, th - 1):
            for x in (0, 1, tw // 2, tw - 1):
                sx, sy = xs[x], ys[y]
                if not (0 <= sx < 100000 and 0 <= sy < 100000):
                    want = bg
                elif sy == 0:
                    want = tuple(wide[0, sx])
                elif sx == 0:
                    want = tuple(tall[sy, 0])
                else:
                    want = bg
                assert tuple(got[y, x]) == want, (scale, offset, x, y)


def test_zoomed_out_layer_is_drawn_from_a_reduced_level_pixel_exact_at_1_over_k(device):
    from pixelrun.kernels.wgpu.composite import Renderer
    from pixelrun.kernels.wgpu.convert import read_texture

    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (300, 500, 4), dtype=np.uint8)
    img[..., 3] = 255
    layer = rgba_layer("big", img)
    r = Renderer(device)
    tw, th, bg = 160, 90, (13, 13, 13, 255)
    for k, offset in [(4, (7.0, 3.0)), (8, (-2.0, 11.0))]:
        tex = _target(device, "rgba8unorm", (tw, th))
        r.draw([layer], tex.create_view(), (tw, th), target_format="rgba8unorm", background=bg,
               scale=1.0 / k, offset=offset)
        assert r.last_draw.levels == {"big": k} and r.last_draw.over_budget == {}
        # at zoom 1/k with a whole-pixel offset, the reduced level shows exactly what
        # nearest sampling of the full image shows
        assert np.array_equal(read_texture(device, tex, tw, th), _nearest(img, tw, th, 1.0 / k, offset, bg))
    # only the reduced levels are kept: (500/4 x 300/4) + (500/8 x 300/8) texels
    assert r.cache_bytes == (125 * 75 + 63 * 38) * 4
    # at 1:1 the full image again, exactly
    tex = _target(device, "rgba8unorm", (tw, th))
    r.draw([layer], tex.create_view(), (tw, th), target_format="rgba8unorm", background=bg, offset=(-5.0, -6.0))
    assert r.last_draw.levels == {}
    assert np.array_equal(read_texture(device, tex, tw, th), _nearest(img, tw, th, 1.0, (-5.0, -6.0), bg))


def test_layer_larger_than_the_texture_budget_is_reduced_to_fit(device):
    from pixelrun.kernels.wgpu.composite import Renderer, RenderWarning
    from pixelrun.kernels.wgpu.convert import read_texture

    img = np.zeros((128, 256, 4), np.uint8)
    img[..., 0] = np.arange(256)[None, :]
    img[..., 1] = np.arange(128)[:, None]
    img[..., 3] = 255
    budget = 256 * 128 * 4 // 4 - 1  # less than a quarter of the full textures
    r = Renderer(device, vram_budget=budget)
    tex = _target(device, "rgba8unorm", (256, 128))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenderWarning)  # reduced, not left out
        r.draw([rgba_layer("cam", img)], tex.create_view(), (256, 128), target_format="rgba8unorm")
    assert r.last_draw.over_budget == {"cam": 4}
    assert r.cache_bytes <= budget
    got = read_texture(device, tex, 256, 128)
    # every 4x4 block shows the texel at its (2, 2) (the reduced level's sample)
    assert tuple(got[5, 9]) == (8 + 2, 4 + 2, 0, 255)
    # headless render never reduces: exact at native size whatever the budget
    assert np.array_equal(r.render_offscreen([rgba_layer("cam", img)]), img)


def test_draw_does_not_grow_memory(device):
    """900 redraws of a 64x64 image into a window-sized target: RSS stays flat (it grew
    ~0.4 MB per draw when lavapipe recompiled the present shader for its uniforms)."""
    psutil = pytest.importorskip("psutil", reason="psutil measures RSS")
    import gc

    from pixelrun.kernels.wgpu.composite import Renderer
    from pixelrun.kernels.wgpu.convert import wait_idle

    r = Renderer(device)
    layer = rgba_layer("cam", np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=np.uint8))
    tex = _target(device, "bgra8unorm", (980, 600))
    view = tex.create_view()

    def draws(n):
        for i in range(n):  # the view changes every draw: nothing can be reused from the last
            r.draw([layer], view, (980, 600), target_format="bgra8unorm", scale=1.0 + i % 3, offset=(i % 7, 0.0))
        wait_idle(device)
        gc.collect()

    draws(50)  # pipelines, caches and the accumulator reach their steady state
    before = psutil.Process().memory_info().rss
    draws(900)
    grown = psutil.Process().memory_info().rss - before
    assert grown < 20e6, f"RSS grew {grown / 1e6:.1f} MB over 900 draws"

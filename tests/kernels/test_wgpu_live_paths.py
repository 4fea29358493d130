"""The live viewer's fast paths give the pixels of the plain paths.

1. Decoding straight to a reduced level (WgslConverter.decode(level=...), used by the
Renderer for a new frame a view shows zoomed out) gives the texels of the full decode
that composite.wgsl's `reduce` keeps: texel o of a tile is pixel min(o k + k/2, tile
size - 1) of that tile, k = 2^level.

The expected texels come from the NumPy reference decoder (the whole image), indexed on
the CPU; the reduced textures are also compared with the GPU's decode-then-reduce path.

2. Clearing the accumulator inside the first layer's blend (`blend_first`, when that
layer's pixels cover the band) gives the same bytes as a separate clear pass.

3. A frame decoded into the texture of a frame the renderer was told to let go
(`Renderer.retain` / `forget`, what the live viewer does following new data) has its
own texels, as the reference decodes them, at full resolution and at a reduced level;
the spares stay within the texture budget.
"""

from __future__ import annotations

import numpy as np
import pytest

from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat
from pixelrun.kernels.layers import Layer, LayerKind, layer_decode_args
from pixelrun.kernels.reference import convert as reference
from pixelrun.kernels.wgpu.convert import read_texture, tile_grid

wgpu = pytest.importorskip("wgpu")


@pytest.fixture(scope="module")
def device():
    from pixelrun.kernels.wgpu import device as gpu

    try:
        return gpu.get_device()
    except Exception as exc:  # no adapter on this machine
        pytest.skip(f"no wgpu device: {exc}")


def _expected(full: np.ndarray, max_tile: int, shift: int) -> list[np.ndarray]:
    """Per tile: the reduce rule applied to the reference's full picture."""
    k = 1 << shift
    h, w = full.shape[:2]
    out = []
    for x0, y0, tw, th in tile_grid(w, h, max_tile):
        xs = np.minimum(np.arange(-(-tw // k)) * k + k // 2, tw - 1) + x0
        ys = np.minimum(np.arange(-(-th // k)) * k + k // 2, th - 1) + y0
        out.append(full[np.ix_(ys, xs)])
    return out


def _read(device, tiles) -> list[np.ndarray]:
    return [read_texture(device, t.texture, t.texture.size[0], t.texture.size[1]) for t in tiles]


def _cases():
    rng = np.random.default_rng(7)
    u8 = lambda n: rng.integers(0, 256, n, dtype=np.uint8)  # noqa: E731
    nv12 = ImageFormat(38, 22, pixel_format=PixelFormat.NV12)
    yuy2 = ImageFormat(30, 17, pixel_format=PixelFormat.YUY2)
    rgb = ImageFormat(37, 23, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.U8)
    l16 = ImageFormat(29, 31, color_model=ColorModel.L, channel_datatype=ChannelDatatype.U16)
    f32 = ImageFormat(21, 19, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.F32)
    fdata = rng.normal(0, 3, f32.width * f32.height * 4).astype(np.float32)
    fdata[::7] = np.nan
    depth = ImageFormat(33, 18, color_model=ColorModel.L, channel_datatype=ChannelDatatype.U16)
    seg = ImageFormat(26, 20, color_model=ColorModel.L, channel_datatype=ChannelDatatype.U8)
    colors = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    return [
        pytest.param(Layer("nv12", 1, u8(nv12.byte_count()), nv12), id="nv12"),
        pytest.param(Layer("yuy2", 2, u8(yuy2.byte_count()), yuy2), id="yuy2"),
        pytest.param(Layer("rgb", 3, u8(rgb.byte_count()), rgb), id="rgb8"),
        pytest.param(Layer("l16", 4, rng.integers(0, 65536, 29 * 31, dtype=np.uint16).view(np.uint8), l16),
                     id="l16-auto-range"),
        pytest.param(Layer("f32", 5, fdata.view(np.uint8), f32), id="rgba-f32-nan"),
        pytest.param(Layer("depth", 6, rng.integers(0, 9000, 33 * 18, dtype=np.uint16).view(np.uint8), depth,
                           kind=LayerKind.DEPTH, value_range=(0.0, 8000.0)), id="depth"),
        pytest.param(Layer("seg", 7, rng.integers(0, 7, 26 * 20, dtype=np.uint8), seg,
                           kind=LayerKind.SEGMENTATION, class_colors=colors), id="segmentation"),
    ]


@pytest.mark.parametrize("layer", _cases())
@pytest.mark.parametrize("max_tile", [8192, 16, 13])
def test_direct_level_decode_equals_reference_reduced(device, layer, max_tile):
    from pixelrun.kernels.wgpu.composite import Renderer

    full = reference.to_display_rgba(layer.buffer, layer.format, **layer_decode_args(layer))
    for shift in (1, 2, 3):
        direct = Renderer(device, max_texture_dim=max_tile)
        assert direct.converter.decodes_level(layer.format, shift, max_tile)
        got = _read(device, direct._entry(layer, shift, None).tiles)  # fresh renderer: decoded straight to the level
        assert len(got) == len(tile_grid(layer.format.width, layer.format.height, max_tile))
        for g, e in zip(got, _expected(full, max_tile, shift), strict=True):
            assert g.shape == e.shape
            np.testing.assert_array_equal(g, e, err_msg=f"{layer.entity} level {shift} tile {max_tile}")
        # the same texels as the decode-then-reduce path (full decode cached first)
        via_full = Renderer(device, max_texture_dim=max_tile)
        via_full.display_rgba(layer)
        for g, e in zip(got, _read(device, via_full._entry(layer, shift, None).tiles), strict=True):
            np.testing.assert_array_equal(g, e)


def test_bayer_is_decoded_then_reduced(device):
    from pixelrun.kernels.wgpu.composite import Renderer

    fmt = ImageFormat(24, 18, pixel_format=PixelFormat.BayerRGGB8)
    layer = Layer("bayer", 1, np.random.default_rng(3).integers(0, 256, fmt.byte_count(), dtype=np.uint8), fmt)
    r = Renderer(device)
    assert not r.converter.decodes_level(fmt, 1)
    with pytest.raises(ValueError, match="no direct decode"):
        r.converter.decode(r.converter.upload(layer.buffer, fmt), fmt, level=1)
    full = reference.to_display_rgba(layer.buffer, fmt)
    (got,) = _read(device, r._entry(layer, 2, None).tiles)
    (exp,) = _expected(full, 8192, 2)
    np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize(
    "scale, offset, size",
    [
        (1.0, (0.0, 0.0), (40, 30)),  # the image fills the target: fused
        (0.51, (3.0, 2.0), (64, 48)),  # zoomed out with a margin: fused where covered
        (2.5, (-7.3, -4.1), (50, 40)),  # magnified, target inside the image
        (0.3, (20.0, 9.0), (90, 70)),  # small image in a big target: background around it
    ],
)
def test_fused_clear_equals_clear_then_blend(device, scale, offset, size):
    from pixelrun.kernels.wgpu.composite import Renderer

    rng = np.random.default_rng(11)
    rgba = ImageFormat(40, 30, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.U8)
    small = ImageFormat(13, 9, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.U8)
    nv12 = ImageFormat(40, 30, pixel_format=PixelFormat.NV12)
    scenes = [
        [Layer("a", 1, rng.integers(0, 256, nv12.byte_count(), dtype=np.uint8), nv12)],
        [Layer("a", 2, rng.integers(0, 256, rgba.byte_count(), dtype=np.uint8), rgba, opacity=0.6)],
        [Layer("a", 3, rng.integers(0, 256, rgba.byte_count(), dtype=np.uint8), rgba, draw_order=0),
         Layer("b", 4, rng.integers(0, 256, small.byte_count(), dtype=np.uint8), small, opacity=0.7, draw_order=1)],
        [Layer("b", 5, rng.integers(0, 256, small.byte_count(), dtype=np.uint8), small, draw_order=0),
         Layer("a", 6, rng.integers(0, 256, rgba.byte_count(), dtype=np.uint8), rgba, draw_order=1)],
    ]
    fmt = wgpu.TextureFormat.rgba8unorm
    tex = device.create_texture(size=(*size, 1), format=fmt,
                                usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC)
    for layers in scenes:
        out = []
        for fuse in (True, False):
            r = Renderer(device)
            r._fuse_clear = fuse
            r.draw(layers, tex.create_view(), size, target_format=fmt, background=(40, 90, 200, 170),
                   scale=scale, offset=offset)
            out.append(read_texture(device, tex, *size))
        np.testing.assert_array_equal(out[0], out[1], err_msg=str([l.entity for l in layers]))


def test_warm_up_builds_the_pipelines_and_keeps_nothing(device):
    from pixelrun.kernels.wgpu.composite import Renderer

    r = Renderer(device)
    r.converter._pipelines.clear()  # the converter is shared by every renderer on the device
    r.warm_up("bgra8unorm")
    built = {(k[0], k[1]) for k in r.converter._pipelines}
    assert {("yuv.wgsl", "decode"), ("color.wgsl", "decode")} <= built  # the NV12 and RGBA8 decodes
    assert "bgra8unorm" in r._present_pipelines
    assert r.cache_bytes == 0 and not r._cache and r.last_draw.target_pixels == 0 and r.last_errors == {}


def _nv12_frames(n: int, w: int = 38, h: int = 22) -> list[Layer]:
    fmt = ImageFormat(w, h, pixel_format=PixelFormat.NV12)
    rng = np.random.default_rng(19)
    return [Layer("/cam", 100 + i, rng.integers(0, 256, fmt.byte_count(), dtype=np.uint8), fmt) for i in range(n)]


@pytest.mark.parametrize("shift", [0, 1])
def test_a_new_frame_decoded_into_a_forgotten_frames_texture_has_its_own_texels(device, shift):
    from pixelrun.kernels.wgpu.composite import Renderer

    a, b, c = _nv12_frames(3)
    r = Renderer(device)
    (ta,) = r._entry(a, shift, None).tiles
    one = r.cache_bytes
    r.retain([a])  # what is shown stays
    assert r.cache_bytes == one and r.spare_bytes == 0
    r._entry(b, shift, None)
    r.retain([b])  # a was replaced: its texture becomes a spare
    assert r.cache_bytes == one and r.spare_bytes == one
    (tc,) = r._entry(c, shift, None).tiles
    assert tc.texture is ta.texture  # decoded into a's memory, not new memory
    assert r.spare_bytes == 0
    full = reference.to_display_rgba(c.buffer, c.format)
    (expected,) = _expected(full, 8192, shift) if shift else [full]
    (got,) = _read(device, [tc])
    np.testing.assert_array_equal(got, expected)
    r.forget([c])
    assert r.cache_bytes == one and r.spare_bytes == one  # b is still cached; c's texture is spare


def test_spares_count_against_the_budget_and_go_first(device):
    from pixelrun.kernels.wgpu.composite import Renderer

    frames = _nv12_frames(4)
    r = Renderer(device)
    for f in frames[:3]:
        r.display_rgba(f)
    one = r.cache_bytes // 3
    r.forget(frames[:2])
    assert r.cache_bytes == one and r.spare_bytes == 2 * one
    r.vram_budget = 2 * one  # cache + spares = 3 frames: over, so the spares are freed
    r.display_rgba(frames[3])  # one spare reused, then the rest freed for the budget
    assert r.spare_bytes == 0 and r.cache_bytes == 2 * one
    r.forget(frames[2:], reuse=False)
    assert r.cache_bytes == 0 and r.spare_bytes == 0

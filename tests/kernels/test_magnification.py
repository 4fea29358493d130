"""The magnification filter (contract §8.4): nearest by default, linear on request.

`reference.composite.composite_view` is the oracle of the wgpu renderer's scaled draw
(`Renderer.draw`, what the viewer shows); the oracle itself is pinned on a case worked out
by hand from Rerun's bilinear rule (texel centres at +0.5, clamp to edge, mixing in
linear light).
"""

from __future__ import annotations

import numpy as np
import pytest

from pixelrun.kernels.backends import availability
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat
from pixelrun.kernels.layers import MAGNIFICATION_LINEAR, Layer
from pixelrun.kernels.reference.composite import composite, composite_view


def _grey_pair(magnification: int) -> Layer:
    fmt = ImageFormat(2, 1, None, ColorModel.L, ChannelDatatype.U8)
    return Layer("/pair", 1, np.array([0, 255], np.uint8), fmt, magnification=magnification)


def test_linear_oracle_on_a_hand_worked_case():
    # texels 0 and 255 (linear 0 and 1) at 4x: pixel x samples u = (x + 0.5) / 4, the
    # texel-centre coordinate u - 0.5 gives weights 0, 0, 1/8, 3/8, 5/8, 7/8, 1, 1 of the
    # right texel (clamped at both ends), encoded to sRGB:
    # q(srgb_encode(1/8, 3/8, 5/8, 7/8)) = 99, 165, 207, 240
    got = composite_view([_grey_pair(MAGNIFICATION_LINEAR)], (8, 1), scale=4.0)
    assert got[0, :, 0].tolist() == [0, 0, 99, 165, 207, 240, 255, 255]
    assert (got[..., 3] == 255).all()
    nearest = composite_view([_grey_pair(1)], (8, 1), scale=4.0)
    assert nearest[0, :, 0].tolist() == [0, 0, 0, 0, 255, 255, 255, 255]


def test_linear_only_when_magnified_and_views_match_native():
    layer = _grey_pair(MAGNIFICATION_LINEAR)
    # at scale 1 the filter does not apply: the view is the native composite
    assert np.array_equal(composite_view([layer], (2, 1), scale=1.0), composite([layer]))
    # outside the scene: the background bytes
    bg = (13, 14, 15, 255)
    out = composite_view([layer], (5, 1), scale=1.0, offset=(2.0, 0.0), background=bg)
    assert out[0, 0].tolist() == list(bg) and out[0, 4].tolist() == list(bg)


@pytest.fixture(scope="module")
def renderer():
    ok, reason = availability("wgpu")
    if not ok:
        pytest.skip(f"wgpu unavailable: {reason}")
    from pixelrun.kernels.wgpu import device as gpu
    from pixelrun.kernels.wgpu.composite import Renderer

    return Renderer(gpu.get_device())


def _draw(renderer, layers, size, scale, offset, bg):
    import wgpu

    from pixelrun.kernels.wgpu.convert import read_texture

    dev = renderer.device
    tex = dev.create_texture(size=(size[0], size[1], 1), format="rgba8unorm",
                             usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC)
    renderer.draw(layers, tex.create_view(), size, target_format="rgba8unorm", background=bg,
                  scale=scale, offset=offset)
    return read_texture(dev, tex, size[0], size[1])


def _scene(magnification: int) -> list[Layer]:
    rng = np.random.default_rng(4)
    rgba = ImageFormat(7, 5, None, ColorModel.RGBA, ChannelDatatype.U8)
    depth = ImageFormat(9, 4, None, ColorModel.L, ChannelDatatype.U16)
    return [
        Layer("/depth", 1, rng.integers(0, 3000, depth.num_pixels).astype(np.uint16).view(np.uint8), depth,
              1.0, -20.0, kind="depth", magnification=magnification),
        Layer("/img", 2, rng.integers(0, 256, rgba.byte_count(), dtype=np.uint8), rgba, 0.8, -10.0,
              magnification=magnification),
    ]


@pytest.mark.parametrize("magnification", [1, MAGNIFICATION_LINEAR], ids=["nearest", "linear"])
@pytest.mark.parametrize("scale,offset", [(3.0, (2.0, 1.0)), (2.5, (-3.25, 0.5)), (1.0, (1.0, 2.0))])
def test_wgpu_draw_matches_the_oracle(renderer, magnification, scale, offset):
    layers = _scene(magnification)
    size, bg = (31, 17), (13, 13, 13, 255)
    got = _draw(renderer, layers, size, scale, offset, bg)
    want = composite_view(layers, size, scale, offset, bg)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1, f"max difference {diff.max()} at {np.argwhere(diff.max(-1) > 1)[:4].tolist()}"


def test_linear_differs_from_nearest_when_magnified(renderer):
    size, bg = (31, 17), (0, 0, 0, 255)
    a = _draw(renderer, _scene(1), size, 3.0, (0.0, 0.0), bg)
    b = _draw(renderer, _scene(MAGNIFICATION_LINEAR), size, 3.0, (0.0, 0.0), bg)
    assert (np.abs(a.astype(int) - b).max(-1) > 8).sum() > 50  # smooth ramps instead of blocks


RERUN_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2] / ".venv-rerun" / "bin"


@pytest.mark.skipif(not (RERUN_ROOT / "rerun").exists(), reason="real rerun 0.41 not installed in .venv-rerun")
@pytest.mark.skipif(__import__("shutil").which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_linear_rule_is_what_rerun_shows(tmp_path):
    """Rerun 0.41's viewer draws a 2x1 grey image [0, 255] with MagnificationFilter.Linear:
    its ramp must be our rule (texel centres, mixing in linear light) within 1 LSB at
    every screen pixel; mixing the sRGB bytes instead would be off by up to ~70."""
    import socket
    import subprocess

    from PIL import Image as PILImage

    from pixelrun.kernels.layers import q, srgb_encode

    rrd, png = tmp_path / "lin.rrd", tmp_path / "lin.png"
    code = ("import numpy as np, rerun as rr, sys; rr.init('lin'); rr.save(sys.argv[1]); "
            "rr.log('img', rr.Image(np.array([[0, 255]], np.uint8), color_model='L', magnification_filter='Linear'))")
    subprocess.run([str(RERUN_ROOT / "python"), "-c", code, str(rrd)], check=True, timeout=120)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(__import__("os").environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")
    # Rerun's headless viewer loads the file on a background thread and now and then takes
    # its screenshot before the image arrived (tests/sdk/test_sdk_rerun_viewer.py): only a
    # screenshot without the image is taken again; one that shows it is asserted on.
    for _ in range(3):
        subprocess.run(["xvfb-run", "-a", str(RERUN_ROOT / "rerun"), str(rrd), "--port", str(port), "--headless",
                        "--window-size", "800x600", "--screenshot-to", str(png)],
                       env=env, check=True, timeout=300, capture_output=True)
        shot = np.asarray(PILImage.open(png).convert("RGB")).astype(int)
        row = shot[int(shot.shape[0] * 0.7), :, 0]  # a row through the image, below the notifications
        # the ramp: the pixels between the black and the white texel's flat parts
        xs = np.arange(shot.shape[1] // 4, shot.shape[1] - 4)
        ramp = xs[(row[xs] > 0) & (row[xs] < 255)]
        if (row[xs] == 255).sum() > 50:  # the white texel is on screen: the image was drawn
            break
    assert ramp.size > 100, "Rerun's screenshot shows no ramp (did the image load?)"
    best = None
    # the image rectangle [x0, x0 + 2 k): fit it (sub-pixel) from the ramp, then compare everywhere
    for x0 in np.arange(ramp[0] - 0.6 * ramp.size, ramp[0] - 0.4 * ramp.size, 0.25):
        for k in np.arange(0.95 * ramp.size, 1.05 * ramp.size, 0.5):
            w = np.clip((ramp + 0.5 - x0) / k - 0.5, 0, 1)
            d = np.abs(row[ramp] - q(srgb_encode(w)).astype(int)).max()
            best = d if best is None else min(best, d)
    assert best <= 1, f"Rerun's linear ramp differs from our rule by {best}"

"""The CuPy compositor (contract §4) against compositing written out in float64
(tests/kernels/composite_spec.py).

Two ways in: on any machine, the compositor's launch plans (`plan_composite` with
NumPy arrays) run through the CUDA kernels compiled for the CPU
(tests/kernels/cuda_host_harness.py); on a CUDA machine, `composite()` itself runs on
the device from Layers (raw bytes), and must equal the NumPy compositor
(kernels/reference/composite.py) within 1 LSB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))
from composite_spec import spec_composite, spec_composite_layers
from cuda_host_harness import host_kernels_or_skip

from pixelrun.engine.scene import Layer
from pixelrun.kernels.cuda import composite as cupy_composite
from pixelrun.kernels.cuda.composite import plan_composite
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat


def assert_within_one(got, want):
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1, f"max difference {diff.max()} at {np.argwhere(diff.max(-1) > 1)[:5].tolist()}"


# ------------------------------------------------------------- host-compiled kernels


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return host_kernels_or_skip(tmp_path_factory, "cuda_host_composite")


def run_host(host, layers, width, height, background=(0, 0, 0, 0)):
    _, out, plan = plan_composite(np, layers, width, height, background)
    host.run(plan)
    return out


def test_single_opaque_layer_comes_back_exactly(host):
    rgba = np.random.default_rng(1).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    out = run_host(host, [(rgba, 1.0)], 7, 5)
    assert (out == rgba).all()


def test_half_transparent_white_over_black_is_linear_mix(host):
    white = np.full((1, 1, 4), 255, np.uint8)
    black = np.zeros((1, 1, 4), np.uint8)
    black[..., 3] = 255
    out = run_host(host, [(black, 1.0), (white, 0.5)], 1, 1)
    # linear 0.5 -> sRGB 1.055 * 0.5^(1/2.4) - 0.055 = 0.7354 -> floor(187.5 + .5) = 188
    assert out[0, 0].tolist() == [188, 188, 188, 255]


def test_lone_half_alpha_layer_keeps_colour_and_alpha(host):
    px = np.array([[[200, 100, 50, 128]]], np.uint8)
    out = run_host(host, [(px, 1.0)], 1, 1)
    assert out[0, 0].tolist() == [200, 100, 50, 128]  # straight alpha over transparent


def test_empty_canvas_area_is_background_or_transparent(host):
    small = np.full((1, 1, 4), 255, np.uint8)
    big = np.zeros((2, 3, 4), np.uint8)  # fully transparent layer: only sets the size
    out = run_host(host, [(big, 1.0), (small, 1.0)], 3, 2)
    assert out[0, 0].tolist() == [255, 255, 255, 255]
    assert (out.reshape(-1, 4)[1:] == 0).all()
    out = run_host(host, [(big, 1.0), (small, 1.0)], 3, 2, background=(13, 13, 13, 255))
    assert out[1, 2].tolist() == [13, 13, 13, 255]


@pytest.mark.parametrize("seed", range(6))
def test_random_stacks_match_spec_formula(host, seed):
    rng = np.random.default_rng(seed)
    width, height = 9, 7
    layers = []
    for _ in range(rng.integers(1, 5)):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        opacity = float(rng.choice([1.0, 0.5, 0.0, 1.7, -0.3, rng.uniform()]))
        layers.append((rgba, opacity))
    layers[0][0][..., 3] = rng.integers(0, 256)  # vary the bottom's alpha too
    bg = tuple(int(v) for v in rng.integers(0, 256, 4)) if seed % 2 else (0, 0, 0, 0)
    want = spec_composite(layers, width, height, bg)
    got = run_host(host, layers, width, height, bg)
    assert_within_one(got, want)


def test_nan_opacity_means_default_opacity(host):
    px = np.array([[[10, 20, 30, 255]]], np.uint8)
    out = run_host(host, [(px, float("nan"))], 1, 1)
    assert out[0, 0].tolist() == [10, 20, 30, 255]


def test_layer_larger_than_canvas_is_rejected():
    with pytest.raises(ValueError, match="does not fit"):
        plan_composite(np, [(np.zeros((3, 3, 4), np.uint8), 1.0)], 2, 3)


# ----------------------------------------------------------------------- on a CUDA device

cuda_ok, cuda_reason = cupy_composite.is_available()
needs_cuda = pytest.mark.skipif(not cuda_ok, reason=f"no CUDA for the CuPy compositor: {cuda_reason}")


def _layers():
    rng = np.random.default_rng(5)
    nv12 = ImageFormat(13, 7, pixel_format=PixelFormat.NV12)
    rgba16 = ImageFormat(9, 11, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.U16)
    lum = ImageFormat(4, 3, color_model=ColorModel.L, channel_datatype=ChannelDatatype.F32)
    return [
        Layer("/a", 1, rng.integers(0, 256, nv12.byte_count(), dtype=np.uint8), nv12, 1.0, -10.0),
        Layer("/b", 2, rng.integers(0, 256, rgba16.byte_count(), dtype=np.uint8), rgba16, 0.7, -10.0),
        Layer("/c", 3, rng.uniform(-1, 2, 12).astype("<f4").view(np.uint8), lum, 0.4, 5.0),
    ]


@needs_cuda
def test_gpu_composite_equals_numpy_compositor():
    from pixelrun.kernels.reference import composite as numpy_composite

    layers = _layers()
    want = numpy_composite.composite(layers)
    got = cupy_composite.composite(layers)
    assert got.shape == want.shape
    assert_within_one(got, want)


@needs_cuda
def test_gpu_composite_equals_spec_formula_on_reference_decodes():
    layers = _layers()
    assert_within_one(cupy_composite.composite(layers), spec_composite_layers(layers))


@needs_cuda
def test_render_many_equals_frame_by_frame():
    layers = _layers()
    scenes = [layers, layers[:1], layers[1:], layers[::-1]]
    got = list(cupy_composite.render_many(scenes, window=3))
    assert len(got) == len(scenes)
    for frame, scene in zip(got, scenes):
        assert (frame == cupy_composite.composite(scene)).all()

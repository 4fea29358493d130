"""The built-in samples: one per format, valid byte counts, deterministic, and decoding
to (close to) the gradient they were built from."""

from __future__ import annotations

import numpy as np
import pytest

from pixelrun.kernels.formats import ChannelDatatype, ColorModel, PixelFormat, validate
from pixelrun.kernels.reference.convert import to_display_rgba
from pixelrun.kernels.samples import all_samples, rgb_gradient, sample


def _q(x):
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(int)


@pytest.mark.parametrize("w,h", [(1, 1), (3, 5), (7, 2), (5, 1), (64, 48)])
def test_every_format_once_with_exact_byte_count(w, h):
    samples = all_samples(w, h)
    assert len(samples) == len(PixelFormat) + 5 * 11
    assert len({s.name for s in samples}) == len(samples)
    for s in samples:
        assert (s.width, s.height) == (w, h) == (s.format.width, s.format.height)
        assert validate(len(s.data), s.format) is None, s.name


def test_samples_are_deterministic():
    assert [s.data for s in all_samples(9, 7)] == [s.data for s in all_samples(9, 7)]


def test_lookup_by_name_pair_and_enum():
    assert sample("NV12", 4, 2).format.pixel_format is PixelFormat.NV12
    assert sample(PixelFormat.YUY2, 4, 2).format.pixel_format is PixelFormat.YUY2
    f = sample("rgba/u16", 4, 2).format
    assert (f.color_model, f.channel_datatype) == (ColorModel.RGBA, ChannelDatatype.U16)
    f = sample(("BGR", "F32"), 4, 2).format
    assert (f.color_model, f.channel_datatype) == (ColorModel.BGR, ChannelDatatype.F32)
    with pytest.raises(ValueError, match="unknown pixel format"):
        sample("NV16")


def test_gradient_corners():
    g = rgb_gradient(5, 3)
    assert g[0, 0].tolist() == [0.0, 0.0, 1.0] and g[-1, -1].tolist() == [1.0, 1.0, 0.0]


W, H = 64, 48


@pytest.mark.parametrize("s", [s for s in all_samples(W, H) if s.format.pixel_format is not None
                               and not s.name.startswith(("Bayer", "Y8"))], ids=lambda s: s.name)
def test_yuv_samples_decode_to_the_gradient(s):
    # chroma comes from each block's top-left pixel, where the decode matches within rounding
    got = to_display_rgba(s.data, s.format)[::2, ::2, :3].astype(int)
    want = _q(rgb_gradient(W, H))[::2, ::2]
    assert np.abs(got - want).max() <= 2


@pytest.mark.parametrize("s", [s for s in all_samples(W, H) if s.name.startswith("Bayer")], ids=lambda s: s.name)
def test_bayer_samples_decode_near_the_gradient(s):
    got = to_display_rgba(s.data, s.format)[..., :3].astype(int)
    assert np.abs(got - _q(rgb_gradient(W, H))).max() <= 10  # demosaic blurs a little


@pytest.mark.parametrize("s", [s for s in all_samples(W, H) if s.format.pixel_format is None
                               and s.format.model is not ColorModel.L], ids=lambda s: s.name)
def test_colour_samples_decode_to_the_gradient(s):
    got = to_display_rgba(s.data, s.format).astype(int)
    assert np.abs(got[..., :3] - _q(rgb_gradient(W, H))).max() <= 1
    if s.format.model in (ColorModel.RGBA, ColorModel.BGRA):
        alpha = _q(1.0 - 0.5 * np.linspace(0.0, 1.0, W))
        assert np.abs(got[..., 3] - alpha[None, :]).max() <= 1

"""Properties of the reference decoder over random sizes and values (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pixelrun.kernels.formats import (
    DATATYPES,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
)
from pixelrun.kernels.reference.convert import to_display_rgba

# per-test settings (not a global profile: other test modules keep their own)
props = settings(max_examples=60, deadline=None)

sizes = st.tuples(st.integers(1, 19), st.integers(1, 13))


@st.composite
def pixel_format_images(draw):
    pf = draw(st.sampled_from(list(PixelFormat)))
    w, h = draw(sizes)
    fmt = ImageFormat(w, h, pixel_format=pf)
    data = draw(st.binary(min_size=fmt.byte_count(), max_size=fmt.byte_count()))
    return data, fmt


@st.composite
def colour_arrays(draw, models, datatypes=tuple(ChannelDatatype), finite=False):
    """An (H, W, C) array of one datatype, with its model; floats may hold NaN/Inf."""
    model = draw(st.sampled_from(models))
    dt = draw(st.sampled_from(datatypes))
    w, h = draw(sizes)
    channels = {ColorModel.L: 1, ColorModel.RGB: 3, ColorModel.BGR: 3}.get(model, 4)
    npd = DATATYPES[dt].numpy
    if DATATYPES[dt].is_float:
        elements = st.floats(allow_nan=not finite, allow_infinity=not finite, width=8 * npd.itemsize)
    else:
        elements = None  # hypothesis draws the dtype's whole range
    arr = draw(hnp.arrays(npd, (h, w, channels), elements=elements))
    return model, dt, arr


def _decode(arr, model, dt):
    h, w = arr.shape[:2]
    return to_display_rgba(arr.tobytes(), ImageFormat(w, h, color_model=model, channel_datatype=dt))


@props
@given(pixel_format_images())
def test_pixel_formats_give_h_w_4_uint8_opaque(image):
    data, fmt = image
    out = to_display_rgba(data, fmt)
    assert out.shape == (fmt.height, fmt.width, 4) and out.dtype == np.uint8
    assert (out[..., 3] == 255).all()


@props
@given(colour_arrays(list(ColorModel)))
def test_colour_images_give_h_w_4_uint8(image):
    model, dt, arr = image
    out = _decode(arr, model, dt)
    assert out.shape == (arr.shape[0], arr.shape[1], 4) and out.dtype == np.uint8


@props
@given(colour_arrays([ColorModel.RGB, ColorModel.L], (ChannelDatatype.U8,)))
def test_rgb_and_l_u8_pass_through_exactly(image):
    model, dt, arr = image
    out = _decode(arr, model, dt)
    assert (out[..., :3] == (arr if model == ColorModel.RGB else arr[..., :1])).all()
    assert (out[..., 3] == 255).all()


@props
@given(colour_arrays([ColorModel.RGB, ColorModel.RGBA]))
def test_bgr_equals_rgb_with_channels_swapped(image):
    model, dt, arr = image
    swapped = arr.copy()
    swapped[..., [0, 2]] = arr[..., [2, 0]]
    bgr_model = ColorModel.BGR if model == ColorModel.RGB else ColorModel.BGRA
    assert (_decode(swapped, bgr_model, dt) == _decode(arr, model, dt)).all()


@props
@given(sizes, st.data())
def test_y8_full_range_is_grey_y(size, data):
    w, h = size
    y = data.draw(hnp.arrays(np.uint8, (h, w)))
    out = to_display_rgba(y.tobytes(), ImageFormat(w, h, pixel_format=PixelFormat.Y8_FullRange))
    assert (out[..., :3] == y[..., None]).all() and (out[..., 3] == 255).all()


@props
@given(colour_arrays([ColorModel.L, ColorModel.RGB, ColorModel.BGR]))
def test_alpha_is_255_without_an_alpha_channel(image):
    model, dt, arr = image
    assert (_decode(arr, model, dt)[..., 3] == 255).all()


@props
@given(colour_arrays([ColorModel.RGBA, ColorModel.BGRA], finite=True))
def test_alpha_does_not_depend_on_colour(image):
    """contract §7: alpha is by the type's maximum, whatever the colour channels hold."""
    model, dt, arr = image
    other = arr.copy()
    colour = [0, 1, 2]
    other[..., colour] = arr[..., colour][::-1, ::-1]  # same alpha, different colour content
    assert (_decode(other, model, dt)[..., 3] == _decode(arr, model, dt)[..., 3]).all()

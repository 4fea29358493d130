"""The CuPy backend's Python side, run against a CuPy stand-in on the CPU.

cuda_host_harness.fake_cupy_modules gives `cupy`/`cupyx` modules whose "device"
arrays are NumPy memory and whose RawModule kernels are the real kernels/cuda sources
compiled for the host. So the public functions of cupy_convert, cupy_composite and
gpu_input run end to end here -- input handling, batching, launch arguments, copies
back -- and must agree with the NumPy reference. (Real CuPy and real CUDA are checked
by test_cupy_backend.py and test_conformance.py on a CUDA machine.)
"""

from __future__ import annotations

import numpy as np
import pytest
from composite_spec import spec_composite_layers
from conformance_cases import CASES
from cuda_host_harness import FakeDeviceArray, clear_cupy_caches, host_kernels_or_skip, install_fake_cupy

from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat, validate
from pixelrun.kernels.reference import convert as reference


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return host_kernels_or_skip(tmp_path_factory, "cuda_host_glue")


@pytest.fixture
def fake(host, monkeypatch):
    yield install_fake_cupy(host, monkeypatch)
    clear_cupy_caches()


def _close(got, want, tol, what=""):
    got = np.asarray(got)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= tol, f"{what}: max difference {diff.max()}"


def test_is_available_with_a_device(fake):
    assert cupy_convert.is_available() == (True, "")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_to_display_rgba_host_input(fake, case):
    got = cupy_convert.to_display_rgba(np.frombuffer(case.data, np.uint8), case.format, case.value_range)
    assert type(got) is np.ndarray
    want = reference.to_display_rgba(case.data, case.format, value_range=case.value_range)
    _close(got, want, 0 if case.exact else 1, case.id)


def test_device_input_any_dtype_and_misaligned(fake):
    fmt = ImageFormat(3, 2, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.F32)
    vals = np.linspace(-1, 2, 18, dtype="<f4")
    want = reference.to_display_rgba(vals.tobytes(), fmt)
    dev = fake.asarray(vals.reshape(2, 3, 3))  # a float32 device array: read as its bytes
    _close(cupy_convert.to_display_rgba(dev, fmt), want, 1, "float32 device array")
    padded = fake.asarray(np.concatenate([np.zeros(1, np.uint8), vals.view(np.uint8)]))
    _close(cupy_convert.to_display_rgba(padded[1:], fmt), want, 1, "unaligned view")
    gpu = cupy_convert.to_display_rgba_gpu(dev, fmt)
    assert isinstance(gpu, FakeDeviceArray) and gpu.shape == (2, 3, 4)


@pytest.mark.parametrize("kind", ["list-of-bytes", "host-2d", "device-2d", "list-of-device"])
def test_convert_batch_inputs(fake, kind):
    fmt = ImageFormat(7, 5, pixel_format=PixelFormat.Y_U_V16_LimitedRange)
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (3, fmt.byte_count()), dtype=np.uint8)
    given = {
        "list-of-bytes": [f.tobytes() for f in frames],
        "host-2d": frames,
        "device-2d": fake.asarray(frames),
        "list-of-device": [fake.asarray(f) for f in frames],
    }[kind]
    got = cupy_convert.convert_batch(given, fmt)
    assert type(got) is np.ndarray and got.shape == (3, 5, 7, 4)
    for i in range(3):
        _close(got[i], reference.to_display_rgba(frames[i], fmt), 1, f"frame {i}")


def test_convert_batch_colour_frames_get_their_own_ranges(fake):
    fmt = ImageFormat(2, 2, color_model=ColorModel.L, channel_datatype=ChannelDatatype.I16)
    frames = [np.array(v, "<i2").tobytes() for v in ([0, 10, 20, 30], [-500, 0, 250, 500], [7, 7, 7, 7])]
    got = cupy_convert.convert_batch(frames, fmt)
    for i, f in enumerate(frames):
        _close(got[i], reference.to_display_rgba(f, fmt), 0, f"frame {i}")


def test_wrong_byte_counts_are_named(fake):
    fmt = ImageFormat(4, 4, pixel_format=PixelFormat.NV12)
    n = fmt.byte_count()
    with pytest.raises(ValueError) as info:
        cupy_convert.to_display_rgba(bytes(n + 1), fmt)
    assert validate(n + 1, fmt) in str(info.value)
    with pytest.raises(ValueError) as info:
        cupy_convert.convert_batch([bytes(n), bytes(n - 2)], fmt)
    assert str(info.value).startswith("frame 1: ") and validate(n - 2, fmt) in str(info.value)
    with pytest.raises(ValueError, match="not a whole number of frames"):
        cupy_convert.convert_batch(fake.asarray(np.zeros(2 * n + 3, np.uint8)), fmt)
    with pytest.raises(ValueError, match="expected bytes"):
        cupy_convert.to_display_rgba("not bytes", fmt)


def test_engine_convert_dispatches_cupy(fake):
    from pixelrun.kernels import backends as convert

    fmt = ImageFormat(5, 3, pixel_format=PixelFormat.YUY2)
    data = np.random.default_rng(3).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    assert convert.choose_backend("auto", fake.asarray(data)) == "cupy"
    got = convert.convert(fake.asarray(data), fmt, backend="auto")
    _close(got, reference.to_display_rgba(data, fmt), 1)


# ----------------------------------------------------------------------- compositor


def _layers():
    from pixelrun.engine.scene import Layer

    rng = np.random.default_rng(11)
    a = ImageFormat(6, 4, pixel_format=PixelFormat.BayerRGGB8)
    b = ImageFormat(3, 5, color_model=ColorModel.RGBA, channel_datatype=ChannelDatatype.U8)
    return [
        Layer("/top", 2, rng.integers(0, 256, b.byte_count(), dtype=np.uint8), b, 0.6, 1.0),
        Layer("/bottom", 1, rng.integers(0, 256, a.byte_count(), dtype=np.uint8), a, 1.0, -10.0),
    ]


def test_composite_and_render_many(fake):
    from pixelrun.kernels.cuda import composite as cupy_composite
    from pixelrun.kernels.reference import composite as numpy_composite

    layers = _layers()
    got = cupy_composite.composite(layers)
    assert type(got) is np.ndarray
    _close(got, spec_composite_layers(layers), 1, "composite")
    _close(got, numpy_composite.composite(layers), 1, "NumPy compositor")
    bg = (13, 13, 13, 255)
    _close(cupy_composite.composite(layers, bg), numpy_composite.composite(layers, bg), 1, "opaque background")
    scenes = [layers, layers[:1], layers[1:], layers]
    frames = list(cupy_composite.render_many(scenes, window=3))
    assert len(frames) == 4
    for frame, scene in zip(frames, scenes):
        _close(frame, spec_composite_layers(scene), 1, "render_many")


# ----------------------------------------------------------------------- gpu_input


def test_gpu_input_async_copy_of_a_device_array(fake):
    from pixelrun import gpu_input

    dev = fake.asarray(np.arange(12, dtype=np.uint16).reshape(3, 4))[:, ::2]
    handle = gpu_input.to_host_async(dev)
    assert handle.shape == (3, 2) and handle.dtype == np.uint16
    dev[...] = 0  # later mutation must not reach the snapshot
    got = handle.result()
    assert type(got) is np.ndarray and got.flags.c_contiguous
    assert (got == np.arange(12, dtype=np.uint16).reshape(3, 4)[:, ::2]).all()
    assert handle.done()


def test_composite_leaves_out_a_bad_layer_with_a_warning(fake):
    from pixelrun.engine.scene import Layer
    from pixelrun.kernels.cuda import composite as cupy_composite
    from pixelrun.kernels.reference import composite as numpy_composite

    good = _layers()[1]
    fmt = ImageFormat(2, 2, pixel_format=PixelFormat.NV12)
    bad = Layer("/broken", 9, np.zeros(fmt.byte_count() - 1, np.uint8), fmt, 1.0, 5.0)
    with pytest.warns(numpy_composite.CompositeWarning, match="/broken"):
        got = cupy_composite.composite([good, bad])
    with pytest.warns(numpy_composite.CompositeWarning):
        want = numpy_composite.composite([good, bad])
    _close(got, want, 1, "without the bad layer")

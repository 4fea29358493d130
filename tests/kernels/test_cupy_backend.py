"""The CuPy backend on a CUDA device: batches, GPU-resident inputs, error messages.

(The per-case conformance against the reference runs in test_conformance.py, which
includes "cupy" among its backends.) Everything here skips with is_available()'s
reason where CuPy or a CUDA device is missing; the same kernels' logic is checked
on any machine by test_cupy_host_harness.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from conformance_cases import CASES

from pixelrun.kernels.cuda import convert as cupy_convert
from pixelrun.kernels.formats import ChannelDatatype, ColorModel, ImageFormat, PixelFormat, validate
from pixelrun.kernels.reference import convert as reference

ok, why = cupy_convert.is_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"CuPy backend unavailable: {why}")


def test_is_available_reports_a_reason_or_nothing():
    assert ok is True and why == ""


def _close(got, want, tol):
    diff = np.abs(np.asarray(got).astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= tol, diff.max()


def _groups():
    """Cases grouped by format, so each group is a batch of same-format frames."""
    groups: dict = {}
    for c in CASES:
        if c.value_range is None:
            groups.setdefault(c.format, []).append(c)
    return [g for g in groups.values() if len(g) >= 2]


@pytest.mark.parametrize("group", _groups(), ids=lambda g: g[0].format.describe().replace(" ", "-"))
def test_batch_equals_frames_one_by_one(group):
    fmt = group[0].format
    batch = cupy_convert.convert_batch([c.data for c in group], fmt)
    assert batch.shape == (len(group), fmt.height, fmt.width, 4)
    for i, case in enumerate(group):
        single = cupy_convert.to_display_rgba(case.data, fmt)
        assert (batch[i] == single).all(), case.id
        _close(batch[i], reference.to_display_rgba(case.data, fmt), 0 if case.exact else 1)


def test_device_resident_input_equals_host_input():
    import cupy

    fmt = ImageFormat(33, 17, pixel_format=PixelFormat.NV12)
    data = np.random.default_rng(0).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    on_gpu = cupy.asarray(data)
    got = cupy_convert.to_display_rgba_gpu(on_gpu, fmt)
    assert isinstance(got, cupy.ndarray)
    assert (got.get() == cupy_convert.to_display_rgba(data.tobytes(), fmt)).all()


def test_device_batch_as_2d_array_and_unaligned_view():
    import cupy

    fmt = ImageFormat(5, 3, color_model=ColorModel.RGB, channel_datatype=ChannelDatatype.F32)
    frames = np.random.default_rng(1).uniform(-1, 3, (4, 15 * 3)).astype("<f4").view(np.uint8)
    want = np.stack([reference.to_display_rgba(f.tobytes(), fmt) for f in frames])
    _close(cupy_convert.convert_batch(cupy.asarray(frames), fmt), want, 1)
    # a view starting one byte in: the backend must realign, not misread
    padded = cupy.zeros(frames.size + 1, dtype=cupy.uint8)
    padded[1:] = cupy.asarray(frames.reshape(-1))
    _close(cupy_convert.convert_batch(padded[1:], fmt), want, 1)


def test_torch_cuda_tensor_input():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    fmt = ImageFormat(8, 4, pixel_format=PixelFormat.YUY2)
    data = np.random.default_rng(2).integers(0, 256, fmt.byte_count(), dtype=np.uint8)
    got = cupy_convert.to_display_rgba(torch.from_numpy(data).cuda(), fmt)
    _close(got, reference.to_display_rgba(data, fmt), 1)


def test_batch_wrong_byte_count_names_the_frame():
    fmt = ImageFormat(4, 4, pixel_format=PixelFormat.NV12)
    good, bad = bytes(fmt.byte_count()), bytes(fmt.byte_count() - 1)
    with pytest.raises(ValueError) as info:
        cupy_convert.convert_batch([good, bad], fmt)
    assert "frame 1" in str(info.value) and validate(len(bad), fmt) in str(info.value)


def test_large_batch_matches_reference_on_a_sample():
    fmt = ImageFormat(1920, 1080, pixel_format=PixelFormat.Y_U_V12_LimitedRange)
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (8, fmt.byte_count()), dtype=np.uint8)
    got = cupy_convert.convert_batch(frames, fmt)
    _close(got[5], reference.to_display_rgba(frames[5], fmt), 1)

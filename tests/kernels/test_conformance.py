"""Every accelerated backend against the NumPy reference, on the shared cases.

The reference (pixelrun.kernels.reference.convert) is the oracle, so it is not a parameter
here; its own correctness is pinned by hand-built tests in test_reference.py and by
OpenCV in test_opencv_oracle.py. A backend that cannot run on this machine (no GPU
adapter, no CUDA) is skipped with the reason its `is_available()` gives.

Comparison follows formats.py's precision contract: bit-exact where `case.exact`,
else at most 1 per channel byte.
"""

from __future__ import annotations

import numpy as np
import pytest
from conformance_cases import CASES, Case

from pixelrun.kernels.backends import BACKENDS, ORACLE, availability, backend_module
from pixelrun.kernels.formats import ImageFormat, PixelFormat, validate
from pixelrun.kernels.reference import convert as reference

# every registered backend but the oracle itself
ACCELERATED = [name for name in BACKENDS if name != ORACLE]


@pytest.fixture(scope="module", params=ACCELERATED)
def backend(request):
    ok, reason = availability(request.param)
    if not ok:
        pytest.skip(f"{request.param} backend unavailable: {reason}")
    return backend_module(request.param)


def _host(a) -> np.ndarray:
    """Backends may answer with a device array (CuPy): bring it to host memory."""
    return np.asarray(a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a)


def _describe_mismatch(case: Case, got: np.ndarray, want: np.ndarray, tol: int) -> str:
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    bad = np.argwhere(diff.max(axis=-1) > tol)
    lines = [f"{case.id}: {len(bad)} pixel(s) differ by more than {tol} (max {diff.max()})"]
    for y, x in bad[:5]:
        lines.append(f"  (x={x}, y={y}): backend {got[y, x].tolist()} reference {want[y, x].tolist()}")
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_backend_matches_reference(backend, case: Case):
    want = reference.to_display_rgba(case.data, case.format, value_range=case.value_range)
    buffer = np.frombuffer(case.data, dtype=np.uint8)
    got = _host(backend.to_display_rgba(buffer, case.format, value_range=case.value_range))
    assert got.shape == want.shape and got.dtype == np.uint8, (got.shape, got.dtype)
    tol = 0 if case.exact else 1
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= tol, _describe_mismatch(case, got, want, tol)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_backend_accepts_python_buffers(backend, kind):
    fmt = ImageFormat(3, 5, pixel_format=PixelFormat.NV12)
    data = bytes(range(fmt.byte_count()))
    got = _host(backend.to_display_rgba(kind(data), fmt))
    want = reference.to_display_rgba(data, fmt)
    assert np.abs(got.astype(np.int16) - want.astype(np.int16)).max() <= 1


@pytest.mark.parametrize("delta", [-1, 1])
def test_backend_rejects_wrong_byte_count_with_validate_message(backend, delta):
    fmt = ImageFormat(7, 2, pixel_format=PixelFormat.Y_U_V12_LimitedRange)
    n = fmt.byte_count() + delta
    with pytest.raises(ValueError) as info:
        backend.to_display_rgba(np.zeros(n, dtype=np.uint8), fmt)
    assert validate(n, fmt) in str(info.value)


def test_cases_are_well_formed_and_cover_every_format():
    """The suite itself: right byte counts, and every format and datatype present."""
    for case in CASES:
        assert validate(len(case.data), case.format) is None, case.id
    pixel_formats = {c.format.pixel_format for c in CASES if c.format.pixel_format is not None}
    assert pixel_formats == set(PixelFormat)
    pairs = {(c.format.model, c.format.datatype) for c in CASES if c.format.pixel_format is None}
    assert len(pairs) == 5 * 11

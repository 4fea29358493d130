"""GPU-resident inputs: detection, the asynchronous host copy and its snapshot rule.

Detection and the host/no-CuPy paths run everywhere; the copies themselves need a
CUDA device (CuPy or torch) and skip with the reason otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from pixelrun import gpu_input


class FakeCudaArray:
    """Looks like a CUDA array to the interface check (never dereferenced)."""

    __cuda_array_interface__ = {"shape": (2, 3), "typestr": "|u1", "data": (0, False), "version": 3}


class FakeDlpack:
    def __init__(self, device_type):
        self.device_type = device_type

    def __dlpack_device__(self):
        if self.device_type is None:
            raise RuntimeError("no device")
        return (self.device_type, 0)


def test_numpy_is_not_a_gpu_array():
    assert not gpu_input.is_gpu_array(np.zeros(3))


def test_cuda_array_interface_is_a_gpu_array():
    assert gpu_input.is_gpu_array(FakeCudaArray())


@pytest.mark.parametrize("device_type,expected", [(2, True), (13, True), (1, False), (None, False)])
def test_dlpack_device_decides(device_type, expected):
    assert gpu_input.is_gpu_array(FakeDlpack(device_type)) is expected


def test_host_input_is_ready_at_once_with_shape_and_dtype():
    arr = np.arange(12, dtype=np.uint16).reshape(3, 4)
    handle = gpu_input.to_host_async(arr)
    assert handle.done()
    assert handle.shape == (3, 4) and handle.dtype == np.uint16
    assert (handle.result() == arr).all()
    assert (gpu_input.to_host(arr) == arr).all()


def test_foreign_cuda_array_without_cupy_says_what_is_missing():
    try:
        import cupy  # noqa: F401 - only asks whether CuPy is installed
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed here: the missing-CuPy message cannot be produced")
    with pytest.raises(ValueError, match="needs CuPy"):
        gpu_input.to_host_async(FakeCudaArray())


# ---------------------------------------------------------------------------- on a GPU


def _cupy_device():
    try:
        import cupy
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "no CUDA device"
    except Exception as exc:
        return None, f"no CUDA device: {exc}"
    return cupy, ""


def test_cupy_copy_is_a_snapshot_taken_at_call_time():
    cupy, why = _cupy_device()
    if cupy is None:
        pytest.skip(f"needs a CUDA device with CuPy: {why}")
    src = cupy.arange(24, dtype=cupy.float32).reshape(2, 3, 4)
    handle = gpu_input.to_host_async(src[:, ::-1])  # non-contiguous on purpose
    assert handle.shape == (2, 3, 4) and handle.dtype == np.float32
    src[...] = -1  # the caller reuses its buffer right away
    got = handle.result()
    want = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::-1]
    assert got.flags.c_contiguous and (got == want).all()
    assert handle.done()


def test_torch_cuda_tensor_copy_is_a_snapshot():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    t = torch.arange(10, dtype=torch.int16, device="cuda")
    handle = gpu_input.to_host_async(t)
    t.fill_(7)
    assert (handle.result() == np.arange(10, dtype=np.int16)).all()


def test_torch_bfloat16_is_refused_with_a_clear_message():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    with pytest.raises(ValueError, match="no NumPy equivalent"):
        gpu_input.to_host_async(torch.zeros(3, dtype=torch.bfloat16, device="cuda"))

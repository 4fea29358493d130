"""Arrays that live on a GPU (CuPy, torch CUDA tensors, anything with
``__cuda_array_interface__`` or DLPack on a CUDA device), brought to host memory by
the SDK itself so users never call ``.get()`` -- and without making the logging
thread wait for the copy.

Interface used by the SDK's image handling:

- ``is_gpu_array(obj) -> bool``: whether `obj`'s data lives on a CUDA device.
- ``to_host_async(obj) -> HostCopy``: starts the copy and returns at once. The SDK
  keeps the handle with the row and calls ``handle.result()`` on its batcher thread,
  which waits (only there) for the copy and gives the NumPy array (same shape and
  dtype, C-contiguous). ``handle.done()`` polls without waiting.
- ``to_host(obj) -> numpy.ndarray``: the synchronous form, ``to_host_async(obj).result()``.

How the copy runs (CuPy and torch alike):

1. A device-to-device snapshot of the array is enqueued on the caller's current
   stream. It is ordered after whatever produced the data and before anything the
   caller enqueues next, so the caller may overwrite its array right after `log`
   returns: this is the one copy that protects the user from later mutation, and on
   the GPU it costs microseconds.
2. A dedicated non-blocking copy stream (one per device, shared by all threads)
   waits for that snapshot through an event and copies it device-to-host into pinned
   (page-locked) host memory, asynchronously: the DMA overlaps the caller's GPU work
   and the logging thread goes on at once.
3. An event recorded after the copy is what `result()` waits for. The pinned buffer
   becomes the returned array's memory (no further host copy); it returns to the
   pinned pool when that array is dropped. The snapshot is released then too.

Work the caller did on *other* streams than its current one must be synchronised by
the caller, as with any CUDA consumer. Objects with only DLPack or only
``__cuda_array_interface__`` (Numba, JAX, ...) are wrapped zero-copy with CuPy, which
must then be installed; the message says so otherwise.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Optional

import numpy as np

__all__ = ["is_gpu_array", "to_host", "to_host_async", "HostCopy"]

_DLPACK_CUDA_DEVICE_TYPES = {2, 3, 13}  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


def is_gpu_array(obj) -> bool:
    """True for objects whose data lives on a CUDA device."""
    if _module_of(obj) == "torch":
        return bool(getattr(obj, "is_cuda", False))
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    if isinstance(obj, np.ndarray):  # NumPy has __dlpack_device__ too: CPU
        return False
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None:
        try:
            return int(dev()[0]) in _DLPACK_CUDA_DEVICE_TYPES
        except Exception:
            return False
    return False


def _module_of(obj) -> str:
    return type(obj).__module__.split(".")[0]


# ----------------------------------------------------------------------------- handles


class HostCopy:
    """A device-to-host copy in flight. `result()` waits for it and returns the array.

    `shape` and `dtype` (NumPy) are known at once, so the SDK can validate the image
    and build its ImageFormat on the logging thread before the bytes arrive.
    """

    shape: tuple
    dtype: np.dtype

    def done(self) -> bool:
        """True once `result()` would return without waiting."""
        raise NotImplementedError

    def result(self) -> np.ndarray:
        """Wait for the copy; the (C-contiguous) NumPy array with the source's shape and dtype."""
        raise NotImplementedError


class _Ready(HostCopy):
    """Nothing to wait for (host input)."""

    def __init__(self, array: np.ndarray):
        self._array = array
        self.shape, self.dtype = array.shape, array.dtype

    def done(self) -> bool:
        return True

    def result(self) -> np.ndarray:
        return self._array


class _EventCopy(HostCopy):
    """A copy that is finished once `event` (CuPy or torch CUDA event) has completed."""

    def __init__(self, event, host, keep_alive, shape, dtype, to_numpy=None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._event = event
        self._host = host
        self._keep_alive = keep_alive  # the device snapshot: freed only after the copy
        self._to_numpy = to_numpy
        self._result: Optional[np.ndarray] = None
        self._lock = threading.Lock()

    def done(self) -> bool:
        return self._result is not None or bool(self._event.query())

    def result(self) -> np.ndarray:
        with self._lock:
            if self._result is None:
                self._event.synchronize()
                host = self._host
                self._result = self._to_numpy(host) if self._to_numpy else host
                self._host = self._keep_alive = self._event = None
            return self._result


# ----------------------------------------------------------------------------- streams

_streams: dict = {}
_streams_lock = threading.Lock()


def _copy_stream(kind: str, device_id: int, make):
    """The dedicated copy stream of one device (created once, shared by all threads)."""
    key = (kind, device_id)
    with _streams_lock:
        stream = _streams.get(key)
        if stream is None:
            stream = _streams[key] = make()
        return stream


# ------------------------------------------------------------------------------- CuPy


def _import_cupy(obj):
    try:
        import cupy  # noqa: PLC0415 - optional: only for CUDA arrays
        import cupyx  # noqa: PLC0415 - optional, as cupy above: only for CUDA arrays
    except ImportError:
        raise ValueError(
            f"a CUDA array of type {type(obj).__module__}.{type(obj).__name__} was given, "
            "and copying it to the host needs CuPy, which is not installed "
            "(pip install cupy-cuda12x, or pass a NumPy array)"
        ) from None
    return cupy, cupyx


def _cupy_copy(cupy, cupyx, arr) -> HostCopy:
    with arr.device:
        current = cupy.cuda.get_current_stream()
        snapshot = cupy.array(arr, copy=True, order="C")  # step 1, on the caller's stream
        stream = _copy_stream("cupy", arr.device.id, lambda: cupy.cuda.Stream(non_blocking=True))
        stream.wait_event(current.record())
        host = cupyx.empty_pinned(snapshot.shape, dtype=snapshot.dtype)
        if snapshot.nbytes:
            snapshot.data.copy_to_host_async(ctypes.c_void_p(host.ctypes.data), snapshot.nbytes, stream=stream)
        return _EventCopy(stream.record(), host, snapshot, snapshot.shape, snapshot.dtype)


def _foreign_to_cupy(cupy, obj):
    """Zero-copy CuPy view of a non-CuPy CUDA array (interface or DLPack)."""
    if hasattr(obj, "__cuda_array_interface__"):
        return cupy.asarray(obj)
    return cupy.from_dlpack(obj)


# ------------------------------------------------------------------------------ torch


def _torch_copy(tensor) -> HostCopy:
    import torch  # noqa: PLC0415 - the object is a torch tensor, so torch is there

    t = tensor.detach()
    try:
        np_dtype = torch.empty(0, dtype=t.dtype).numpy().dtype
    except TypeError:
        raise ValueError(
            f"a torch tensor of dtype {t.dtype} has no NumPy equivalent; "
            "convert it first (e.g. tensor.float())"
        ) from None
    device = t.device
    current = torch.cuda.current_stream(device)
    snapshot = t.clone(memory_format=torch.contiguous_format)  # step 1, caller's stream
    stream = _copy_stream("torch", device.index or 0, lambda: torch.cuda.Stream(device=device))
    stream.wait_stream(current)
    host = torch.empty(snapshot.shape, dtype=snapshot.dtype, pin_memory=True)
    with torch.cuda.stream(stream):
        host.copy_(snapshot, non_blocking=True)
        event = torch.cuda.Event()
        event.record(stream)
    snapshot.record_stream(stream)  # the caching allocator must not reuse it early

    # .numpy() of the pinned tensor shares its memory: no further host copy
    return _EventCopy(event, host, snapshot, tuple(snapshot.shape), np_dtype, lambda h: h.numpy())


# ------------------------------------------------------------------------------ entry


def to_host_async(obj) -> HostCopy:
    """Start copying a GPU array to host memory; returns a handle, never waits.

    Host arrays (NumPy, or anything that is not on a CUDA device) come back as a
    ready handle holding ``np.asarray(obj)``. Raises ValueError, naming what is
    missing, when the array cannot be copied (CuPy absent for a foreign CUDA array,
    a torch dtype NumPy lacks).
    """
    if not is_gpu_array(obj):
        return _Ready(np.asarray(obj))
    if _module_of(obj) == "torch":
        return _torch_copy(obj)
    cupy, cupyx = _import_cupy(obj)
    arr = obj if isinstance(obj, cupy.ndarray) else _foreign_to_cupy(cupy, obj)
    return _cupy_copy(cupy, cupyx, arr)


def to_host(obj) -> np.ndarray:
    """Copy a GPU array to a NumPy array and wait for it (same shape and dtype)."""
    return to_host_async(obj).result()

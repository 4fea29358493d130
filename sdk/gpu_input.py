"""Arrays that live on a GPU (CuPy, torch CUDA tensors, anything with
``__cuda_array_interface__`` or DLPack on a CUDA device), brought to host memory by
the SDK itself so users never call ``.get()``.

Interface used by the SDK's image handling:
- ``is_gpu_array(obj) -> bool``
- ``to_host(obj) -> numpy.ndarray``: a host copy with the same shape and dtype.
"""

from __future__ import annotations

import numpy as np

_DLPACK_CUDA_DEVICE_TYPES = {2, 3, 13}  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


def is_gpu_array(obj) -> bool:
    """True for objects whose data lives on a CUDA device."""
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None and not isinstance(obj, np.ndarray):
        try:
            return int(dev()[0]) in _DLPACK_CUDA_DEVICE_TYPES
        except Exception:
            return False
    return False


def to_host(obj) -> np.ndarray:
    """Copy a GPU array to a NumPy array (synchronous fallback path)."""
    mod = type(obj).__module__.split(".")[0]
    if mod == "torch":
        return obj.detach().to("cpu").numpy()
    if mod == "cupy":
        return obj.get()
    import cupy  # noqa: PLC0415 - only needed for foreign CUDA arrays

    return cupy.asnumpy(cupy.asarray(obj))

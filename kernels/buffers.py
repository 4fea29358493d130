"""Raw image buffers as every backend receives them.

One rule for what counts as "raw bytes" (bytes, bytearray, memoryview, a uint8
array), shared by the NumPy reference, the WGSL and the CUDA bindings.
"""

from __future__ import annotations

from typing import Union

import numpy as np

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]


def as_byte_view(buffer: Buffer, accepted: str = "bytes, bytearray, memoryview or a uint8 array") -> np.ndarray:
    """A 1-D uint8 view of the caller's bytes (no copy when already contiguous).

    Raises ValueError naming `accepted` and what came instead.
    """
    if isinstance(buffer, np.ndarray):
        if buffer.dtype != np.uint8:
            raise ValueError(f"expected raw bytes as a uint8 array, got a {buffer.dtype} array")
        return np.ascontiguousarray(buffer).reshape(-1)
    if isinstance(buffer, memoryview) and not buffer.c_contiguous:
        buffer = buffer.tobytes()  # a strided view: its bytes in logical order, once
    if isinstance(buffer, (bytes, bytearray, memoryview)):
        return np.frombuffer(buffer, dtype=np.uint8)
    raise ValueError(f"expected {accepted}, got {type(buffer).__name__}")

"""NumPy views of Arrow arrays without pyarrow's ``to_numpy``.

pyarrow's ``Array.to_numpy`` imports pandas the first time it runs whenever pandas is
installed (~0.25 s on this machine), even for an int64 array it could hand over as is.
In a live viewer that first call happens on the first chunk a program streams in, so
its first frames arrived ~200 ms late (measured with `pixelrun view` and pandas
installed, the common case on a user's machine). Fixed-width arrays are read straight
from their Arrow buffers here instead: that is all the decode and scene paths need.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["fixed_width_values", "validity_mask"]


def fixed_width_values(arr: pa.Array, dtype) -> np.ndarray:
    """The values of a fixed-width numeric Arrow array as a NumPy array of `dtype`.

    Read from the data buffer (a view when the Arrow type already is `dtype`, else one
    cast); null slots hold whatever bytes the buffer has there, so callers mask them
    (see `validity_mask`). Other types (boolean, nested, variable width) fall back to
    pyarrow's conversion.
    """
    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
        return np.asarray(arr.to_numpy(zero_copy_only=False)).astype(dtype, copy=False)
    width = t.bit_width // 8
    n = len(arr)
    buf = arr.buffers()[1]
    if n == 0 or buf is None:
        return np.zeros(n, dtype)
    # Arrow stores fixed-width values little-endian, natively sized: int64 timestamps too
    src = np.dtype(f"<{'f' if pa.types.is_floating(t) else ('u' if pa.types.is_unsigned_integer(t) else 'i')}{width}")
    raw = np.frombuffer(buf, dtype=src, count=n, offset=arr.offset * width)
    raw.flags.writeable = False  # a view of Arrow's (immutable) data, like to_numpy gives
    return raw.astype(dtype, copy=False)


def validity_mask(arr: pa.Array) -> np.ndarray:
    """True where `arr` holds a value (not null), from its validity bitmap."""
    n = len(arr)
    if arr.null_count == 0:
        return np.ones(n, bool)
    if arr.type == pa.null():
        return np.zeros(n, bool)
    bitmap = arr.buffers()[0]
    # bit i of the bitmap (LSB first) is row i, counted from the array's offset
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
    return bits[arr.offset: arr.offset + n].astype(bool)

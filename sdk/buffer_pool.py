"""Recycled memory for the one protective copy of large frames.

Copying a 1080p frame into freshly allocated memory costs about 3x the copy itself
(page faults, zeroing); copying into memory that was used before does not. Frames
are copied into leased buffers; a buffer returns to the pool only when nothing
references the frame any more (numpy views, Arrow arrays, sinks all gone), which
`weakref.finalize` on the exporting object detects, so reuse can never alias data
still in use.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

__all__ = ["BufferPool", "POOL"]

MIN_POOLED_BYTES = 256 * 1024  # smaller copies are cheap; not worth pooling


class _Lease:
    """Exports a pooled buffer to numpy (as the arrays' base) and nothing else."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, mem: np.ndarray) -> None:
        self.__array_interface__ = mem.__array_interface__


class BufferPool:
    """Free lists of uint8 buffers by size, bounded by `max_bytes` of idle memory."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._free: dict[int, list] = {}
        self._idle = 0
        self._lock = threading.Lock()

    def after_fork_in_child(self) -> None:
        """Fresh lock in a forked child (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def empty(self, nbytes: int) -> np.ndarray:
        """A 1-D uint8 array of `nbytes`, recycled when possible (contents undefined)."""
        if nbytes < MIN_POOLED_BYTES:
            return np.empty(nbytes, dtype=np.uint8)
        with self._lock:
            lst = self._free.get(nbytes)
            mem = lst.pop() if lst else None
            if mem is not None:
                self._idle -= nbytes
        if mem is None:
            mem = np.empty(nbytes, dtype=np.uint8)
        lease = _Lease(mem)
        arr = np.asarray(lease)  # base is the lease: it lives as long as any view
        weakref.finalize(lease, self._give_back, mem)
        return arr

    def _give_back(self, mem: np.ndarray) -> None:
        with self._lock:
            if self._idle + mem.nbytes <= self.max_bytes:
                self._free.setdefault(mem.nbytes, []).append(mem)
                self._idle += mem.nbytes

    def copy(self, arr: np.ndarray, dtype=None) -> np.ndarray:
        """A packed, row-major copy of `arr` (optionally converted to `dtype`)."""
        dtype = np.dtype(dtype or arr.dtype)
        out = self.empty(arr.size * dtype.itemsize).view(dtype).reshape(arr.shape)
        np.copyto(out, arr, casting="unsafe")
        return out


POOL = BufferPool()

"""Large buffers whose pages are already in memory, for data that arrives at frame rate.

A decoded 1080p frame is ~3 MB of new memory that the store keeps. Fresh memory costs a
page fault per 4 KiB page on first write: ~1.1 ms per 3 MB on a typical VM and 2.7 ms on
the NVIDIA machine's, paid inside LZ4 decompression, on the live viewer's log -> pixel
path (more than the decompression itself, 0.1 ms into touched memory). `PrefaultPool`
moves that cost off the path: a background thread keeps a few buffers of each recently
asked size allocated and touched, and `take` hands one out (or, when none is ready, a
fresh one: the caller then pays the faults as before; nothing waits).

The reserve is bounded (`max_bytes`, default 32 MB, and `per_size` buffers of at most
`sizes` distinct sizes); sizes not asked for lately are forgotten and their buffers
freed. Buffers under `min_bytes` are plain allocations. Page touching runs outside the
GIL (ctypes' memset), so the thread never stalls a window or ingest thread.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from collections import OrderedDict, deque
from typing import Optional

import numpy as np

__all__ = ["PrefaultPool", "shared_pool"]


class PrefaultPool:
    """Ready-touched uint8 buffers by exact size; see the module docstring."""

    def __init__(self, *, per_size: int = 3, sizes: int = 4, max_bytes: int = 32 << 20,
                 min_bytes: int = 1 << 20) -> None:
        self.per_size = per_size
        self.sizes = sizes
        self.max_bytes = max_bytes
        self.min_bytes = min_bytes
        self._cond = threading.Condition()
        self._ready: "OrderedDict[int, deque]" = OrderedDict()  # size -> touched buffers; most recent last
        self._reserved = 0  # bytes in _ready
        self._thread: Optional[threading.Thread] = None
        self.hits = 0  # takes served from the reserve
        self.misses = 0  # takes of a pooled size that found none ready

    def take(self, n: int) -> np.ndarray:
        """A uint8 array of `n` bytes (contents undefined); touched already when one was ready."""
        if n < self.min_bytes or n > self.max_bytes:
            return np.empty(n, np.uint8)
        with self._cond:
            queue = self._ready.get(n)
            if queue is None:
                queue = self._ready[n] = deque()
                while len(self._ready) > self.sizes:  # forget the size asked for longest ago
                    _, old = self._ready.popitem(last=False)
                    self._reserved -= sum(b.nbytes for b in old)
            else:
                self._ready.move_to_end(n)
            buf = queue.popleft() if queue else None
            if buf is not None:
                self._reserved -= n
                self.hits += 1
            else:
                self.misses += 1
            self._ensure_thread()
            self._cond.notify()
        return buf if buf is not None else np.empty(n, np.uint8)

    def reserved_bytes(self) -> int:
        with self._cond:
            return self._reserved

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            t = threading.Thread(target=self._fill, name="pixelrun-prefault", daemon=True)
            try:
                t.start()
            except RuntimeError:  # interpreter shutting down: takes are plain allocations from now on
                return
            self._thread = t

    def _next_size(self) -> Optional[int]:
        # the most recently asked size first: the stream being received now
        for n in reversed(self._ready):
            if len(self._ready[n]) < self.per_size and self._reserved + n <= self.max_bytes:
                return n
        return None

    def _fill(self) -> None:
        while True:
            with self._cond:
                n = self._next_size()
                while n is None:
                    self._cond.wait(1.0)  # bounded: a daemon thread, re-checks on its own
                    n = self._next_size()
                self._reserved += n  # claimed while it is being touched
            try:
                # a mapping of its own, returned to the system when the last reference
                # goes (the store evicting a frame): heap memory freed by another thread
                # would stay in this thread's malloc arena, outside every memory limit
                buf = np.frombuffer(mmap.mmap(-1, n), np.uint8)
                ctypes.memset(buf.ctypes.data, 0, n)  # every page faulted in, without the GIL
            except (MemoryError, OSError):
                buf = None
            with self._cond:
                queue = self._ready.get(n)
                if buf is None or queue is None:  # out of memory, or the size was forgotten meanwhile
                    self._reserved -= n
                    if buf is None:
                        self._cond.wait(1.0)
                    continue
                queue.append(buf)

    def _after_fork_in_child(self) -> None:
        # the thread does not exist in a forked child; its lock may have been held
        self._cond = threading.Condition()
        self._ready = OrderedDict()
        self._reserved = 0
        self._thread = None


_shared = PrefaultPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_shared._after_fork_in_child)


def shared_pool() -> PrefaultPool:
    """The process-wide pool (decoders of .rrd messages take their buffers from it)."""
    return _shared

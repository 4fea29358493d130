"""The buffer pool recycles memory only once nothing references a frame."""

from __future__ import annotations

import gc

import numpy as np
import pyarrow as pa

from pixelrun.buffer_pool import MIN_POOLED_BYTES, BufferPool


def test_live_frames_are_never_handed_out_again():
    pool = BufferPool()
    n = MIN_POOLED_BYTES
    a = pool.empty(n)
    a[:] = 1
    arrow = pa.py_buffer(a.reshape(2, -1)[1:])  # only a derived view survives
    addr = a.ctypes.data
    del a
    gc.collect()
    b = pool.empty(n)
    assert b.ctypes.data != addr  # still referenced through Arrow: not reused
    b[:] = 2
    assert bytes(arrow)[:4] == b"\x01\x01\x01\x01"
    del arrow
    gc.collect()
    c = pool.empty(n)
    assert c.ctypes.data == addr  # released: recycled


def test_copy_is_exact_and_packs_and_swaps():
    pool = BufferPool()
    src = np.arange(MIN_POOLED_BYTES // 2, dtype=">u2").reshape(-1, 8)[:, ::2]
    out = pool.copy(src, np.dtype("<u2"))
    assert out.flags.c_contiguous and out.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(out, src)


def test_idle_memory_is_bounded():
    pool = BufferPool(max_bytes=MIN_POOLED_BYTES)
    xs = [pool.empty(MIN_POOLED_BYTES) for _ in range(3)]
    del xs
    gc.collect()
    assert pool._idle == MIN_POOLED_BYTES

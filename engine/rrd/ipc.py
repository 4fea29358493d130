"""Untrusted chunk payloads, checked before anything is allocated on their word.

Two checks, shared by the decoder (decode.py) and the footer reader (footer.py):
bounded LZ4 *block* decompression (`lz4_decompress`), and the Arrow IPC checks below
(`check_ipc_payload`).

LZ4: a few MB of LZ4 can claim (and inflate to) 255 times their size, so the size a
message declares is checked against a limit and against what LZ4 can produce before
the output is allocated.

Arrow IPC: pyarrow reads an uncompressed IPC stream zero-copy from the payload, so
what it builds is bounded by the payload's own bytes, with one exception: Arrow's
optional *body compression* (LZ4_FRAME / ZSTD per buffer), where each buffer starts
with a declared uncompressed length that pyarrow allocates before decompressing. Rerun
0.41 never uses it (it compresses the whole payload with LZ4 itself, see decode.py),
so a payload that asks for it is refused here, before any allocation. Every buffer a
record batch declares must also lie inside the message body that carries it, after the
buffer before it (as every writer lays them out): a changed buffer offset that still
lands inside the body would otherwise read other bytes as pixels, unnoticed.

Only the few flatbuffer fields these checks need are read (Arrow's Message.fbs:
Message{version, header_type, header, bodyLength}, RecordBatch{length, nodes,
buffers, compression}, DictionaryBatch{id, data}); every read is bounds-checked.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct

import lz4.block
import numpy as np
import pyarrow as pa

from pixelrun.engine.prefault import shared_pool

# An LZ4 payload declaring more than this uncompressed is refused before anything is
# allocated. Chunks are written a few MB at a time by Rerun's batcher and ours, and
# our SDK compresses only when asked; PIXELRUN_MAX_DECOMPRESSED_BYTES raises the bound
# for a file that really holds larger compressed chunks.
DEFAULT_MAX_DECOMPRESSED_BYTES = 512 << 20
# LZ4 block format: one byte of input yields at most 255 bytes of output (a match
# length extension byte), so a larger claim is impossible, not merely suspicious.
LZ4_MAX_EXPANSION = 255


def default_max_decompressed_bytes() -> int:
    """PIXELRUN_MAX_DECOMPRESSED_BYTES when set (bytes), else 512 MiB."""
    value = os.environ.get("PIXELRUN_MAX_DECOMPRESSED_BYTES", "").strip()
    if not value:
        return DEFAULT_MAX_DECOMPRESSED_BYTES
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"PIXELRUN_MAX_DECOMPRESSED_BYTES must be a byte count, got {value!r}") from None


def lz4_decompress(payload, declared: int, limit: int) -> bytes:
    """Decompress an LZ4 block whose uncompressed size is `declared`, checking that
    size against `limit` and against what LZ4 can produce before allocating it."""
    n = len(payload)
    if declared <= 0:
        raise ValueError(f"LZ4 payload of {n} bytes declares an uncompressed size of {declared}")
    if declared > limit:
        raise ValueError(
            f"LZ4 payload of {n} bytes declares {declared} bytes uncompressed, more than the "
            f"{limit}-byte limit (max_decompressed_bytes, PIXELRUN_MAX_DECOMPRESSED_BYTES); "
            "refused without decompressing"
        )
    if declared > LZ4_MAX_EXPANSION * n + 64:
        raise ValueError(
            f"LZ4 payload of {n} bytes declares {declared} bytes uncompressed, more than "
            f"LZ4 can expand to (x{LZ4_MAX_EXPANSION}): damaged"
        )
    pool = shared_pool()
    native = _native_lz4() if declared >= pool.min_bytes else None
    if native is not None:
        # into a buffer whose pages are in memory already (engine/prefault.py): a frame's
        # page faults would cost more than its decompression, on the live viewer's path
        out = pool.take(declared)
        src = payload if isinstance(payload, bytes) else bytes(payload)
        got = native(src, out.ctypes.data, n, declared)  # ctypes releases the GIL
        if got != declared:
            raise ValueError(f"LZ4 payload of {n} bytes does not inflate to the {declared} bytes its message "
                             f"declares ({'damaged' if got < 0 else f'{got} bytes'})")
        return memoryview(out)
    out = lz4.block.decompress(payload, uncompressed_size=declared)
    if len(out) != declared:
        raise ValueError(f"LZ4 payload inflates to {len(out)} bytes, its message declares {declared}")
    return out


@functools.lru_cache(maxsize=1)
def _native_lz4():
    """LZ4_decompress_safe of the LZ4 library python-lz4 is built with (its extension
    exports it), to decompress into a buffer of ours; None where it is not found (then
    python-lz4's own decompress, which allocates its output)."""
    try:
        fn = ctypes.CDLL(lz4.block._block.__file__).LZ4_decompress_safe
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_HEADER_DICTIONARY_BATCH = 2
_HEADER_RECORD_BATCH = 3


class _Flat:
    """Bounds-checked reads from one flatbuffer (ValueError on anything out of range)."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def _unpack(self, fmt: str, pos: int):
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise ValueError(f"flatbuffer read at {pos} outside its {len(self.buf)} bytes")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def table(self, pos: int) -> tuple[int, int, int]:
        """(table position, vtable position, vtable size) of the table at `pos`."""
        vt = pos - self._unpack("<i", pos)
        return pos, vt, self._unpack("<H", vt)

    def field(self, tab: tuple[int, int, int], i: int):
        """Absolute position of field i of a table, or None when absent."""
        pos, vt, vt_size = tab
        slot = 4 + 2 * i
        if slot + 2 > vt_size:
            return None
        off = self._unpack("<H", vt + slot)
        return None if off == 0 else pos + off

    def deref(self, pos: int) -> int:
        return pos + self._unpack("<I", pos)

    def structs16(self, tab, i: int) -> np.ndarray:
        """A vector of 16-byte structs of two int64 (FieldNode, Buffer) as (n, 2)."""
        p = self.field(tab, i)
        if p is None:
            return np.empty((0, 2), np.int64)
        v = self.deref(p)
        n = self._unpack("<I", v)
        if v + 4 + 16 * n > len(self.buf):
            raise ValueError(f"flatbuffer vector of {n} entries runs past its {len(self.buf)} bytes")
        return np.frombuffer(self.buf, "<i8", count=2 * n, offset=v + 4).reshape(n, 2)


def _check_record_batch(flat: _Flat, tab, body_len: int, where: str) -> None:
    if flat.field(tab, 3) is not None:
        raise ValueError(
            f"{where} uses Arrow IPC body compression, which Rerun 0.41 never writes "
            "(its buffers declare their own uncompressed sizes); refused without decompressing"
        )
    nodes = flat.structs16(tab, 1)
    if nodes.size and (nodes.min() < 0 or bool(np.any(nodes[:, 1] > nodes[:, 0]))):
        raise ValueError(f"{where} declares a negative length or more nulls than values")
    bufs = flat.structs16(tab, 2)
    if bufs.size:
        if bufs.min() < 0:
            raise ValueError(f"{where} declares a negative buffer offset or length")
        ends = bufs[:, 0] + bufs[:, 1]
        worst = int(np.argmax(ends))
        if int(ends[worst]) > body_len:
            raise ValueError(
                f"{where}: buffer {worst} spans bytes {int(bufs[worst, 0])}..{int(ends[worst])} "
                f"of a {body_len}-byte message body"
            )
        # Writers (arrow-rs for Rerun, Arrow C++ for us) lay buffers out one after the
        # other; one that starts inside the one before has had its offset changed.
        used = np.flatnonzero(bufs[:, 1] > 0)
        if used.size > 1:
            starts, prev_ends = bufs[used[1:], 0], ends[used[:-1]]
            bad = np.flatnonzero(starts < prev_ends)
            if bad.size:
                i = int(used[1:][bad[0]])
                raise ValueError(
                    f"{where}: buffer {i} starts at byte {int(bufs[i, 0])}, inside the buffer "
                    f"before it (which ends at {int(prev_ends[bad[0]])})"
                )


def check_ipc_payload(payload) -> None:
    """ValueError (saying what is wrong) unless `payload` is an Arrow IPC stream whose
    record batches are uncompressed and whose buffers lie inside their message bodies.

    Reads only message metadata; the payload's data buffers are not touched or copied.
    """
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(payload))
    index = 0
    while True:
        try:
            msg = reader.read_next_message()
        except StopIteration:
            return
        where = f"Arrow IPC message {index} ({msg.type})"
        index += 1
        if msg.type not in ("record batch", "dictionary batch"):
            continue
        flat = _Flat(msg.metadata.to_pybytes())
        body_len = 0 if msg.body is None else msg.body.size
        root = flat.table(flat.deref(0))
        header_type_pos = flat.field(root, 1)
        header_pos = flat.field(root, 2)
        if header_type_pos is None or header_pos is None:
            raise ValueError(f"{where} has no header")
        header = flat.table(flat.deref(header_pos))
        if flat._unpack("<B", header_type_pos) == _HEADER_DICTIONARY_BATCH:
            data_pos = flat.field(header, 1)
            if data_pos is None:
                raise ValueError(f"{where} has no record batch")
            header = flat.table(flat.deref(data_pos))
        elif flat._unpack("<B", header_type_pos) != _HEADER_RECORD_BATCH:
            raise ValueError(f"{where} has an unexpected header type")
        _check_record_batch(flat, header, body_len, where)

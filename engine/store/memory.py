"""Memory accounting for the store: the limit, and the bytes a chunk really holds.

A decoded chunk's Arrow arrays are often zero-copy views into a larger buffer (the
decompressed message body, or the bytes read from a socket). What keeps memory alive
is that *root* buffer, not the view, so accounting follows each buffer's ``parent``
chain to its root and counts every root once, however many arrays (or chunks) share
it. NumPy arrays (row ids, time columns) are counted by their base object the same way,
and skipped when their memory lies inside an Arrow root already counted.

One limit for a whole process: `plan_memory` splits a viewer's ``--memory-limit``
between the store, the decoded-texture cache and the messages in flight.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Union

import numpy as np
import pyarrow as pa

DEFAULT_MEMORY_LIMIT = "75%"

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def total_ram() -> int:
    """Physical memory of this machine in bytes (0 when the OS will not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX
        try:
            import psutil  # noqa: PLC0415 - optional (a test dependency), needed only where sysconf is missing

            return int(psutil.virtual_memory().total)
        except Exception:
            return 0


def parse_memory_limit(limit: Union[None, int, float, str]) -> Optional[int]:
    """Bytes from ``None`` (no limit), an int (bytes), ``"75%"`` (of RAM) or ``"2GB"``.

    Units: B, kB/MB/GB/TB (powers of 1000) and KiB/MiB/GiB/TiB (powers of 1024), as in
    Rerun's ``--memory-limit``.
    """
    if limit is None:
        return None
    if isinstance(limit, bool):
        raise ValueError(f"memory limit: expected bytes, '75%' or '2GB', got {limit!r}")
    if isinstance(limit, (int, np.integer)):
        if limit < 0:
            raise ValueError(f"memory limit: expected a non-negative byte count, got {limit}")
        return int(limit)
    if isinstance(limit, float):
        if limit < 0:
            raise ValueError(f"memory limit: expected a non-negative byte count, got {limit}")
        return int(limit)
    if isinstance(limit, str):
        text = limit.strip().lower()
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*%", text)
        if m:
            pct = float(m.group(1))
            ram = total_ram()
            if ram <= 0:
                raise ValueError(f"memory limit {limit!r}: cannot read this machine's RAM size; give bytes")
            return int(ram * pct / 100.0)
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-z]*)", text)
        if m and m.group(2) in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(
        f"memory limit: expected bytes (int), a percentage of RAM like '75%' or a size "
        f"like '2GB'/'512MiB', got {limit!r}"
    )


def _root(buf: pa.Buffer) -> pa.Buffer:
    while buf.parent is not None:
        buf = buf.parent
    return buf


def arrow_roots(arrays: Iterable[pa.Array]) -> dict[int, int]:
    """{root address: root size} for every buffer behind `arrays` (children included)."""
    roots: dict[int, int] = {}
    for arr in arrays:
        if isinstance(arr, pa.ChunkedArray):
            inner: Iterable[pa.Array] = arr.chunks
        else:
            inner = (arr,)
        for a in inner:
            for buf in a.buffers():
                if buf is None:
                    continue
                r = _root(buf)
                roots[r.address] = max(roots.get(r.address, 0), r.size)
    return roots


def numpy_roots(arrays: Iterable[np.ndarray], inside: dict[int, int]) -> dict[int, int]:
    """{address: nbytes} for NumPy arrays' base memory not already inside `inside`'s ranges."""
    spans = sorted(inside.items())
    starts = np.array([s for s, _ in spans], dtype=np.uint64)
    out: dict[int, int] = {}
    for arr in arrays:
        base = arr
        while isinstance(base.base, np.ndarray):
            base = base.base
        addr = int(base.__array_interface__["data"][0])
        if spans:
            i = int(np.searchsorted(starts, np.uint64(addr), side="right")) - 1
            if i >= 0 and addr < spans[i][0] + spans[i][1]:
                continue  # a view into an Arrow buffer counted already
        out[addr] = max(out.get(addr, 0), int(base.nbytes))
    return out


class RootLedger:
    """Counts shared root buffers once across the whole store (refcounted)."""

    def __init__(self) -> None:
        self._refs: dict[int, list[int]] = {}  # address -> [size, refcount]
        self.total = 0

    def add(self, roots: dict[int, int]) -> None:
        for addr, size in roots.items():
            entry = self._refs.get(addr)
            if entry is None:
                self._refs[addr] = [size, 1]
                self.total += size
            else:
                entry[1] += 1

    def release(self, roots: dict[int, int]) -> None:
        for addr in roots:
            entry = self._refs.get(addr)
            if entry is None:
                continue
            entry[1] -= 1
            if entry[1] == 0:
                self.total -= entry[0]
                del self._refs[addr]


# ---------------------------------------------------------------- one limit, shared

# Shares of the process limit when the viewer splits it (see plan_memory).
TEXTURE_SHARE = 0.25  # decoded textures (GPU memory; host memory on CPU adapters)
INFLIGHT_SHARE = 0.125  # message bodies received but not yet decoded
TRANSPORT_SHARE = 0.125  # at most this much for the live protocol stack's own memory (plan_memory)


@dataclass(frozen=True)
class MemoryPlan:
    """One memory limit shared by everything a viewer process holds for its data.

    limit: the whole (bytes; None: no limit). store: what the chunk store may hold
    (it drops its oldest temporal chunks past it). textures: the renderer's decoded
    texture cache budget. inflight: message bodies being received and decoded at once
    (the live server's budget). transport: what the live server's protocol stack holds
    beyond that (the gRPC front end's buffers and threads; 0 when not listening).
    store + textures + inflight + transport == limit.
    """

    limit: Optional[int]
    store: Optional[int]
    textures: int
    inflight: int
    transport: int = 0

    def describe(self) -> str:
        """One line, e.g. for `pixelrun view` at start-up."""
        mb = format_mb
        if self.limit is None:
            return f"memory: no limit (textures {mb(self.textures)}, in flight {mb(self.inflight)})"
        transport = f", live transport {mb(self.transport)}" if self.transport else ""
        return (f"memory limit {mb(self.limit)}: store {mb(self.store)}, textures {mb(self.textures)}, "
                f"messages in flight {mb(self.inflight)}{transport}")


def format_mb(n: int) -> str:
    """Bytes as whole megabytes (10^6), the unit of every memory line we print."""
    return f"{n / 1e6:.0f} MB"


def plan_memory(limit: Union[None, int, float, str], *, textures_max: int, inflight_max: int,
                transport_max: int = 0) -> MemoryPlan:
    """Split a memory limit (any form `parse_memory_limit` takes) between the store, the
    texture cache, in-flight messages and the live transport: the caches get fixed shares
    (TEXTURE_SHARE, INFLIGHT_SHARE, at most their own defaults `textures_max` /
    `inflight_max`), the transport its measured cost `transport_max` (at most
    TRANSPORT_SHARE), the store the rest. With no limit, the caches keep their defaults
    and the store is unbounded.
    """
    total = parse_memory_limit(limit)
    if total is None:
        return MemoryPlan(None, None, int(textures_max), int(inflight_max), int(transport_max))
    textures = min(int(textures_max), int(total * TEXTURE_SHARE))
    inflight = min(int(inflight_max), int(total * INFLIGHT_SHARE))
    transport = min(int(transport_max), int(total * TRANSPORT_SHARE))
    return MemoryPlan(total, total - textures - inflight - transport, textures, inflight, transport)

"""The sorted index behind every store query: one per (entity, timeline, component).

Each entry is one row that carries the component: its time point on the timeline, its
128-bit row id (as two uint64 halves) and where the row lives (chunk sequence number,
row within the chunk). Entries are kept sorted by (time, row id), so

- latest-at(t) is one ``searchsorted`` (the last entry with time <= t is the greatest
  (time, row id) pair, which is exactly contract §5's tie rule), and
- range(t0, t1) is two.

Appending rows that arrive in order (the common case: a camera logging frames) copies
them into spare capacity (amortised O(k)); out-of-order rows mark the index unsorted
and the next query re-sorts it once with a vectorised lexsort. Dropped chunks are
removed lazily the same way: recorded, then filtered out with one vectorised mask.
Nothing here loops over rows in Python.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

_MIN_CAPACITY = 16


def keys_sorted(t: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> bool:
    """True when the (t, hi, lo) triples are in non-decreasing lexicographic order."""
    if t.shape[0] < 2:
        return True
    dt = t[1:], t[:-1]
    dh = hi[1:], hi[:-1]
    ok = (dt[0] > dt[1]) | (
        (dt[0] == dt[1]) & ((dh[0] > dh[1]) | ((dh[0] == dh[1]) & (lo[1:] >= lo[:-1])))
    )
    return bool(ok.all())


def key_less(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Strict lexicographic comparison of two (time, hi, lo) keys."""
    return a < b


class SortedIndex:
    """Rows of one (entity, timeline, component), sorted by (time, row id).

    Not thread-safe on its own: the store calls it under its lock.
    """

    __slots__ = ("_t", "_hi", "_lo", "_seq", "_row", "_n", "_sorted", "_dead")

    def __init__(self) -> None:
        self._t = np.empty(0, np.int64)
        self._hi = np.empty(0, np.uint64)
        self._lo = np.empty(0, np.uint64)
        self._seq = np.empty(0, np.int64)
        self._row = np.empty(0, np.int32)
        self._n = 0
        self._sorted = True
        self._dead: set[int] = set()

    # ------------------------------------------------------------------ mutation

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        cap = self._t.shape[0]
        if need <= cap:
            return
        new_cap = max(_MIN_CAPACITY, cap * 2, need)
        for name in ("_t", "_hi", "_lo", "_seq", "_row"):
            old = getattr(self, name)
            new = np.empty(new_cap, old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def append(
        self,
        t: np.ndarray,
        hi: np.ndarray,
        lo: np.ndarray,
        seq: int,
        rows: np.ndarray,
    ) -> None:
        """Add the rows of one chunk (arrays of equal length; rows are row numbers)."""
        k = int(t.shape[0])
        if k == 0:
            return
        in_order = self._sorted and keys_sorted(t, hi, lo)
        if in_order and self._n:
            last = (int(self._t[self._n - 1]), int(self._hi[self._n - 1]), int(self._lo[self._n - 1]))
            first = (int(t[0]), int(hi[0]), int(lo[0]))
            in_order = not key_less(first, last)
        self._reserve(k)
        n = self._n
        self._t[n : n + k] = t
        self._hi[n : n + k] = hi
        self._lo[n : n + k] = lo
        self._seq[n : n + k] = seq
        self._row[n : n + k] = rows
        self._n = n + k
        self._sorted = in_order

    def remove_chunk(self, seq: int) -> None:
        """Forget every row of chunk `seq` (applied lazily at the next query)."""
        self._dead.add(seq)

    def _settle(self) -> None:
        n = self._n
        if self._dead:
            dead = np.fromiter(self._dead, np.int64, len(self._dead))
            keep = ~np.isin(self._seq[:n], dead)
            m = int(keep.sum())
            for name in ("_t", "_hi", "_lo", "_seq", "_row"):
                arr = getattr(self, name)
                arr[:m] = arr[:n][keep]
            self._n = n = m
            self._dead.clear()
        if not self._sorted:
            order = np.lexsort((self._lo[:n], self._hi[:n], self._t[:n]))
            for name in ("_t", "_hi", "_lo", "_seq", "_row"):
                arr = getattr(self, name)
                arr[:n] = arr[:n][order]
            self._sorted = True

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        self._settle()
        return self._n

    def latest_at(self, t: Optional[int]) -> Optional[tuple[int, int, int, int, int]]:
        """(time, hi, lo, seq, row) of the greatest (time, row id) with time <= t.

        ``t=None`` means "latest of all".
        """
        self._settle()
        n = self._n
        if n == 0:
            return None
        if t is None:
            i = n - 1
        else:
            i = int(np.searchsorted(self._t[:n], np.int64(t), side="right")) - 1
            if i < 0:
                return None
        return (int(self._t[i]), int(self._hi[i]), int(self._lo[i]), int(self._seq[i]), int(self._row[i]))

    def range(self, t0: int, t1: int) -> tuple[np.ndarray, ...]:
        """Copies of (time, hi, lo, seq, row) for every entry with t0 <= time <= t1."""
        self._settle()
        n = self._n
        i0 = int(np.searchsorted(self._t[:n], np.int64(t0), side="left"))
        i1 = int(np.searchsorted(self._t[:n], np.int64(t1), side="right"))
        sl = slice(i0, max(i0, i1))
        return (
            self._t[sl].copy(),
            self._hi[sl].copy(),
            self._lo[sl].copy(),
            self._seq[sl].copy(),
            self._row[sl].copy(),
        )

    def times(self) -> np.ndarray:
        """All time points held (sorted, with repeats)."""
        self._settle()
        return self._t[: self._n].copy()

    def nbytes(self) -> int:
        """Memory this index holds (its capacity, not just the used part)."""
        return sum(getattr(self, n).nbytes for n in ("_t", "_hi", "_lo", "_seq", "_row"))

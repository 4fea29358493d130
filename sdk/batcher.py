"""The background batcher: rows in, chunks out, off the logging thread.

``log`` appends a row to a queue (O(1), no I/O) and returns. One daemon thread per
recording stream groups rows per entity (and per set of timelines), and turns a
group into a chunk when it holds `flush_num_bytes` bytes or `flush_num_rows` rows,
or when its oldest row is `flush_tick` seconds old. Chunks are encoded and written
to the sinks on that same thread (Arrow IPC and file writes release the GIL).

Memory is bounded: bytes queued but not yet written count as "in flight"; above
`max_in_flight_bytes` the logging call waits (back-pressure) instead of growing
without limit. Commands (set sinks, flush) travel through the same queue, so they
apply exactly between the rows logged before and after them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from pixelrun.buffer_pool import POOL
from pixelrun.image_input import resolve_buffer
from pixelrun.engine.chunk import (
    IMAGE_BUFFER, IMAGE_DRAW_ORDER, IMAGE_FORMAT, IMAGE_OPACITY, Chunk, TimeColumn,
    buffer_column, float_column, format_column,
)

__all__ = ["BatcherConfig", "Batcher", "Row", "build_column"]


def _env_float(name: str, default: float) -> float:
    v = os.environ.get(name)
    try:
        return float(v) if v not in (None, "") else default
    except ValueError:
        return default


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    try:
        return int(float(v)) if v not in (None, "") else default
    except ValueError:
        return default


@dataclass
class BatcherConfig:
    """Flush thresholds (Rerun's defaults for files) and the in-flight memory bound."""

    flush_tick: float = 0.2
    flush_num_bytes: int = 2 * 1024 * 1024
    flush_num_rows: int = 2**62
    max_in_flight_bytes: int = 100 * 1024 * 1024

    @classmethod
    def from_env(cls, **overrides) -> "BatcherConfig":
        """Defaults, then PIXELRUN_FLUSH_TICK_SECS / _NUM_BYTES / _NUM_ROWS and
        PIXELRUN_MAX_IN_FLIGHT_BYTES, then explicit overrides."""
        cfg = cls(
            flush_tick=_env_float("PIXELRUN_FLUSH_TICK_SECS", cls.flush_tick),
            flush_num_bytes=_env_int("PIXELRUN_FLUSH_NUM_BYTES", cls.flush_num_bytes),
            flush_num_rows=_env_int("PIXELRUN_FLUSH_NUM_ROWS", cls.flush_num_rows),
            max_in_flight_bytes=_env_int("PIXELRUN_MAX_IN_FLIGHT_BYTES", cls.max_in_flight_bytes),
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        return cfg


class Row:
    """One logged row: id, entity, time point (None = static), component values."""

    __slots__ = ("row_id", "entity", "timepoint", "components", "nbytes")

    def __init__(self, row_id, entity, timepoint, components, nbytes) -> None:
        self.row_id = row_id
        self.entity = entity
        self.timepoint = timepoint  # dict timeline -> (kind, value), or None
        self.components = components  # dict component -> value
        self.nbytes = nbytes


def build_column(name: str, values):
    """Arrow column for a component from per-row Python values (None = absent)."""
    if name == IMAGE_BUFFER:
        # GPU images arrive as DeferredBytes: wait for their copies here, on the
        # batcher thread, never on the logging thread
        values = [resolve_buffer(v) for v in values]
        return buffer_column(values, alloc=POOL.empty)  # batching copy into recycled memory
    if name == IMAGE_FORMAT:
        return format_column(values)
    if name in (IMAGE_OPACITY, IMAGE_DRAW_ORDER):
        return float_column(values)
    raise ValueError(f"unknown component {name!r}")


def rows_to_chunk(entity: str, rows: list, chunk_id: bytes) -> Chunk:
    """A chunk from rows of one entity sharing the same timelines."""
    row_ids = np.array([r.row_id for r in rows], dtype=np.uint64).reshape(len(rows), 2)
    timelines = {}
    tp0 = rows[0].timepoint
    if tp0:
        for tl, (kind, _) in tp0.items():
            timelines[tl] = TimeColumn(kind, np.array([r.timepoint[tl][1] for r in rows], dtype=np.int64))
    names = []
    for r in rows:
        for c in r.components:
            if c not in names:
                names.append(c)
    comps = {c: build_column(c, [r.components.get(c) for r in rows]) for c in names}
    return Chunk(entity, row_ids, timelines, comps, chunk_id)


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class _Call:
    """Run a function on the batcher thread, in order with the data."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.error: Optional[BaseException] = None


class Batcher:
    """Queue + thread. `emit(chunk)` is called on the batcher thread for every chunk;
    `on_flush()` after a flush has emitted everything (to flush sinks)."""

    def __init__(self, config: BatcherConfig, emit: Callable[[Chunk], None],
                 on_flush: Callable[[], None], new_chunk_id: Callable[[], bytes],
                 name: str = "pixelrun-batcher") -> None:
        self.config = config
        self._emit_fn = emit
        self._on_flush = on_flush
        self._new_chunk_id = new_chunk_id
        self._cond = threading.Condition()
        self._queue: list = []
        self._in_flight = 0
        self._pending: dict = {}  # key -> [rows, nbytes, first_time]
        self._stopped = False
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ producer side

    def push_row(self, make_row: Callable[[], Row], nbytes: int) -> None:
        """Queue a row built by `make_row()` under the queue lock, so row ids are
        assigned in queue order (chunks then hold sorted ids)."""
        with self._cond:
            self._wait_room(nbytes)
            self._queue.append(make_row())
            self._in_flight += nbytes
            self._cond.notify_all()

    def push_chunk(self, chunk: Chunk, nbytes: int) -> None:
        with self._cond:
            self._wait_room(nbytes)
            self._queue.append((chunk, nbytes))
            self._in_flight += nbytes
            self._cond.notify_all()

    def _wait_room(self, nbytes: int) -> None:
        # Back-pressure: wait while the budget is exceeded, but always admit when
        # nothing is in flight (one item larger than the budget must still pass).
        limit = self.config.max_in_flight_bytes
        while self._in_flight > 0 and self._in_flight + nbytes > limit and not self._stopped:
            self._cond.wait(0.05)

    def call(self, fn: Callable[[], None], wait: bool = True) -> None:
        """Run `fn` on the batcher thread after everything queued before it."""
        c = _Call(fn)
        with self._cond:
            if self._stopped:
                fn()
                return
            self._queue.append(c)
            self._cond.notify_all()
        if wait:
            c.done.wait()
            if c.error is not None:
                raise c.error

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Emit everything queued so far and flush sinks; True if done in time."""
        f = _Flush()
        with self._cond:
            if self._stopped:
                return True
            self._queue.append(f)
            self._cond.notify_all()
        if threading.current_thread() is self._thread:
            return False
        return f.done.wait(timeout)

    def stop(self, timeout: Optional[float] = None) -> None:
        self.flush(timeout)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def in_flight_bytes(self) -> int:
        return self._in_flight

    # ------------------------------------------------------------ batcher thread

    def _release(self, nbytes: int) -> None:
        with self._cond:
            self._in_flight -= nbytes
            self._cond.notify_all()

    def _emit(self, chunk: Chunk, nbytes: int) -> None:
        try:
            self._emit_fn(chunk)
        except Exception as exc:  # noqa: BLE001 - never kill the batcher thread
            self.errors.append(f"{chunk.entity_path}: {type(exc).__name__}: {exc}")
        finally:
            self._release(nbytes)

    def _flush_key(self, key) -> None:
        rows, nbytes, _ = self._pending.pop(key)
        chunk = rows_to_chunk(key[0], rows, self._new_chunk_id())
        self._emit(chunk, nbytes)

    def _flush_all(self) -> None:
        for key in list(self._pending):
            self._flush_key(key)

    def _add_row(self, row: Row) -> None:
        tp = row.timepoint
        key = (row.entity, None if tp is None else tuple(sorted((k, v[0]) for k, v in tp.items())))
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = [[], 0, time.monotonic()]
        entry[0].append(row)
        entry[1] += row.nbytes
        cfg = self.config
        if entry[1] >= cfg.flush_num_bytes or len(entry[0]) >= cfg.flush_num_rows:
            self._flush_key(key)

    def _run(self) -> None:
        tick = max(self.config.flush_tick, 0.001)
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    if self._pending:
                        oldest = min(e[2] for e in self._pending.values())
                        wait = oldest + tick - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait(1.0)
                items, self._queue = self._queue, []
                stopped = self._stopped
            for it in items:
                if isinstance(it, Row):
                    self._add_row(it)
                elif isinstance(it, tuple):
                    chunk, nbytes = it
                    self._emit(chunk, nbytes)
                elif isinstance(it, _Flush):
                    self._flush_all()
                    try:
                        self._on_flush()
                    except Exception as exc:  # noqa: BLE001
                        self.errors.append(f"flush: {type(exc).__name__}: {exc}")
                    it.done.set()
                elif isinstance(it, _Call):
                    try:
                        self._flush_all()  # rows logged before the call belong before it
                        it.fn()
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        it.error = exc
                    it.done.set()
            now = time.monotonic()
            for key in [k for k, e in self._pending.items() if now - e[2] >= tick]:
                self._flush_key(key)
            if stopped and not items:
                with self._cond:
                    if not self._queue:
                        self._flush_all()
                        return

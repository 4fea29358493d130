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

The thread is not trusted to exist: it is missing in a forked child (started again
on the child's first row) and may have died. Whoever waits on it checks; with no
live thread the caller does the work itself (``drain``), so a flush, a close or the
exit drain never waits on a thread that is not there. Every wait has a deadline;
rows that could not be written by then are counted (``leftover``), and so is every
row whose chunk could not be built or written (the recording's `LossLedger`).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from pixelrun.buffer_pool import POOL
from pixelrun.engine.archetypes import COMPONENTS
from pixelrun.engine.chunk import COLUMN_BUILDERS, Chunk, TimeColumn, buffer_column
from pixelrun.errors import PixelrunWarning
from pixelrun.image_input import resolve_buffer
from pixelrun.loss import LossLedger

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
    """Arrow column for a component from per-row Python values (None = absent); the
    builder is chosen by the component's Arrow type in the archetype table."""
    spec = COMPONENTS.get(name)
    if spec is None:
        raise ValueError(f"unknown component {name!r} (known: {', '.join(COMPONENTS)})")
    builder = COLUMN_BUILDERS.get(spec.arrow_type)
    if builder is None:  # a table entry whose Arrow type has no builder in chunk.py yet
        raise ValueError(f"component {name!r}: no column builder for its Arrow type {spec.arrow_type}")
    if builder is buffer_column:
        # GPU images arrive as DeferredBytes: wait for their copies here, on the
        # batcher thread, never on the logging thread
        values = [resolve_buffer(v) for v in values]
        return buffer_column(values, alloc=POOL.empty)  # batching copy into recycled memory
    return builder(values)


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


def _left(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else deadline - time.monotonic()


def _item_rows(it) -> tuple[int, int]:
    """(rows, bytes) a queued item carries (commands carry none)."""
    if isinstance(it, Row):
        return 1, it.nbytes
    if isinstance(it, tuple):
        return it[0].num_rows, it[1]
    return 0, 0


class Batcher:
    """Queue + thread. `emit(chunk)` is called on the batcher thread for every chunk;
    `on_flush()` after a flush has emitted everything (to flush sinks). Rows that
    cannot be turned into a chunk or written are counted in `ledger`."""

    def __init__(self, config: BatcherConfig, emit: Callable[[Chunk], None],
                 on_flush: Callable[[], None], new_chunk_id: Callable[[], bytes],
                 name: str = "pixelrun-batcher", ledger: Optional[LossLedger] = None) -> None:
        self.config = config
        self._emit_fn = emit
        self._on_flush = on_flush
        self._new_chunk_id = new_chunk_id
        self._name = name
        self.ledger = ledger if ledger is not None else LossLedger()
        self._reset()
        with self._cond:
            self._start_thread()

    def _reset(self) -> None:
        """Fresh state: at construction, and in a forked child (whose copy of the
        parent's locks may be held by a thread that does not exist there, and whose
        copy of the queue is the parent's to write)."""
        self._cond = threading.Condition()
        self._work = threading.Lock()  # held by whichever thread is processing items
        self._queue: collections.deque = collections.deque()
        self._in_flight = 0
        self._pending: dict = {}  # key -> [rows, nbytes, first_time]
        self._current = None  # the item being processed
        self._writing = (0, 0)  # (rows, bytes) of the chunk being emitted right now
        self._stopped = False
        self._thread: Optional[threading.Thread] = None
        self.dead_reason = ""

    def after_fork_in_child(self) -> None:
        """The child starts clean; its thread starts with its first row."""
        self._reset()

    def _start_thread(self) -> bool:
        """Start the worker (under `_cond`); False when it cannot be started (the
        interpreter is shutting down): callers then drain themselves."""
        if self._thread is None:
            t = threading.Thread(target=self._run, name=self._name, daemon=True)
            try:
                t.start()
            except RuntimeError:
                return False
            self._thread = t
        return self._thread.is_alive()

    def thread_alive(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    # ------------------------------------------------------------ producer side

    def push_row(self, make_row: Callable[[], Row], nbytes: int) -> bool:
        """Queue a row built by `make_row()` under the queue lock, so row ids are
        assigned in queue order (chunks then hold sorted ids). False (nothing
        queued) once stopped."""
        return self._push(make_row, nbytes)

    def push_chunk(self, chunk: Chunk, nbytes: int) -> bool:
        return self._push(lambda: (chunk, nbytes), nbytes)

    def _push(self, make: Callable, nbytes: int) -> bool:
        if not self.thread_alive():
            with self._cond:
                if self._stopped:
                    return False
                alive = self._start_thread()
            if not alive:  # no worker: write what is queued here, then queue this
                self.drain(None, flush_pending=True)
        with self._cond:
            if self._stopped:
                return False
            self._wait_room(nbytes)
            self._queue.append(make())
            self._in_flight += nbytes
            self._cond.notify_all()
        return True

    def _wait_room(self, nbytes: int) -> None:
        # Back-pressure: wait while the budget is exceeded, but always admit when
        # nothing is in flight (one item larger than the budget must still pass),
        # and never wait on a worker that is not there.
        limit = self.config.max_in_flight_bytes
        while (self._in_flight > 0 and self._in_flight + nbytes > limit and not self._stopped
               and self.thread_alive()):
            self._cond.wait(0.05)

    def call(self, fn: Callable[[], None], wait: bool = True,
             deadline: Optional[float] = None) -> _Call:
        """Run `fn` on the batcher thread after everything queued before it (pending
        rows are flushed first). With `wait`, raise what `fn` raised."""
        c = _Call(fn)
        self._enqueue(c)
        if wait:
            self.wait(c.done, deadline)
            if c.error is not None:
                raise c.error
        return c

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Emit everything queued so far and flush sinks; True if done in time."""
        if threading.current_thread() is self._thread:
            return False
        f = _Flush()
        self._enqueue(f)
        return self.wait(f.done, None if timeout is None else time.monotonic() + timeout)

    def _enqueue(self, item) -> None:
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()

    def wait(self, done: threading.Event, deadline: Optional[float]) -> bool:
        """Wait for `done` until `deadline`; with no live worker, drain here."""
        while not done.is_set():
            if not self.thread_alive():
                self.drain(deadline)
                return done.is_set()
            left = _left(deadline)
            if left is not None and left <= 0:
                return False
            done.wait(0.1 if left is None else min(left, 0.1))
        return True

    def request_stop(self) -> None:
        """No more rows (pushes return False from now on); the worker exits once the
        queue is done. Does not wait."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def stop(self, deadline: Optional[float] = None) -> None:
        """No more rows; the worker finishes the queue and exits (joined until
        `deadline`; without a live worker the caller drains)."""
        self.request_stop()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            left = _left(deadline)
            t.join(None if left is None else max(left, 0))
        if not self.thread_alive():
            self.drain(deadline, flush_pending=True)

    def leftover(self) -> tuple[int, int]:
        """(rows, bytes) queued or grouped but not written yet (all of them are
        counted as lost when a close gives up waiting)."""
        with self._cond:
            items = list(self._queue)
            pending = list(self._pending.values())
            rows, nbytes = self._writing
        for it in items:
            r, b = _item_rows(it)
            rows += r
            nbytes += b
        for e in pending:
            rows += len(e[0])
            nbytes += e[1]
        return rows, nbytes

    @property
    def in_flight_bytes(self) -> int:
        return self._in_flight

    # ------------------------------------------------------------ worker side

    def drain(self, deadline: Optional[float], flush_pending: bool = False) -> bool:
        """Process the queue on the calling thread (used when no worker is alive);
        True when it emptied in time. Never two workers at once."""
        left = _left(deadline)
        if not self._work.acquire(timeout=-1 if left is None else max(left, 0)):
            return False
        try:
            while True:
                with self._cond:
                    if not self._queue:
                        break
                    left = _left(deadline)
                    if left is not None and left <= 0:
                        return False
                    it = self._current = self._queue.popleft()
                self._process(it)
                self._current = None
            if flush_pending:
                self._flush_all()
            return True
        finally:
            self._current = None
            self._work.release()

    def _release(self, nbytes: int) -> None:
        with self._cond:
            self._in_flight -= nbytes
            self._cond.notify_all()

    def _lost(self, rows: int, nbytes: int, why: str) -> None:
        self.ledger.add("encoding", why, chunks=1, rows=rows, nbytes=nbytes)

    def _emit(self, chunk: Chunk, nbytes: int) -> None:
        self._writing = (chunk.num_rows, nbytes)
        try:
            self._emit_fn(chunk)
        except BaseException as exc:  # counted; a data error never kills the worker
            self._lost(chunk.num_rows, nbytes, f"{chunk.entity_path}: {type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                raise
        finally:
            self._writing = (0, 0)
            self._release(nbytes)

    def _flush_key(self, key) -> None:
        rows, nbytes, _ = self._pending.pop(key)
        try:
            chunk = rows_to_chunk(key[0], rows, self._new_chunk_id())
        except BaseException as exc:  # counted, as above
            self._release(nbytes)
            self._lost(len(rows), nbytes, f"{key[0]}: building the chunk failed: {type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                raise
            return
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

    def _process(self, it) -> None:
        if isinstance(it, Row):
            self._add_row(it)
        elif isinstance(it, tuple):
            self._emit(*it)
        elif isinstance(it, _Flush):
            self._flush_all()
            try:
                self._on_flush()
            except Exception as exc:  # the sinks count their own losses
                self.ledger.notice(f"pixelrun: flushing the sinks failed: {type(exc).__name__}: {exc}")
            it.done.set()
        elif isinstance(it, _Call):
            try:
                self._flush_all()  # rows logged before the call belong before it
                it.fn()
            except BaseException as exc:  # handed to the caller
                it.error = exc
            it.done.set()

    def _due(self, tick: float) -> Optional[float]:
        """Seconds until the oldest pending group is due (None: nothing pending)."""
        if not self._pending:
            return None
        return min(e[2] for e in self._pending.values()) + tick - time.monotonic()

    def _run(self) -> None:
        tick = max(self.config.flush_tick, 0.001)
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopped:
                        due = self._due(tick)
                        if due is not None and due <= 0:
                            break
                        self._cond.wait(1.0 if due is None else due)
                    if not self._queue and self._stopped:
                        break
                    it = self._current = self._queue.popleft() if self._queue else None
                with self._work:
                    if it is not None:
                        self._process(it)
                    self._current = None
                    now = time.monotonic()
                    for key in [k for k, e in self._pending.items() if now - e[2] >= tick]:
                        self._flush_key(key)
            with self._work:
                self._flush_all()
        except BaseException as exc:  # recorded; callers drain from now on
            # Rows were counted where the exception came from (_emit, _flush_key).
            self.dead_reason = f"{type(exc).__name__}: {exc}"
            cur, self._current = self._current, None
            if isinstance(cur, (_Flush, _Call)):
                with self._cond:
                    self._queue.appendleft(cur)  # a command is still owed to its caller
            self.ledger.notice(
                f"pixelrun: the background writer {self._name} stopped ({self.dead_reason}); "
                "the logging thread writes the rows from now on", PixelrunWarning,
            )
        finally:
            with self._cond:
                self._cond.notify_all()

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
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Optional

import numpy as np

from pixelrun.buffer_pool import POOL
from pixelrun.engine import rrd
from pixelrun.engine.archetypes import COMPONENTS
from pixelrun.engine.chunk import COLUMN_BUILDERS, Chunk, TimeColumn, buffer_column
from pixelrun.errors import PixelrunWarning
from pixelrun.image_input import resolve_buffer
from pixelrun.loss import LossLedger

__all__ = ["BatcherConfig", "ChunkBatcherConfig", "Batcher", "CompressionPolicy", "Row", "build_column",
           "compression_mode"]


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
        """Defaults, then Rerun's RERUN_FLUSH_TICK_SECS / _NUM_BYTES / _NUM_ROWS, then
        PIXELRUN_FLUSH_* and PIXELRUN_MAX_IN_FLIGHT_BYTES, then explicit overrides."""
        cfg = cls(
            flush_tick=_env_float("PIXELRUN_FLUSH_TICK_SECS", _env_float("RERUN_FLUSH_TICK_SECS", cls.flush_tick)),
            flush_num_bytes=_env_int("PIXELRUN_FLUSH_NUM_BYTES",
                                     _env_int("RERUN_FLUSH_NUM_BYTES", cls.flush_num_bytes)),
            flush_num_rows=_env_int("PIXELRUN_FLUSH_NUM_ROWS", _env_int("RERUN_FLUSH_NUM_ROWS", cls.flush_num_rows)),
            max_in_flight_bytes=_env_int("PIXELRUN_MAX_IN_FLIGHT_BYTES", cls.max_in_flight_bytes),
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        return cfg


# Longest flush tick the batcher waits on (Condition.wait refuses huge timeouts):
# 11.6 days stands for "never" (ChunkBatcherConfig.NEVER).
_MAX_TICK_S = 1e6
_U64_MAX = 2**64 - 1


def _tick(value: "float | int | timedelta") -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"flush_tick must be seconds (int or float) or a datetime.timedelta, got "
                        f"{type(value).__name__}")
    return timedelta(seconds=float(value))


class ChunkBatcherConfig:
    """Rerun's batcher settings: when rows logged to an entity become a chunk.

    ``flush_tick`` (seconds or timedelta; read back as a timedelta),
    ``flush_num_bytes``, ``flush_num_rows``, ``chunk_max_rows_if_unsorted``. An
    argument left None comes from RERUN_FLUSH_TICK_SECS, RERUN_FLUSH_NUM_BYTES,
    RERUN_FLUSH_NUM_ROWS, RERUN_CHUNK_MAX_ROWS_IF_UNSORTED when set, else the
    default. ``chunk_max_rows_if_unsorted`` is kept for Rerun parity only: pixelrun
    sorts nothing at write time, so it changes no chunk. Pass it as
    ``RecordingStream(..., batcher_config=...)``.
    """

    def __init__(self, flush_tick: "float | int | timedelta | None" = None,
                 flush_num_bytes: Optional[int] = None, flush_num_rows: Optional[int] = None,
                 chunk_max_rows_if_unsorted: Optional[int] = None) -> None:
        base = BatcherConfig.from_env()  # defaults < RERUN_* < PIXELRUN_* environment variables
        self.flush_tick = _tick(flush_tick if flush_tick is not None else base.flush_tick)
        self.flush_num_bytes = int(flush_num_bytes if flush_num_bytes is not None else base.flush_num_bytes)
        self.flush_num_rows = int(flush_num_rows if flush_num_rows is not None else base.flush_num_rows)
        self.chunk_max_rows_if_unsorted = int(
            chunk_max_rows_if_unsorted if chunk_max_rows_if_unsorted is not None
            else _env_int("RERUN_CHUNK_MAX_ROWS_IF_UNSORTED", 256))

    @property
    def flush_tick(self) -> timedelta:
        return self._flush_tick

    @flush_tick.setter
    def flush_tick(self, value: "float | int | timedelta") -> None:
        self._flush_tick = _tick(value)

    @classmethod
    def DEFAULT(cls) -> "ChunkBatcherConfig":
        """The defaults (environment variables still apply)."""
        return cls()

    @classmethod
    def LOW_LATENCY(cls) -> "ChunkBatcherConfig":
        """Flush every 8 ms (live viewing)."""
        return cls(flush_tick=0.008)

    @classmethod
    def ALWAYS(cls) -> "ChunkBatcherConfig":
        """Every row is its own chunk, written at once."""
        return cls(flush_tick=0, flush_num_bytes=0, flush_num_rows=0)

    ALWAYS_TEST_ONLY = ALWAYS

    @classmethod
    def NEVER(cls) -> "ChunkBatcherConfig":
        """Rows wait for an explicit flush (or close)."""
        return cls(flush_tick=timedelta(days=365), flush_num_bytes=_U64_MAX, flush_num_rows=_U64_MAX)

    def to_batcher_config(self) -> BatcherConfig:
        """The settings pixelrun's batcher runs on (in-flight bound from the environment)."""
        cfg = BatcherConfig.from_env()
        cfg.flush_tick = min(self.flush_tick.total_seconds(), _MAX_TICK_S)
        cfg.flush_num_bytes = self.flush_num_bytes
        cfg.flush_num_rows = self.flush_num_rows
        return cfg

    def __repr__(self) -> str:
        return (f"ChunkBatcherConfig(flush_tick={self.flush_tick!r}, flush_num_bytes={self.flush_num_bytes}, "
                f"flush_num_rows={self.flush_num_rows}, "
                f"chunk_max_rows_if_unsorted={self.chunk_max_rows_if_unsorted})")


# ------------------------------------------------------------------ compression

COMPRESSION_MODES = ("off", "adaptive", "always")
_MODE_WORDS = {
    "off": "off", "none": "off", "0": "off", "false": "off", "no": "off",
    "adaptive": "adaptive", "auto": "adaptive", "": "adaptive",
    "always": "always", "lz4": "always", "on": "always", "1": "always", "true": "always", "yes": "always",
}


def compression_mode(value: "bool | str | None" = None) -> str:
    """The compression mode a recording runs with: "off", "adaptive" or "always".

    None follows PIXELRUN_COMPRESSION (unset: "adaptive", the default; an unknown
    word warns and means "adaptive"). An explicit choice wins over the environment:
    True / "lz4" / "always" compresses every chunk with LZ4 (as Rerun 0.41 does),
    False / "off" none, "adaptive" what `CompressionPolicy` decides.
    """
    if value is None:
        word = os.environ.get("PIXELRUN_COMPRESSION", "").strip().lower()
        mode = _MODE_WORDS.get(word)
        if mode is None:
            warnings.warn(f"pixelrun: PIXELRUN_COMPRESSION={word!r} is not one of off, adaptive, always "
                          "(or lz4/on/1, 0/none); using adaptive", PixelrunWarning, stacklevel=3)
            return "adaptive"
        return mode
    if isinstance(value, bool):
        return "always" if value else "off"
    if isinstance(value, str) and value.strip().lower() in _MODE_WORDS and value.strip():
        return _MODE_WORDS[value.strip().lower()]
    raise ValueError(f"compression must be True, False, None or one of {', '.join(COMPRESSION_MODES)}, "
                     f"got {value!r}")


class CompressionPolicy:
    """Which chunks get LZ4, per entity; encodes every chunk of one recording.

    "always" compresses every chunk (Rerun 0.41 does), "off" none. "adaptive" (the
    default) compresses unless it does not pay: a chunk whose LZ4 block is not at
    least `min_saving` (10 %) smaller than its Arrow IPC payload is written raw
    (readers then skip the decompression that would buy little), and the entity's
    next `backoff` chunks are written raw without trying. The back-off starts at
    `first_backoff` (8) chunks and doubles on each further miss up to `max_backoff`
    (256); the first chunk after it is a retry, and one that pays clears the state.
    Camera noise therefore costs one LZ4 pass per 256 chunks once it settled
    (about every 8 s at 30 frames/s, one frame a chunk), while a scene that becomes
    compressible is picked up again within the back-off. Counted in chunks, not
    time, so the choice is deterministic for a given sequence of chunks.

    A chunk over the 512 MiB that readers decompress by default
    (`rrd.DEFAULT_MAX_DECOMPRESSED_BYTES`) is always written raw. Runs on the
    batcher thread (the logging thread never compresses); python-lz4 releases the
    GIL while it works. `stats()` counts each decision.
    """

    MIN_SAVING = 0.10
    FIRST_BACKOFF = 8
    MAX_BACKOFF = 256

    def __init__(self, mode: str = "adaptive", *, min_saving: float = MIN_SAVING,
                 first_backoff: int = FIRST_BACKOFF, max_backoff: int = MAX_BACKOFF,
                 max_bytes: int = rrd.DEFAULT_MAX_DECOMPRESSED_BYTES) -> None:
        if mode not in COMPRESSION_MODES:
            raise ValueError(f"compression mode must be one of {', '.join(COMPRESSION_MODES)}, got {mode!r}")
        if not 0.0 <= min_saving < 1.0 or first_backoff < 1 or max_backoff < first_backoff:
            raise ValueError(f"CompressionPolicy: need 0 <= min_saving < 1 and 1 <= first_backoff <= max_backoff, "
                             f"got {min_saving}, {first_backoff}, {max_backoff}")
        self.mode = mode
        self.min_saving = min_saving
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.max_bytes = max_bytes
        self._backoff: dict[str, list[int]] = {}  # entity -> [raw chunks left, current back-off]
        self._lock = threading.Lock()  # stats() reads from other threads
        self._stats = dict.fromkeys(
            ("chunks", "compressed", "not_useful", "backed_off", "retried", "too_large",
             "ipc_bytes", "written_bytes"), 0)

    def after_fork_in_child(self) -> None:
        """A forked child gets a fresh lock (the parent's may be held by a thread the
        child does not have); decisions and counts carry over."""
        self._lock = threading.Lock()

    @property
    def compressed_stream(self) -> bool:
        """Whether the stream header announces LZ4 (any mode but "off", as Rerun's does);
        each chunk message still says whether its own payload is compressed."""
        return self.mode != "off"

    def should_try(self, entity: str) -> bool:
        """Whether the next chunk of `entity` is worth an LZ4 attempt (consumes one
        chunk of its back-off when not)."""
        if self.mode != "adaptive":
            return self.mode == "always"
        state = self._backoff.get(entity)
        if state is None:
            return True
        if state[0] > 0:
            state[0] -= 1
            self._count(backed_off=1)
            return False
        self._count(retried=1)
        return True

    def record(self, entity: str, raw_size: int, compressed_size: int) -> bool:
        """An attempt's outcome; True when the LZ4 block is worth keeping."""
        if self.mode == "always":
            return True
        if compressed_size <= raw_size * (1.0 - self.min_saving):
            self._backoff.pop(entity, None)
            return True
        state = self._backoff.get(entity)
        backoff = self.first_backoff if state is None else min(2 * state[1], self.max_backoff)
        self._backoff[entity] = [backoff, backoff]
        self._count(not_useful=1)
        return False

    def encode(self, chunk: Chunk, store: "rrd.StoreInfo", batch) -> "rrd.EncodedChunk":
        """The chunk's ArrowMsg, LZ4-compressed or raw as the policy decides."""
        if self.mode == "off" or not self.should_try(chunk.entity_path):
            enc = rrd.encode_payload(chunk, store, batch, None, compressed=False)
            self._count(chunks=1, ipc_bytes=enc.uncompressed_size, written_bytes=enc.payload_size)
            return enc
        ipc = rrd.ipc_payload(batch)
        if ipc.size > self.max_bytes:
            enc = rrd.encode_payload(chunk, store, batch, ipc, compressed=False)
            self._count(chunks=1, too_large=1, ipc_bytes=ipc.size, written_bytes=ipc.size)
            return enc
        block = rrd.lz4_compress(ipc)
        if self.record(chunk.entity_path, ipc.size, len(block)):
            enc = rrd.encode_payload(chunk, store, batch, block, compressed=True, uncompressed_size=ipc.size)
            self._count(chunks=1, compressed=1, ipc_bytes=ipc.size, written_bytes=len(block))
        else:  # the IPC bytes made for the attempt are written as they are: no second encode
            enc = rrd.encode_payload(chunk, store, batch, ipc, compressed=False)
            self._count(chunks=1, ipc_bytes=ipc.size, written_bytes=ipc.size)
        return enc

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._stats[k] += v

    def stats(self) -> dict:
        """Counts so far: `chunks` encoded, `compressed` (written LZ4), `not_useful`
        (tried, saved < min_saving, written raw; each starts or extends a back-off),
        `backed_off` (written raw without trying), `retried` (attempts after a
        back-off), `too_large` (raw: over `max_bytes`), `ipc_bytes` (payloads before
        compression), `written_bytes` (payloads as written), and `mode`."""
        with self._lock:
            out: dict = dict(self._stats)
        out["mode"] = self.mode
        return out


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

"""RecordingStream: one recording, its time state, its batcher and its sinks.

The module-level API in ``pixelrun`` (``rr.log``...) forwards to the global stream
created by ``rr.init``; several streams can live in one process
(``rr.RecordingStream(app_id)`` / ``rr.new_recording``), each with its own sinks.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
import warnings
import weakref
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pyarrow as pa

from pixelrun import errors
from pixelrun import sinks as _sinks
from pixelrun.archetypes import Image, Indicator
from pixelrun.batcher import (
    Batcher,
    BatcherConfig,
    ChunkBatcherConfig,
    CompressionPolicy,
    Row,
    build_column,
    compression_mode,
    rows_to_chunk,
)
from pixelrun.buffer_pool import POOL
from pixelrun.components import ComponentColumn
from pixelrun.engine import rrd
from pixelrun.engine.archetypes import BUFFER_FORMAT_COLUMNS
from pixelrun.engine.chunk import (
    IMAGE_BUFFER,
    Chunk,
    normalize_entity_path,
    to_record_batch,
)
from pixelrun.engine.chunk import (
    TimeColumn as ChunkTimeColumn,
)
from pixelrun.engine.grpc import wire
from pixelrun.errors import DataLossWarning, PixelrunSaveError, PixelrunWarning, RecordingClosedWarning
from pixelrun.image_input import check_buffer, warn_not_shown_by_rerun
from pixelrun.kernels import formats
from pixelrun.loss import LossLedger
from pixelrun.sinks import (
    PROPERTIES_ENTITY,
    BacklogSink,
    FileSinkSpec,
    GrpcSink,
    GrpcSinkSpec,
    MemoryRecording,
    MemorySink,
    Sink,
    default_grpc_url,
    open_file_sink,
)
from pixelrun.spawn import spawn_viewer
from pixelrun.timeline import (
    ROW_IDS,
    ThreadTime,
    TimeColumn,
    seconds_kind,
    to_nanos,
    to_nanos_since_epoch,
)

__all__ = ["RecordingStream", "entity_path", "exit_timeout"]

DEFAULT_EXIT_TIMEOUT = 10.0
_warned_tcp_retired = False  # connect_tcp's deprecation is said once per process

def entity_path(path: Any) -> str:
    """Normalised entity path: '/a/b', empty parts dropped, odd characters escaped (contract §5)."""
    return normalize_entity_path(path)


def reserved_part(path: str) -> Optional[str]:
    """The first part of a normalised path that starts with '__' (reserved), or None."""
    return next((p for p in path.split("/") if p.startswith("__")), None)


# Rerun 0.41's recording properties: static rows of archetype RecordingInfo on this
# entity, one chunk per property sent (what the Rerun viewer reads a recording's start
# time and name from).
_RECORDING_INFO = "rerun.archetypes.RecordingInfo"


def _property_chunk(field_name: str, component_type: str, value: pa.Array) -> Chunk:
    """A static one-row /__properties chunk of RecordingInfo's `field_name` (a one-value
    Arrow array, wrapped in a list as every component column is)."""
    column = f"RecordingInfo:{field_name}"
    meta = {"rerun:archetype": _RECORDING_INFO, "rerun:component": column,
            "rerun:component_type": component_type, "rerun:kind": "data"}
    cell = pa.ListArray.from_arrays(pa.array([0, len(value)], pa.int32()), value)
    return Chunk(PROPERTIES_ENTITY, ROW_IDS.next_many(1), {}, {column: cell}, ROW_IDS.next_bytes(),
                 component_meta={column: meta})


ROW_OVERHEAD_BYTES = 64  # a row's ids, times and small components, as the batcher counts them


def _holds_bytes(v: Any) -> bool:
    """Whether a component value is bytes or an array (NumPy, memoryview, CuPy, a GPU
    image whose copy is in flight): what a row's size counts."""
    return isinstance(v, (bytes, bytearray)) or isinstance(getattr(v, "nbytes", None), (int, np.integer))


def _value_bytes(v: Any) -> int:
    """Bytes of one component value that is an array or bytes (0 for anything else)."""
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    return int(v.nbytes) if _holds_bytes(v) else 0


def _row_bytes(row: dict) -> int:
    """The bytes a logged row holds, as the batcher's byte threshold and in-flight bound
    count them: every array or bytes value of any archetype (Image's and DepthImage's
    buffer, SegmentationImage's, EncodedImage's blob, a GPU array), plus ROW_OVERHEAD_BYTES.
    Counting Image:buffer alone let a DepthImage stream build chunks of hundreds of
    megabytes, past the in-flight bound."""
    return ROW_OVERHEAD_BYTES + sum(_value_bytes(v) for v in row.values())


def exit_timeout() -> float:
    """Seconds ``close()`` and the exit drain wait for data to be written:
    PIXELRUN_EXIT_TIMEOUT, default 10. What is not written by then is counted and
    named in a DataLossWarning."""
    v = os.environ.get("PIXELRUN_EXIT_TIMEOUT", "").strip()
    try:
        return max(0.0, float(v)) if v else DEFAULT_EXIT_TIMEOUT
    except ValueError:
        warnings.warn(f"pixelrun: PIXELRUN_EXIT_TIMEOUT={v!r} is not a number of seconds; "
                      f"using {DEFAULT_EXIT_TIMEOUT:g}", PixelrunWarning, stacklevel=2)
        return DEFAULT_EXIT_TIMEOUT


_prepared = False
_prepared_lock = threading.Lock()


def _prepare_writer_path() -> None:
    """Run the whole write path once, on the thread creating the first recording.

    Libraries used on the batcher thread import parts of themselves on first use:
    pyarrow's ``pa.array`` imports pandas when pandas is installed. An import on a
    background thread during interpreter shutdown fails (concurrent.futures, which
    pandas imports, refuses to register its exit hook then), so the first flush of a
    script that ends without ``rr.flush()`` would fail at exit. Encoding one tiny
    chunk with every column kind, both compressions and a footer here, once per
    process, leaves nothing for the batcher thread to import. Costs pandas' import
    time (about 0.2 s) when pandas is installed.
    """
    global _prepared
    with _prepared_lock:
        if _prepared:
            return
        try:
            # pyarrow decides once whether pandas is there. A pandas that is present but
            # broken (e.g. sys.modules["pandas"] = None) makes that first call raise;
            # pyarrow then goes on without pandas, so the raise is spent here.
            pa.array([0], type=pa.uint8())
        except Exception:
            pass
        store = rrd.StoreInfo("pixelrun-prepare", "prepare")
        # every component of the Image archetype, so every column builder runs
        comps = Image(bytes=b"\0", width=1, height=1, color_model="L", datatype="U8",
                      opacity=1.0, draw_order=0.0).as_row()
        times = {"s": ("sequence", 0), "d": ("duration", 1), "log_time": ("timestamp", time.time_ns())}
        row = Row(ROW_IDS.next(), "/prepare", times, comps, 65)
        chunk = rows_to_chunk("/prepare", [row], ROW_IDS.next_bytes())
        batch = to_record_batch(chunk)
        for compression in (False, True):
            sink = MemorySink(compression)
            sink.write_chunk(store, chunk, batch, rrd.encode_chunk(chunk, store, compression=compression, batch=batch))
            sink.snapshot()
        build_column(IMAGE_BUFFER, [b"\0", None, b"\1"])
        _prepared = True


_STREAMS: "weakref.WeakSet[RecordingStream]" = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    # The batcher threads are daemons and still alive here: drain them so a script
    # that never calls flush() still leaves every row in its file. One deadline for
    # all recordings; they drain in parallel (each on its own thread).
    deadline = time.monotonic() + exit_timeout()
    streams = list(_STREAMS)
    for s in streams:
        try:
            s._begin_close(deadline)
        except Exception:  # exit must not fail
            pass
    for s in streams:
        try:
            s._end_close(deadline)
        except Exception:  # exit must not fail
            pass


def _after_fork_in_child() -> None:
    # The child shares its parent's files and sockets and lacks its threads: every
    # recording starts clean there (see RecordingStream._after_fork_in_child).
    ROW_IDS.after_fork_in_child()
    POOL.after_fork_in_child()
    _sinks._after_fork_in_child()
    global _prepared_lock
    _prepared_lock = threading.Lock()
    for s in list(_STREAMS):
        s._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RecordingStream:
    """One recording: ``log``, ``send_columns``, time, sinks (file, memory, gRPC).

    Parameters mirror Rerun's: `application_id`, `recording_id` (random when None),
    `strict` (None: follow PIXELRUN_STRICT), `spawn`. `compression`: LZ4 for chunk
    payloads, in files and streams alike; None (default) follows PIXELRUN_COMPRESSION,
    else "adaptive": LZ4 like Rerun, but an entity whose chunks do not shrink (camera
    noise) is written raw for a while (see `batcher.CompressionPolicy`); True/"always"
    compresses every chunk, False/"off" none. `compression_stats()` counts the
    decisions. `batcher_config` overrides flush thresholds and the in-flight memory bound.
    `send_properties` (default True, as Rerun): the recording's start time goes out first,
    as Rerun's static ``/__properties`` RecordingInfo row.
    """

    def __init__(
        self,
        application_id: str,
        *,
        recording_id: Optional[str] = None,
        strict: Optional[bool] = None,
        spawn: bool = False,
        compression: "bool | str | None" = None,
        batcher_config: "BatcherConfig | ChunkBatcherConfig | None" = None,
        send_properties: bool = True,
    ) -> None:
        self.store = rrd.StoreInfo(str(application_id), str(recording_id or uuid.uuid4().hex))  # Rerun's form
        self.strict = strict
        self._compressor = CompressionPolicy(compression_mode(compression))  # used on the batcher thread
        self.compression = self._compressor.compressed_stream  # what stream headers announce
        self._time = ThreadTime()
        self._seconds_kinds: dict[str, str] = {}
        self._static_formats: dict[tuple[str, str], formats.ImageFormat] = {}  # (entity, format column)
        self._loss = LossLedger(f"recording {self.application_id!r}: ")
        self._sinks: list[Sink] = []
        self._backlog: Optional[BacklogSink] = self._bound(BacklogSink())
        self._closed = False
        self._close_call = None
        self._writing_to = ""
        self._warned_closed = False
        self._child_sinks: Optional[list[Callable[[], Sink]]] = None  # forked child, not opened yet
        self._lock = threading.Lock()
        if isinstance(batcher_config, ChunkBatcherConfig):  # Rerun's form
            batcher_config = batcher_config.to_batcher_config()
        self.config = batcher_config or BatcherConfig.from_env()
        self._save_path = os.environ.get("PIXELRUN_SAVE") or None
        forced = None
        if self._save_path:
            try:
                forced = open_file_sink(self._save_path, self.compression, self._owner)[0]
            except PixelrunSaveError as exc:
                # An environment setting for the whole run, not the script's code: stop
                # before anything runs, with one line, rather than run unsaved.
                raise SystemExit(f"pixelrun: PIXELRUN_SAVE: {exc}; stopping (nothing of this run "
                                 "could be saved)") from None
        _prepare_writer_path()
        self._batcher = Batcher(self.config, self._write_chunk, self._flush_sinks,
                                ROW_IDS.next_bytes, name=f"pixelrun-batcher-{self.store.recording_id[:8]}",
                                ledger=self._loss)
        if forced is not None:
            self._set_sinks([forced])
        _STREAMS.add(self)
        if send_properties:  # as Rerun: the recording's start time, first of its data
            self.send_recording_start_time_nanos(time.time_ns())
        if spawn:
            self.spawn()

    # ------------------------------------------------------------------ identity

    @property
    def application_id(self) -> str:
        return self.store.application_id

    @property
    def recording_id(self) -> str:
        return self.store.recording_id

    def get_recording_id(self) -> str:
        """This recording's id (Rerun's accessor)."""
        return self.store.recording_id

    def get_application_id(self) -> str:
        """This recording's application id (Rerun's accessor)."""
        return self.store.application_id

    def __repr__(self) -> str:
        return f"RecordingStream({self.application_id!r}, recording_id={self.recording_id!r})"

    @property
    def _owner(self) -> str:
        return f"recording {self.application_id!r} (id {self.recording_id})"

    # ---------------------------------------------------------------- reporting

    def _say_news(self, starts: bool = True) -> None:
        """Warn, on the caller's thread, what background threads have recorded."""
        for message, category in self._loss.take_news(starts):
            warnings.warn(message, category, stacklevel=errors.user_stacklevel())

    def _refuse_closed(self, what: str, rows: int) -> None:
        """Something logged after close(): count it, warn once, keep nothing."""
        self._loss.add("after close", "logged after the recording was closed", rows=rows, warn=False)
        if not self._warned_closed:
            self._warned_closed = True
            warnings.warn(
                f"pixelrun: recording {self.application_id!r} is closed; {what} and everything "
                "logged to it from now on is dropped (counted in rec.dropped_rows)",
                RecordingClosedWarning, stacklevel=errors.user_stacklevel(),
            )

    def _report(self, message: str, strict: Optional[bool] = None) -> None:
        if strict is None:
            strict = self.strict if self.strict is not None else errors.is_strict()
        if strict:
            raise ValueError(message)
        warnings.warn(message, errors.PixelrunWarning, stacklevel=errors.user_stacklevel())

    def _checked_path(self, entity_path_: Any, dropped: str, strict: Optional[bool]) -> Optional[str]:
        """The normalised entity path, or None after reporting that `dropped` is dropped
        because the path uses a reserved '__' part."""
        path = entity_path(entity_path_)
        reserved = reserved_part(path)
        if reserved:
            self._report(f"{path}: entity path parts starting with '__' are reserved "
                         f"(got {reserved!r}); {dropped} dropped", strict)
            return None
        return path

    # --------------------------------------------------------------------- time

    def set_time(self, timeline: str, *, sequence: Any = None, duration: Any = None,
                 timestamp: Any = None) -> None:
        """Set the calling thread's time on `timeline` (exactly one kind)."""
        if sum(x is not None for x in (sequence, duration, timestamp)) != 1:
            raise ValueError(
                f"set_time({timeline!r}): give exactly one of sequence=, duration=, timestamp="
            )
        if sequence is not None:
            self._time.point[str(timeline)] = ("sequence", int(sequence))
        elif duration is not None:
            self._time.point[str(timeline)] = ("duration", to_nanos(duration))
        else:
            self._time.point[str(timeline)] = ("timestamp", to_nanos_since_epoch(timestamp))

    def set_time_sequence(self, timeline: str, sequence: Optional[int]) -> None:
        """Seed-era: sequence time (None removes the timeline)."""
        if sequence is None:
            self.disable_timeline(timeline)
        else:
            self._time.point[str(timeline)] = ("sequence", int(sequence))

    def _set_seconds_like(self, timeline: str, nanos: int) -> None:
        kind = self._seconds_kinds.setdefault(str(timeline), seconds_kind(nanos))
        self._time.point[str(timeline)] = (kind, int(nanos))

    def set_time_seconds(self, timeline: str, seconds: Optional[float]) -> None:
        """Seed-era: seconds, a duration or (past 10 years after 1970) a timestamp."""
        if seconds is None:
            self.disable_timeline(timeline)
        else:
            self._set_seconds_like(timeline, round(float(seconds) * 1e9))

    def set_time_nanos(self, timeline: str, nanos: Optional[int]) -> None:
        """Seed-era: nanoseconds, a duration or (past 10 years after 1970) a timestamp."""
        if nanos is None:
            self.disable_timeline(timeline)
        else:
            self._set_seconds_like(timeline, int(nanos))

    def disable_timeline(self, timeline: str) -> None:
        self._time.point.pop(str(timeline), None)

    def reset_time(self) -> None:
        """Clear every timeline of the calling thread (log_time remains automatic)."""
        self._time.point.clear()

    # ---------------------------------------------------------------------- log

    def _collect(self, entity: str, items: Iterable[Any], strict: Optional[bool] = None) -> Optional[dict]:
        row: dict = {}
        for obj in items:
            if obj is None or isinstance(obj, Indicator):
                continue
            err = getattr(obj, "error", None)
            if err:
                self._report(f"{entity}: {err}; row dropped", strict)
                return None
            as_row = getattr(obj, "as_row", None)
            if as_row is None:
                self._report(
                    f"{entity}: expected an archetype (rr.Image) or components, got "
                    f"{type(obj).__name__}; row dropped", strict
                )
                return None
            row.update(as_row())
        return row

    def log(self, entity_path_: Any, entity: Any, *extra: Any, static: bool = False,
            timeless: bool = False, strict: Optional[bool] = None) -> None:
        """Log one row (an archetype, a component, or a list of them) at the calling
        thread's current time (plus log_time), or as static data.

        Bad input: a PixelrunWarning naming the entity (or ValueError when strict) and
        the row is dropped. Returns without waiting on I/O. After close(): dropped,
        counted, and a RecordingClosedWarning (once).
        """
        if self._loss.has_news:
            self._say_news()
        if self._closed:
            self._refuse_closed(f"rr.log({str(entity_path_)!r})", 1)
            return
        path = self._checked_path(entity_path_, "row", strict)
        if path is None:
            return
        static = static or timeless
        items = list(entity) if isinstance(entity, (list, tuple)) else [entity]
        items.extend(extra)
        row = self._collect(path, items, strict)
        if not row:
            return
        for buf_col, fmt_col in BUFFER_FORMAT_COLUMNS:
            buf, fmt = row.get(buf_col), row.get(fmt_col)
            if buf is None:
                continue
            # Checked here, where the mistake is (contract §1): against the row's own format,
            # and for temporal rows also against a static format, which shadows theirs
            # (contract §5) and is therefore the one the buffer will be read with.
            static_fmt = None if static else self._static_formats.get((path, fmt_col))
            for against, source in ((fmt, "ImageFormat"), (static_fmt, "static ImageFormat")):
                msg = check_buffer(buf, against)
                if msg:
                    self._report(f"{path}: {msg} (format from the {source}); row dropped", strict)
                    return
        for _, fmt_col in BUFFER_FORMAT_COLUMNS:
            fmt = row.get(fmt_col)
            if fmt is None:
                continue
            if static:
                self._static_formats[(path, fmt_col)] = fmt
            warn_not_shown_by_rerun(path, (fmt,))  # kept: pixelrun reads it; said once when Rerun cannot
        nbytes = _row_bytes(row)
        if static:
            timepoint = None
        else:
            timepoint = dict(self._time.point)

        def make_row() -> Row:
            t, inc = ROW_IDS.next()
            if timepoint is not None:
                timepoint["log_time"] = ("timestamp", t)
            return Row((t, inc), path, timepoint, row, nbytes)

        if not self._batcher.push_row(make_row, nbytes):
            self._refuse_closed(f"rr.log({path!r})", 1)

    # ---------------------------------------------------------- properties

    def _send_property(self, chunk: Chunk, what: str) -> None:
        if self._closed:
            self._refuse_closed(what, 1)
        elif not self._batcher.push_chunk(chunk, 64):
            self._refuse_closed(what, 1)

    def send_recording_name(self, name: str) -> None:
        """The recording's name (shown by the Rerun viewer): Rerun's static
        ``/__properties`` ``RecordingInfo:name`` row."""
        self._send_property(_property_chunk("name", "rerun.components.Name", pa.array([str(name)], pa.utf8())),
                            "send_recording_name")

    def send_recording_start_time_nanos(self, nanos: int) -> None:
        """The recording's start time, nanoseconds since the UNIX epoch (``rr.init`` sends
        the time of the call): Rerun's static ``/__properties`` ``RecordingInfo:start_time`` row."""
        if isinstance(nanos, bool) or not isinstance(nanos, (int, np.integer)):
            raise TypeError(f"send_recording_start_time_nanos: expected an int (nanoseconds since the UNIX "
                            f"epoch), got {type(nanos).__name__}")
        self._send_property(
            _property_chunk("start_time", "rerun.components.Timestamp", pa.array([int(nanos)], pa.int64())),
            "send_recording_start_time_nanos")

    # ------------------------------------------------------------- send_columns

    def send_columns(self, entity_path_: Any, indexes: Any = None, columns: Any = None, *,
                     times: Any = None, components: Any = None, strict: Optional[bool] = None) -> None:
        """Log many rows at once: `indexes`/`times` are time columns (none = static),
        `columns`/`components` are component columns (length N, or 1 to repeat)."""
        if self._loss.has_news:
            self._say_news()
        if self._closed:
            idx = indexes if indexes is not None else times
            n = max((len(t) for t in idx or [] if hasattr(t, "__len__")), default=1)
            self._refuse_closed(f"send_columns({str(entity_path_)!r})", n)
            return
        path = self._checked_path(entity_path_, "columns", strict)
        if path is None:
            return
        self._send_columns(path, indexes if indexes is not None else times,
                           columns if columns is not None else components, strict)

    def _send_columns(self, path: str, indexes: Any, columns: Any, strict: Optional[bool] = None) -> None:
        def report(msg: str) -> None:
            self._report(msg, strict)

        indexes = list(indexes or [])
        if isinstance(columns, (ComponentColumn, Image)) or hasattr(columns, "as_row"):
            columns = [columns]
        columns = list(columns or [])
        cols: dict[str, Any] = {}
        for c in columns:
            if isinstance(c, Indicator) or c is None:
                continue
            err = getattr(c, "error", None)
            if err:
                report(f"{path}: {err}; send_columns dropped")
                return
            if isinstance(c, ComponentColumn):
                cols[c.component_name] = c.values
            elif hasattr(c, "as_row"):
                for k, v in c.as_row().items():
                    cols[k] = [v]
            else:
                report(f"{path}: send_columns expects component columns, got {type(c).__name__}; dropped")
                return
        if not cols:
            return
        tcols = []
        for ix in indexes:
            if not isinstance(ix, TimeColumn):
                report(f"{path}: send_columns indexes must be TimeColumn objects, got {type(ix).__name__}; dropped")
                return
            tcols.append(ix)
        lengths = {len(t) for t in tcols}
        if len(lengths) > 1:
            report(f"{path}: time columns have different lengths {sorted(lengths)}; dropped")
            return
        n = lengths.pop() if lengths else max(len(v) for v in cols.values())
        for name, vals in list(cols.items()):
            if len(vals) == n:
                continue
            if len(vals) == 1:
                cols[name] = ([vals[0]] * n) if not isinstance(vals, np.ndarray) else np.repeat(vals, n, axis=0)
                continue
            report(
                f"{path}: column {name} has {len(vals)} rows but the time columns have {n}; "
                "send_columns dropped"
            )
            return
        if n == 0:
            return
        keep = np.ones(n, dtype=bool)
        for buf_col, fmt_col in BUFFER_FORMAT_COLUMNS:
            bufs = cols.get(buf_col)
            if bufs is None:
                continue
            fmts = cols.get(fmt_col)
            static_fmt = self._static_formats.get((path, fmt_col))
            sizes = (np.full(n, bufs.shape[1]) if isinstance(bufs, np.ndarray)
                     else np.array([_value_bytes(b) for b in bufs]))
            # Expected byte count per row (-1: no format to check against), computed
            # once per distinct format, then compared for all rows at once.
            if fmts is not None:
                per_fmt: dict = {}
                expected = np.array([per_fmt.setdefault(id(f), f.byte_count()) if f is not None else -1
                                     for f in fmts], dtype=np.int64)
                why = ""
            elif static_fmt is not None:
                expected = np.full(n, static_fmt.byte_count(), dtype=np.int64)
                fmts = [static_fmt] * n
                why = " (format from the static ImageFormat)"
            else:
                expected = np.full(n, -1, dtype=np.int64)
            bad = np.nonzero((expected >= 0) & (sizes != expected))[0]
            for i in bad:  # only the bad rows are visited in Python, to name each one
                report(f"{path}: row {int(i)}: {formats.validate(int(sizes[i]), fmts[i])}{why}; row dropped")
            keep[bad] = False
        for _, fmt_col in BUFFER_FORMAT_COLUMNS:
            if not tcols and fmt_col in cols and cols[fmt_col][-1] is not None:
                self._static_formats[(path, fmt_col)] = cols[fmt_col][-1]
        idx = np.nonzero(keep)[0]
        if idx.size == 0:
            return
        for _, fmt_col in BUFFER_FORMAT_COLUMNS:
            warn_not_shown_by_rerun(path, cols.get(fmt_col, ()))
        self._queue_columns(path, tcols, cols, idx)

    def _queue_columns(self, path: str, tcols: list, cols: dict, idx: np.ndarray) -> None:
        # The largest row's bytes over every column (any archetype's buffers and blobs). A
        # list column is sized row by row only when it holds bytes: each column is built by
        # one parser, so its first present value says (formats and floats count as the overhead).
        sized = {name for name, vals in cols.items() if not isinstance(vals, np.ndarray)
                 and _holds_bytes(next((v for v in vals if v is not None), None))}
        per_row = ROW_OVERHEAD_BYTES
        for name, vals in cols.items():
            if isinstance(vals, np.ndarray):
                per_row += vals.nbytes // max(len(vals), 1)
            elif name in sized:
                per_row += max(_value_bytes(vals[i]) for i in idx)
        # Chunks of about flush_num_bytes each (Rerun's chunk size target), at least one
        # row; buffers are zero-copy slices of the caller-protecting copy.
        rows_per_chunk = max(1, self.config.flush_num_bytes // max(per_row, 1))
        # With no row dropped, each chunk's rows are a contiguous range: plain slices.
        contiguous = idx.size == len(next(iter(cols.values())))
        for a in range(0, idx.size, rows_per_chunk):
            sel = idx[a:a + rows_per_chunk]
            comps = {}
            nbytes = 0
            for name, vals in cols.items():
                if isinstance(vals, np.ndarray):
                    part = vals[sel[0]:sel[-1] + 1] if contiguous else vals[sel]
                    nbytes += part.nbytes
                else:
                    part = [vals[i] for i in sel]
                    if name in sized:
                        nbytes += sum(_value_bytes(b) for b in part)
                comps[name] = part
            timelines = {t.timeline_name: ChunkTimeColumn(t.kind, t.values[sel]) for t in tcols}
            row_ids = ROW_IDS.next_many(sel.size)
            chunk = Chunk(path, row_ids, timelines,
                          {k: build_column(k, v) for k, v in comps.items()}, ROW_IDS.next_bytes())
            if not self._batcher.push_chunk(chunk, nbytes + ROW_OVERHEAD_BYTES * sel.size):
                self._refuse_closed(f"send_columns({path!r})", sel.size)

    # ------------------------------------------------------------ sinks (thread)

    def _bound(self, sink: Sink) -> Sink:
        sink.bind(self._loss)
        return sink

    def _write_chunk(self, chunk: Chunk) -> None:
        """Batcher thread: encode once, hand to every sink (a failing sink counts its
        chunk as dropped; the others still get it)."""
        if self._child_sinks is not None:
            self._open_child_sinks()
        batch = to_record_batch(chunk)
        enc = self._compressor.encode(chunk, self.store, batch)  # LZ4 or raw, see CompressionPolicy
        targets = self._sinks or ([self._backlog] if self._backlog is not None else [])
        for s in targets:
            self._writing_to = s.place  # named if a close times out while this write hangs
            try:
                s.write_chunk(self.store, chunk, batch, enc)
            except Exception as exc:  # counted; never stops the other sinks
                self._loss.add(s.place, f"writing failed: {type(exc).__name__}: {exc}",
                               chunks=1, rows=chunk.num_rows, nbytes=enc.size)
        self._writing_to = ""

    def _flush_sinks(self) -> None:
        for s in self._sinks:
            s.flush()

    def _set_sinks(self, sinks: list, keep_forced: bool = False) -> None:
        def swap() -> None:
            old = self._sinks
            if keep_forced and old:
                new = [old[0]] + list(sinks)
                old = old[1:]
            else:
                new = list(sinks)
            for s in new:
                self._bound(s)
                s.add_store(self.store)
            if self._backlog is not None and new:
                for s in new:
                    self._backlog.replay_into(s)
                self._backlog = None
            for s in old:
                if s not in new:
                    s.close()
            self._sinks = new
            if not new and self._backlog is None:
                self._backlog = self._bound(BacklogSink())
        call = self._batcher.call(swap, wait=False)
        if not self._batcher.wait(call.done, time.monotonic() + exit_timeout()):
            warnings.warn(f"pixelrun: the writer of recording {self.application_id!r} is busy"
                          f"{self._stuck()}; the new sink takes over when it is free",
                          PixelrunWarning, stacklevel=errors.user_stacklevel())
        elif call.error is not None:
            raise call.error
        self._say_news()

    def _stuck(self) -> str:
        return f" (still writing to {self._writing_to})" if self._writing_to else ""

    # ------------------------------------------------------------------ fork

    def _after_fork_in_child(self) -> None:
        """In a forked child: never touch the parent's files or sockets (their sink
        objects are dropped, not closed: closing would write a footer into the
        parent's file), discard the parent's queued rows (the parent writes them),
        and write the child's own rows to the sinks `Sink.for_child` names, opened
        at the child's first chunk (a child that logs nothing creates nothing)."""
        self._lock = threading.Lock()
        self._close_call = None
        self._loss = LossLedger(self._loss.label)
        self._batcher.ledger = self._loss
        self._batcher.after_fork_in_child()
        self._compressor.after_fork_in_child()
        if self._closed:
            self._sinks, self._backlog = [], None
            return
        # a child forked again before its first chunk passes its own pending sinks on
        # (their factories name the calling process's file or relay)
        pending = self._child_sinks or []
        self._child_sinks = [f for f in (s.for_child() for s in self._sinks) if f is not None] + pending
        self._sinks = []
        self._backlog = self._bound(BacklogSink())

    def _open_child_sinks(self) -> None:
        factories, self._child_sinks = self._child_sinks or [], None
        opened = []
        for make in factories:
            try:
                opened.append(self._bound(make()))
            except (OSError, RuntimeError) as exc:  # RuntimeError: no new threads at interpreter exit
                self._loss.notice(f"pixelrun: forked process {os.getpid()}: {exc}; its rows are "
                                  "not saved", DataLossWarning)
        for s in opened:
            s.add_store(self.store)
        self._sinks = opened
        if opened:
            self._backlog = None
            where = ", ".join(getattr(s, "path", None) or s.place for s in opened)
            self._loss.notice(f"pixelrun: process {os.getpid()} was forked after the recording "
                              f"{self.application_id!r} started; it writes its own rows to {where} "
                              "(the parent's file and connection stay the parent's)", PixelrunWarning)

    # ------------------------------------------------------------------ sinks

    def save(self, path: str, *, write_footer: bool = True, default_blueprint: Any = None) -> None:
        """Write the recording to an .rrd file (replaces the current sinks).

        Raises PixelrunSaveError (an OSError) naming the path when it cannot be
        written. A path another recording of this process is still writing is
        shared (one .rrd holds several recordings; both stay complete), with a
        warning. Under PIXELRUN_SAVE this is ignored, with a warning naming both.
        ``write_footer=False`` leaves out the End message and stream footer (as
        Rerun's opt-out). `default_blueprint` is accepted and ignored (pixelrun's
        viewer has a fixed layout).
        """
        try:
            sink = self._open_file(path, write_footer)
        except PixelrunSaveError as exc:
            raise exc.with_traceback(None) from None  # the message says it all: no frames inside
        if sink is not None:
            self._set_sinks([sink])

    def _open_file(self, path: Any, write_footer: bool = True) -> Optional[Sink]:
        """The file sink for `path` (None under PIXELRUN_SAVE, with a warning)."""
        path = os.fspath(path)
        if self._save_path:
            warnings.warn(
                f"pixelrun: PIXELRUN_SAVE={self._save_path!r} captures this run; rr.save({path!r}) is "
                f"ignored (unset PIXELRUN_SAVE to write {path!r})", PixelrunWarning,
                stacklevel=errors.user_stacklevel())
            return None
        try:
            sink, others = open_file_sink(path, self.compression, self._owner, write_footer)
        except PixelrunSaveError as exc:
            raise exc.with_traceback(None) from None  # the message says it all: no frames inside
        if others:
            warnings.warn(
                f"pixelrun: {path!r} is already being written by {', '.join(others)} in this process; "
                f"{self._owner} is added to the same file (an .rrd holds several recordings) "
                "instead of overwriting it", PixelrunWarning, stacklevel=errors.user_stacklevel())
        return sink

    def set_sinks(self, *sinks: Any, default_blueprint: Any = None) -> None:
        """Send the recording to all of `sinks` at once (replacing the current ones):
        ``rr.FileSink(path, write_footer=True)``, ``rr.GrpcSink(url)``, or the object
        ``memory_recording()`` returned. Each sink gets every chunk; one that fails
        counts its own losses and the others go on. Under PIXELRUN_SAVE the capture
        file stays and the others are added."""
        opened: list = []
        try:
            for spec in sinks:
                if isinstance(spec, FileSinkSpec):
                    sink = self._open_file(spec.path, spec.write_footer)
                    if sink is not None:
                        opened.append(sink)
                elif isinstance(spec, GrpcSinkSpec):
                    opened.append(GrpcSink(spec.url))
                elif isinstance(spec, MemoryRecording):
                    opened.append(spec._sink)
                elif isinstance(spec, Sink):
                    opened.append(spec)
                else:
                    raise TypeError(f"set_sinks: expected rr.FileSink, rr.GrpcSink or a memory recording, "
                                    f"got {type(spec).__name__}")
        except BaseException:
            for s in opened:  # nothing half-set: what was opened for this call is closed again
                s.close(0)
            raise
        self._set_sinks(opened, keep_forced=bool(self._save_path))

    def memory_recording(self) -> MemoryRecording:
        """Keep the recording in memory; the returned object has ``rrd_bytes()``."""
        mem = MemorySink(self.compression)
        self._set_sinks([mem], keep_forced=bool(self._save_path))
        return MemoryRecording(self, mem)

    def connect_tcp(self, addr: Optional[str] = None, *, flush_timeout_sec: Optional[float] = 2.0) -> None:
        """Deprecated alias of `connect_grpc`: pixelrun's raw .rrd-over-TCP stream was
        retired (one protocol for live streams: Rerun's gRPC). "host:port" (default
        127.0.0.1:9876, or PIXELRUN_PORT) streams to ``rerun+http://host:port/proxy``:
        ``pixelrun view`` and Rerun's viewer both serve it there. Warns once per process
        (a PixelrunWarning, visible by default unlike DeprecationWarning)."""
        addr = addr or f"127.0.0.1:{rrd.default_port()}"
        url = addr if "://" in addr else f"rerun+http://{addr}/proxy"
        global _warned_tcp_retired
        if not _warned_tcp_retired:
            _warned_tcp_retired = True
            warnings.warn(f"pixelrun: connect_tcp({addr!r}) is deprecated: the raw .rrd-over-TCP stream was "
                          f"retired; streaming over gRPC to {url} instead (use rr.connect_grpc)",
                          PixelrunWarning, stacklevel=errors.user_stacklevel())
        self.connect_grpc(url, flush_timeout_sec=flush_timeout_sec)

    def connect_grpc(self, url: Optional[str] = None, *, flush_timeout_sec: Optional[float] = 2.0,
                     **_: Any) -> None:
        """Stream to a Rerun-compatible gRPC server (Rerun 0.41's protocol): a Rerun
        viewer, ``rerun --serve-grpc``, or ``pixelrun view``. `url` defaults to
        ``rerun+http://127.0.0.1:9876/proxy`` (port: PIXELRUN_PORT when set); a
        plain "host:port" is accepted too. Never blocks: data queues (bounded, drops
        counted) until the server is reachable; a peer that is not a Rerun gRPC
        server is named in a warning and gets nothing. A malformed URL raises
        ValueError."""
        url = url or default_grpc_url()
        wire.parse_url(url)  # a malformed URL raises here, also under PIXELRUN_SAVE
        if self._save_path:
            return
        self._set_sinks([GrpcSink(url)])

    def connect(self, addr: Optional[str] = None, *, flush_timeout_sec: Optional[float] = 2.0) -> None:
        """Rerun's older name, kept as an alias of `connect_grpc` ("host:port" or a URL)."""
        self.connect_grpc(addr, flush_timeout_sec=flush_timeout_sec)

    def spawn(self, port: Optional[int] = None, connect: bool = True, **_: Any) -> None:
        """Start the pixelrun viewer unless something listens on `port` already (a
        Rerun viewer does too), then stream to it over gRPC."""
        if self._save_path:
            return
        port = rrd.default_port() if port is None else port
        if spawn_viewer(port) and connect:
            self.connect_grpc(f"rerun+http://127.0.0.1:{port}/proxy")

    def disconnect(self) -> None:
        """Close the current sinks (files get their footer); later data is buffered."""
        if self._save_path:
            self.flush()
            return
        self._set_sinks([])

    def flush(self, blocking: bool = True, timeout_sec: Optional[float] = None) -> None:
        """Write everything logged so far to the sinks, waiting at most `timeout_sec`
        (default: PIXELRUN_EXIT_TIMEOUT, 10 s; a warning says when that was not
        enough: the rows stay queued, nothing is dropped)."""
        if self._closed:
            self._say_news()
            return
        if blocking:
            timeout = exit_timeout() if timeout_sec is None else timeout_sec
            if not self._batcher.flush(timeout):
                rows, _ = self._batcher.leftover()
                warnings.warn(f"pixelrun: flush of recording {self.application_id!r} gave up after "
                              f"{timeout:g} s with {rows} row(s) still queued{self._stuck()}; they are "
                              "written when the writer is free", PixelrunWarning,
                              stacklevel=errors.user_stacklevel())
        else:
            threading.Thread(target=self._batcher.flush, daemon=True).start()
        self._say_news()

    # ------------------------------------------------------------------ close

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush, finish every sink (footers, last sends) and stop the background
        thread, waiting at most `timeout` s (default: PIXELRUN_EXIT_TIMEOUT, 10 s).
        Whatever could not be written by then is counted; a DataLossWarning sums up
        every drop of this recording. Later logging is dropped with a warning."""
        deadline = time.monotonic() + (exit_timeout() if timeout is None else timeout)
        self._begin_close(deadline)
        self._end_close(deadline)

    def _begin_close(self, deadline: float) -> None:
        """Queue the final flush and the closing of the sinks (does not wait)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True

        def finish() -> None:
            left = max(0.0, deadline - time.monotonic())
            for s in self._sinks:
                s.close(timeout=left)
            if self._backlog is not None:
                self._backlog.close()
            self._sinks = []

        self._close_call = self._batcher.call(finish, wait=False)
        self._batcher.request_stop()

    def _end_close(self, deadline: float) -> None:
        """Wait (until `deadline`) for what _begin_close queued; count what is left."""
        call, self._close_call = self._close_call, None
        if call is not None:
            done = self._batcher.wait(call.done, deadline)
            self._batcher.stop(deadline)
            if not done:
                rows, nbytes = self._batcher.leftover()
                if rows:
                    self._loss.add("close", f"not written within the close timeout "
                                   f"(PIXELRUN_EXIT_TIMEOUT){self._stuck()}", rows=rows, nbytes=nbytes)
                for s in list(self._sinks) + ([self._backlog] if self._backlog is not None else []):
                    s.abandon()
        summary = self._loss.summary()
        self._say_news(starts=summary is None)
        if summary:
            warnings.warn(summary, DataLossWarning, stacklevel=errors.user_stacklevel())

    def __enter__(self) -> "RecordingStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ counts

    @property
    def dropped_chunks(self) -> int:
        """Chunks dropped anywhere (stream queues, the no-sink buffer, failed writes),
        including by sinks already closed; readable after close()."""
        return self._loss.totals()[0]

    @property
    def dropped_rows(self) -> int:
        """Rows dropped anywhere (as above, plus rows logged after close() and rows
        the close timeout left unwritten); readable after close()."""
        return self._loss.totals()[1]

    def compression_stats(self) -> dict:
        """How chunks were written so far (see `CompressionPolicy.stats`): mode, chunks,
        compressed, not_useful, backed_off, retried, too_large, ipc_bytes, written_bytes."""
        return self._compressor.stats()

    def losses(self) -> dict[str, tuple[int, int, int]]:
        """Drops by place ("grpc URL", "after close", ...): {place: (chunks, rows,
        bytes)}; readable after close()."""
        return self._loss.by_place()

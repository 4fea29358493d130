"""RecordingStream: one recording, its time state, its batcher and its sinks.

The module-level API in ``pixelrun`` (``rr.log``...) forwards to the global stream
created by ``rr.init``; several streams can live in one process
(``rr.RecordingStream(app_id)`` / ``rr.new_recording``), each with its own sinks.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import uuid
import warnings
import weakref
from typing import Any, Iterable, Optional

import numpy as np

from pixelrun import errors
from pixelrun.archetypes import Image, Indicator
from pixelrun.batcher import Batcher, BatcherConfig, Row
from pixelrun.components import ComponentColumn
from pixelrun.engine import rrd
from pixelrun.engine.chunk import (
    normalize_entity_path,
    IMAGE_BUFFER, IMAGE_FORMAT, Chunk, TimeColumn as ChunkTimeColumn, to_record_batch,
)
from pixelrun.image_input import check_buffer
from pixelrun.kernels import formats
from pixelrun.sinks import (
    BacklogSink, FileSink, MemoryRecording, MemorySink, Sink, TcpSink, shared_file_sink,
)
from pixelrun.timeline import (
    ROW_IDS, ThreadTime, TimeColumn, seconds_kind, to_nanos, to_nanos_since_epoch,
)

__all__ = ["RecordingStream", "entity_path"]

def entity_path(path: Any) -> str:
    """Normalised entity path: '/a/b', empty parts dropped, odd characters escaped (SPEC 5)."""
    return normalize_entity_path(path)


def reserved_part(path: str) -> Optional[str]:
    """The first part of a normalised path that starts with '__' (reserved), or None."""
    return next((p for p in path.split("/") if p.startswith("__")), None)


def _blob_size(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, np.ndarray):
        return int(v.nbytes)
    return len(v)


_STREAMS: "weakref.WeakSet[RecordingStream]" = weakref.WeakSet()
@atexit.register
def _close_all_at_exit() -> None:
    # The batcher threads are daemons and still alive here: drain them so a script
    # that never calls flush() still leaves every row in its file.
    for s in list(_STREAMS):
        try:
            s.close()
        except Exception:  # noqa: BLE001 - exit must not fail
            pass


class RecordingStream:
    """One recording: ``log``, ``send_columns``, time, sinks (file, memory, TCP).

    Parameters mirror Rerun's: `application_id`, `recording_id` (random when None),
    `strict` (None: follow PIXELRUN_STRICT), `spawn`. `compression` selects LZ4 for
    chunk payloads (default off: camera frames barely compress and the CPU is better
    spent elsewhere; Rerun's reader accepts both). `batcher_config` overrides flush
    thresholds and the in-flight memory bound.
    """

    def __init__(
        self,
        application_id: str,
        *,
        recording_id: Optional[str] = None,
        strict: Optional[bool] = None,
        spawn: bool = False,
        compression: Optional[bool] = None,
        batcher_config: Optional[BatcherConfig] = None,
    ) -> None:
        self.store = rrd.StoreInfo(str(application_id), str(recording_id or uuid.uuid4()))
        self.strict = strict
        if compression is None:
            compression = os.environ.get("PIXELRUN_COMPRESSION", "").lower() in ("lz4", "1", "on")
        self.compression = compression
        self._time = ThreadTime()
        self._seconds_kinds: dict[str, str] = {}
        self._static_formats: dict[str, formats.ImageFormat] = {}
        self._sinks: list[Sink] = []
        self._backlog: Optional[BacklogSink] = BacklogSink()
        self._closed = False
        self._lock = threading.Lock()
        self.config = batcher_config or BatcherConfig.from_env()
        self._batcher = Batcher(self.config, self._write_chunk, self._flush_sinks,
                                ROW_IDS.next_bytes, name=f"pixelrun-batcher-{self.store.recording_id[:8]}")
        self._save_path = os.environ.get("PIXELRUN_SAVE") or None
        if self._save_path:
            self._set_sinks([shared_file_sink(self._save_path, self.compression)])
        _STREAMS.add(self)
        if spawn:
            self.spawn()

    # ------------------------------------------------------------------ identity

    @property
    def application_id(self) -> str:
        return self.store.application_id

    @property
    def recording_id(self) -> str:
        return self.store.recording_id

    def __repr__(self) -> str:
        return f"RecordingStream({self.application_id!r}, recording_id={self.recording_id!r})"

    # ---------------------------------------------------------------- reporting

    def _report(self, message: str, strict: Optional[bool] = None) -> None:
        if strict is None:
            strict = self.strict if self.strict is not None else errors.is_strict()
        if strict:
            raise ValueError(message)
        warnings.warn(message, errors.PixelrunWarning, stacklevel=errors.user_stacklevel())

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
        the row is dropped. Returns without waiting on I/O.
        """
        path = entity_path(entity_path_)
        if reserved_part(path):
            self._report(f"{path}: entity path parts starting with '__' are reserved "
                         f"(got {reserved_part(path)!r}); row dropped", strict)
            return
        static = static or timeless
        items = list(entity) if isinstance(entity, (list, tuple)) else [entity]
        items.extend(extra)
        row = self._collect(path, items, strict)
        if not row:
            return
        buf, fmt = row.get(IMAGE_BUFFER), row.get(IMAGE_FORMAT)
        if buf is not None:
            # Checked here, where the mistake is (SPEC 1): against the row's own format,
            # and for temporal rows also against a static ImageFormat, which shadows
            # theirs (SPEC 5) and is therefore the one the buffer will be read with.
            static_fmt = None if static else self._static_formats.get(path)
            for against, source in ((fmt, "ImageFormat"), (static_fmt, "static ImageFormat")):
                msg = check_buffer(buf, against)
                if msg:
                    self._report(f"{path}: {msg} (format from the {source}); row dropped", strict)
                    return
        if static and fmt is not None:
            self._static_formats[path] = fmt
        nbytes = _blob_size(buf) + 64
        if static:
            timepoint = None
        else:
            timepoint = dict(self._time.point)

        def make_row() -> Row:
            t, inc = ROW_IDS.next()
            if timepoint is not None:
                timepoint["log_time"] = ("timestamp", t)
            return Row((t, inc), path, timepoint, row, nbytes)

        self._batcher.push_row(make_row, nbytes)

    # ------------------------------------------------------------- send_columns

    def send_columns(self, entity_path_: Any, indexes: Any = None, columns: Any = None, *,
                     times: Any = None, components: Any = None, strict: Optional[bool] = None) -> None:
        """Log many rows at once: `indexes`/`times` are time columns (none = static),
        `columns`/`components` are component columns (length N, or 1 to repeat)."""
        path = entity_path(entity_path_)
        if reserved_part(path):
            self._report(f"{path}: entity path parts starting with '__' are reserved "
                         f"(got {reserved_part(path)!r}); columns dropped", strict)
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
        bufs = cols.get(IMAGE_BUFFER)
        if bufs is not None:
            fmts = cols.get(IMAGE_FORMAT)
            static_fmt = self._static_formats.get(path)
            sizes = (np.full(n, bufs.shape[1]) if isinstance(bufs, np.ndarray)
                     else np.array([_blob_size(b) for b in bufs]))
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
        if not tcols and IMAGE_FORMAT in cols:
            last = cols[IMAGE_FORMAT][-1]
            if last is not None:
                self._static_formats[path] = last
        idx = np.nonzero(keep)[0]
        if idx.size == 0:
            return
        self._queue_columns(path, tcols, cols, idx)

    def _queue_columns(self, path: str, tcols: list, cols: dict, idx: np.ndarray) -> None:
        bufs = cols.get(IMAGE_BUFFER)
        per_row = 64
        if bufs is not None:
            per_row += int(bufs.shape[1]) if isinstance(bufs, np.ndarray) else max(
                (_blob_size(bufs[i]) for i in idx), default=0)
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
                    if name == IMAGE_BUFFER:
                        nbytes += sum(_blob_size(b) for b in part)
                comps[name] = part
            timelines = {t.timeline_name: ChunkTimeColumn(t.kind, t.values[sel]) for t in tcols}
            row_ids = ROW_IDS.next_many(sel.size)
            from pixelrun.batcher import build_column

            chunk = Chunk(path, row_ids, timelines,
                          {k: build_column(k, v) for k, v in comps.items()}, ROW_IDS.next_bytes())
            self._batcher.push_chunk(chunk, nbytes + 64 * sel.size)

    # ------------------------------------------------------------ sinks (thread)

    def _write_chunk(self, chunk: Chunk) -> None:
        """Batcher thread: encode once, hand to every sink."""
        batch = to_record_batch(chunk)
        enc = rrd.encode_chunk(chunk, self.store, compression=self.compression, batch=batch)
        targets = self._sinks or ([self._backlog] if self._backlog is not None else [])
        for s in targets:
            s.write_chunk(self.store, chunk, batch, enc)

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
                self._backlog = BacklogSink()
        self._batcher.call(swap)

    def save(self, path: str) -> None:
        """Write the recording to an .rrd file (replaces the current sinks)."""
        if self._save_path:
            return  # PIXELRUN_SAVE captures every recording in its own file
        self._set_sinks([FileSink(path, self.compression)])

    def memory_recording(self) -> MemoryRecording:
        """Keep the recording in memory; the returned object has ``rrd_bytes()``."""
        mem = MemorySink(self.compression)
        self._set_sinks([mem], keep_forced=bool(self._save_path))
        return MemoryRecording(self, mem)

    def connect(self, addr: Optional[str] = None, *, flush_timeout_sec: Optional[float] = 2.0) -> None:
        """Stream to a viewer listening on TCP `addr` ("host:port", default
        127.0.0.1:9876). Never blocks: data queues until the viewer is reachable."""
        if self._save_path:
            return
        self._set_sinks([TcpSink(addr or f"127.0.0.1:{rrd.default_port()}")])

    connect_tcp = connect

    def connect_grpc(self, url: Optional[str] = None, **_: Any) -> None:
        """Rerun's current name; the URL's host:port is used for our TCP stream."""
        addr = None
        if url:
            m = re.search(r"//([^/]+)", url)
            addr = m.group(1) if m else url
        self.connect(addr)

    def spawn(self, port: Optional[int] = None, connect: bool = True, **_: Any) -> None:
        """Start the pixelrun viewer (when available) and stream to it."""
        if self._save_path:
            return
        from pixelrun.spawn import spawn_viewer

        port = rrd.default_port() if port is None else port
        if spawn_viewer(port) and connect:
            self.connect(f"127.0.0.1:{port}")

    def disconnect(self) -> None:
        """Close the current sinks (files get their footer); later data is buffered."""
        if self._save_path:
            self.flush()
            return
        self._set_sinks([])

    def flush(self, blocking: bool = True, timeout_sec: Optional[float] = None) -> None:
        """Write everything logged so far to the sinks."""
        if self._closed:
            return
        if blocking:
            self._batcher.flush(timeout_sec)
        else:
            threading.Thread(target=self._batcher.flush, daemon=True).start()

    def close(self) -> None:
        """Flush, finish every sink (footers) and stop the background thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._batcher.flush()

        def finish() -> None:
            for s in self._sinks:
                s.close()
            self._sinks = []

        self._batcher.call(finish)
        self._batcher.stop(timeout=10)
        if self._batcher.errors:
            warnings.warn(
                f"pixelrun: {len(self._batcher.errors)} chunk(s) could not be written: "
                f"{self._batcher.errors[0]}", errors.PixelrunWarning, stacklevel=2,
            )

    def __enter__(self) -> "RecordingStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def dropped_chunks(self) -> int:
        """Chunks dropped by TCP sinks and the no-sink backlog (bounded buffers)."""
        n = self._backlog.dropped if self._backlog is not None else 0
        return n + sum(getattr(s, "dropped", 0) for s in self._sinks)

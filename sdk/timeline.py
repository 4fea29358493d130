"""Time: per-thread current time points, time columns for send_columns, row ids.

Timelines have a kind: ``sequence`` (int64 ticks), ``duration`` (ns) or
``timestamp`` (ns since the Unix epoch), as in Rerun 0.41.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "TimeSequenceColumn", "TimeSecondsColumn", "TimeNanosColumn", "TimeColumn",
    "ThreadTime", "RowIdGenerator", "to_nanos", "to_nanos_since_epoch",
    "seconds_kind",
]

# Seed-era set_time_seconds / set_time_nanos did not say whether a value is a duration
# or a date; Rerun then guessed from the value. We guess the same way, once per
# timeline: values past 10 years after the epoch are timestamps.
_TIMESTAMP_THRESHOLD_NS = 10 * 365 * 86400 * 1_000_000_000


def seconds_kind(nanos: int) -> str:
    return "timestamp" if abs(int(nanos)) >= _TIMESTAMP_THRESHOLD_NS else "duration"


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _delta_nanos(d: timedelta) -> int:
    """Exact ns of a timedelta (integer arithmetic: no float rounding far from 0)."""
    return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000


def _reject_low_precision(value: Any, what: str) -> None:
    # Rerun refuses these: a float16/float32 cannot hold seconds to the nanosecond
    if isinstance(value, (np.float16, np.float32)):
        raise TypeError(f"{what} as {type(value).__name__} has not enough precision for nanoseconds; "
                        "use a Python float or numpy.float64")


def to_nanos(duration: Any) -> int:
    """Duration in ns from seconds (int/float), timedelta or numpy.timedelta64."""
    if isinstance(duration, np.timedelta64):
        return int(duration.astype("timedelta64[ns]").astype(np.int64))
    if isinstance(duration, timedelta):
        return _delta_nanos(duration)
    if isinstance(duration, (int, np.integer)) and not isinstance(duration, bool):
        return int(duration) * 1_000_000_000
    _reject_low_precision(duration, "duration")
    if isinstance(duration, (float, np.floating)):
        return round(float(duration) * 1e9)
    raise TypeError(f"duration must be seconds, timedelta or numpy.timedelta64, got {type(duration).__name__}")


def to_nanos_since_epoch(ts: Any) -> int:
    """Timestamp in ns from seconds since epoch, datetime (pandas Timestamps keep
    their nanoseconds), numpy.datetime64 or a pyarrow timestamp scalar."""
    if isinstance(ts, np.datetime64):
        return int(ts.astype("datetime64[ns]").astype(np.int64))
    if isinstance(ts, pa.TimestampScalar):
        if not ts.is_valid:
            raise TypeError("timestamp is a null pyarrow scalar")
        return int(ts.cast(pa.timestamp("ns", tz=ts.type.tz)).value)
    if isinstance(ts, datetime):
        to64 = getattr(ts, "to_datetime64", None)  # pandas.Timestamp: ns precision, UTC
        if to64 is not None:
            return int(np.datetime64(to64(), "ns").astype(np.int64))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return _delta_nanos(ts - _EPOCH)
    _reject_low_precision(ts, "timestamp")
    if isinstance(ts, (int, float, np.integer, np.floating)) and not isinstance(ts, bool):
        if ts > 1e11:
            raise ValueError("timestamp= expects seconds since the Unix epoch; this looks like milliseconds")
        if isinstance(ts, (int, np.integer)):
            return int(ts) * 1_000_000_000
        return int(round(float(ts) * 1e9))
    raise TypeError(f"timestamp must be seconds, datetime, numpy.datetime64 or a pyarrow timestamp, got "
                    f"{type(ts).__name__}")


# ----------------------------------------------------------------- time columns


class TimeColumn:
    """One timeline's values for ``send_columns(indexes=[...])``.

    ``TimeColumn(name, sequence=[...])``, ``duration=`` (seconds or timedelta64) or
    ``timestamp=`` (seconds since epoch or datetime64).
    """

    def __init__(self, timeline: str, *, sequence: Any = None, duration: Any = None,
                 timestamp: Any = None) -> None:
        given = [x is not None for x in (sequence, duration, timestamp)]
        if sum(given) != 1:
            raise ValueError(
                f"TimeColumn({timeline!r}): give exactly one of sequence=, duration=, timestamp="
            )
        self.timeline_name = str(timeline)
        if sequence is not None:
            self.kind = "sequence"
            self.values = np.asarray(sequence).astype(np.int64, copy=True).reshape(-1)
        elif duration is not None:
            self.kind = "duration"
            self.values = _nanos_array(duration, "timedelta64[ns]", to_nanos)
        else:
            self.kind = "timestamp"
            self.values = _nanos_array(timestamp, "datetime64[ns]", to_nanos_since_epoch)

    def __len__(self) -> int:
        return len(self.values)

    def as_arrow_array(self) -> pa.Array:
        """The values as Rerun's Arrow column: int64 (sequence), duration[ns] or timestamp[ns]."""
        arrow_type = {"sequence": pa.int64(), "duration": pa.duration("ns"), "timestamp": pa.timestamp("ns")}
        return pa.array(self.values, type=pa.int64()).view(arrow_type[self.kind])


def _nanos_array(values: Any, np_unit: str, scalar) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "mM":
        return arr.astype(np_unit).astype(np.int64).reshape(-1)
    if arr.dtype.kind in "iu":
        return (arr.astype(np.int64) * 1_000_000_000).reshape(-1)
    if arr.dtype.kind == "f":
        return np.round(arr.astype(np.float64) * 1e9).astype(np.int64).reshape(-1)
    return np.array([scalar(v) for v in arr.reshape(-1)], dtype=np.int64)


class TimeSequenceColumn(TimeColumn):
    """Seed-era ``TimeSequenceColumn(name, values)``."""

    def __init__(self, timeline: str, times: Any) -> None:
        super().__init__(timeline, sequence=times)


class TimeSecondsColumn(TimeColumn):
    """Seed-era ``TimeSecondsColumn(name, seconds)`` (duration or timestamp by value)."""

    def __init__(self, timeline: str, times: Any) -> None:
        ns = np.round(np.asarray(times, dtype=np.float64) * 1e9).astype(np.int64).reshape(-1)
        self.timeline_name = str(timeline)
        self.kind = seconds_kind(int(np.abs(ns).max())) if ns.size else "duration"
        self.values = ns


class TimeNanosColumn(TimeColumn):
    """Seed-era ``TimeNanosColumn(name, nanos)`` (duration or timestamp by value)."""

    def __init__(self, timeline: str, times: Any) -> None:
        ns = np.asarray(times).astype(np.int64).reshape(-1)
        self.timeline_name = str(timeline)
        self.kind = seconds_kind(int(np.abs(ns).max())) if ns.size else "duration"
        self.values = ns


# --------------------------------------------------------------- thread time


class ThreadTime(threading.local):
    """The calling thread's current time point: timeline -> (kind, value)."""

    def __init__(self) -> None:
        self.point: dict[str, tuple[str, int]] = {}


# ------------------------------------------------------------------- row ids


class RowIdGenerator:
    """Time-ordered 128-bit ids (time_ns, counter), strictly increasing per process.

    The counter starts at a random value (like Rerun's TUIDs) and increments; time
    never goes backwards even if the wall clock does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_t = 0
        self._inc = int.from_bytes(os.urandom(8), "big") >> 2

    def after_fork_in_child(self) -> None:
        """A forked child draws its own counter start (its ids must not repeat the
        parent's) and a fresh lock (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()
        self._inc = int.from_bytes(os.urandom(8), "big") >> 2

    def next_many(self, n: int) -> np.ndarray:
        """(n, 2) uint64 ids, increasing; caller may hold its own lock around use."""
        with self._lock:
            t = max(time.time_ns(), self._last_t)
            self._last_t = t
            start = self._inc + 1
            self._inc += n
        out = np.empty((n, 2), dtype=np.uint64)
        out[:, 0] = t
        out[:, 1] = np.arange(start, start + n, dtype=np.uint64)
        return out

    def next(self) -> tuple[int, int]:
        with self._lock:
            t = max(time.time_ns(), self._last_t)
            self._last_t = t
            self._inc += 1
            return t, self._inc

    def next_bytes(self) -> bytes:
        t, inc = self.next()
        return t.to_bytes(8, "big") + (inc & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


ROW_IDS = RowIdGenerator()  # one per process: ids are unique across recordings too

"""Time with Rerun 0.41's semantics (what rerun_py/tests/unit/test_time.py and
test_time_column.py check): exact nanoseconds from every accepted type, TypeError for
what Rerun refuses, and TimeColumn.as_arrow_array()."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from sdk_helpers import logged

import pixelrun as rr
from pixelrun.engine import rrd
from pixelrun.timeline import to_nanos, to_nanos_since_epoch


@pytest.mark.parametrize("value, ns", [
    (0, 0), (2, 2_000_000_000), (np.int8(3), 3_000_000_000), (np.int16(4), 4_000_000_000),
    (np.int32(5), 5_000_000_000), (np.int64(6), 6_000_000_000), (0.75, 750_000_000),
    (np.float64(3.6), 3_600_000_000), (timedelta(seconds=2, microseconds=500_000), 2_500_000_000),
    (np.timedelta64(4, "s"), 4_000_000_000), (np.timedelta64(2500, "ms"), 2_500_000_000),
    (np.timedelta64(25, "ns"), 25), (-3, -3_000_000_000), (np.float64(-1.5), -1_500_000_000),
    (timedelta(seconds=-4, microseconds=-500_000), -4_500_000_000), (np.timedelta64(-7, "s"), -7_000_000_000),
    (timedelta(days=20000, microseconds=1), 20000 * 86400 * 10**9 + 1000),  # exact far from zero
])
def test_durations_to_nanos(value, ns):
    assert to_nanos(value) == ns


@pytest.mark.parametrize("value", ["invalid", None, [1, 2, 3], 3 + 4j, np.float16(1.5), np.float32(2.5)])
def test_durations_rerun_refuses_raise_type_error(value):
    with pytest.raises(TypeError):
        to_nanos(value)


@pytest.mark.parametrize("value, ns", [
    (0, 0), (10, 10_000_000_000), (np.int8(127), 127_000_000_000), (np.int64(1223334444), 1_223_334_444 * 10**9),
    (1.5, 1_500_000_000), (np.float64(2.7), 2_700_000_000), (datetime(1970, 1, 1), 0),
    (datetime(1970, 1, 1, tzinfo=timezone.utc), 0), (datetime(1970, 1, 1, 0, 0, 1), 1_000_000_000),
    (np.datetime64("1970-01-01T00:00:01"), 1_000_000_000),
    (datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc), -1_000_000_000),
    (datetime(2050, 1, 1, tzinfo=timezone.utc), 2524608000000000000),
    (datetime(2050, 1, 1, 0, 0, 0, 123457, tzinfo=timezone.utc), 2524608000123457000),
    (np.datetime64("2000-01-01T00:00:00.123456789"), 946684800123456789),
    (pa.scalar(np.datetime64("2000-01-01T00:00:00.123456789"), type=pa.timestamp("ns")), 946684800123456789),
    (pa.scalar(946684800123, type=pa.timestamp("ms", tz="UTC")), 946684800123000000),
])
def test_timestamps_to_nanos(value, ns):
    assert to_nanos_since_epoch(value) == ns


def test_pandas_timestamps_keep_their_nanoseconds():
    pd = pytest.importorskip("pandas")
    assert to_nanos_since_epoch(pd.Timestamp("2000-01-01T00:00:00.123456789")) == 946684800123456789
    assert to_nanos_since_epoch(pd.Timestamp("2000-01-01T01:00:00.000000001+01:00")) == 946684800000000001
    rec = rr.RecordingStream("pandas_time")
    mem = rec.memory_recording()
    rec.set_time("t", timestamp=pd.Timestamp("2000-01-01T00:00:00.123456789"))
    rec.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8)))
    (chunk,) = logged(rrd.read_rrd(mem.rrd_bytes()).chunks)
    rec.close()
    assert chunk.timelines["t"].values.tolist() == [946684800123456789]


@pytest.mark.parametrize("value", ["invalid", None, np.float16(14.234), np.float32(211.623), [1, 2, 3]])
def test_timestamps_rerun_refuses_raise_type_error(value):
    with pytest.raises(TypeError):
        to_nanos_since_epoch(value)


def test_set_time_with_float32_seconds_raises_like_rerun():
    rec = rr.RecordingStream("f32")
    with pytest.raises(TypeError, match="precision"):
        rec.set_time("t", timestamp=np.float32(211.623))
    with pytest.raises(TypeError, match="precision"):
        rec.set_time("t", duration=np.float16(1.5))
    rec.close()


NS = 1_000_000_000


@pytest.mark.parametrize("kind, values, expected", [
    ("sequence", [0, 1, 2, 3], pa.array([0, 1, 2, 3], pa.int64())),
    ("sequence", np.array([10, 20, 30]), pa.array([10, 20, 30], pa.int64())),
    ("duration", [0, 1, 2, 3], pa.array([0, NS, 2 * NS, 3 * NS], pa.duration("ns"))),
    ("duration", np.arange(10, 12, 1.0), pa.array([10 * NS, 11 * NS], pa.duration("ns"))),
    ("duration", [0.0, 1.5, 2.25], pa.array([0, 1_500_000_000, 2_250_000_000], pa.duration("ns"))),
    ("duration", [timedelta(seconds=1, microseconds=500000)], pa.array([1_500_000_000], pa.duration("ns"))),
    ("duration", [np.timedelta64(1, "s"), np.timedelta64(1500, "ms")],
     pa.array([NS, 1_500_000_000], pa.duration("ns"))),
    ("duration", [-1, 0, 1], pa.array([-NS, 0, NS], pa.duration("ns"))),
    ("timestamp", [0, 1], pa.array([np.datetime64("1970-01-01T00:00:00", "ns"),
                                    np.datetime64("1970-01-01T00:00:01", "ns")], pa.timestamp("ns"))),
    ("timestamp", np.array([0.0, 1.5]), pa.array([0, 1_500_000_000], pa.timestamp("ns"))),
    ("timestamp", [datetime(2020, 1, 1), datetime(2020, 1, 1, 0, 0, 1)],
     pa.array([np.datetime64("2020-01-01T00:00:00", "ns"), np.datetime64("2020-01-01T00:00:01", "ns")],
              pa.timestamp("ns"))),
    ("timestamp", np.array([np.datetime64("2020-01-01T00:00:00")]),
     pa.array([np.datetime64("2020-01-01T00:00:00", "ns")], pa.timestamp("ns"))),
])
def test_time_column_as_arrow_array(kind, values, expected):
    col = rr.TimeColumn("t", **{kind: values})
    got = col.as_arrow_array()
    assert got.type == expected.type and got.equals(expected)

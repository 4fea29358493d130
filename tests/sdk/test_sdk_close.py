"""After close(): logging warns once and drops with a count, keeping nothing; counts
stay readable; a close never waits longer than its timeout; a dead writer thread is
replaced by the caller."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from sdk_helpers import GateSink

import pixelrun as rr
from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd


def _frame():
    return np.zeros((480, 640, 3), np.uint8)  # 0.9 MB: 200 of them retained would be 184 MB


def test_logging_after_close_warns_once_drops_with_a_count_and_keeps_nothing():
    rec = rr.RecordingStream("closed")
    mem = rec.memory_recording()
    rec.log("cam", rr.Image(_frame()))
    rec.close()
    before = mem.rrd_bytes()
    frame = _frame()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with pytest.warns(rr.RecordingClosedWarning) as w:
            for i in range(200):
                rec.set_time("i", sequence=i)
                rec.log("cam", rr.Image(frame))
            rec.send_columns("cam", indexes=[rr.TimeColumn("i", sequence=[0, 1, 2])],
                             columns=rr.Image.columns(buffer=np.zeros((3, 4), np.uint8),
                                                      format=rr.components.ImageFormat(
                                                          2, 2, color_model="L", channel_datatype="U8")))
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(w) == 1  # once, not per row
    assert "recording 'closed' is closed" in str(w[0].message) and "rr.log('cam')" in str(w[0].message)
    assert rec.dropped_rows == 203  # counted, readable after close
    assert grown < 8 << 20, f"{grown} bytes retained by 200 dropped frames"
    assert mem.rrd_bytes() == before  # nothing reached the sink


def test_module_level_log_after_close_is_counted(tmp_path):
    rec = rr.init("mod")
    rr.save(tmp_path / "m.rrd")
    rr.log("x", rr.Image(np.zeros((2, 2), np.uint8)))
    rec.close()
    with pytest.warns(rr.RecordingClosedWarning):
        rr.log("x", rr.Image(np.zeros((2, 2), np.uint8)))
        rr.log("x", rr.Image(np.zeros((2, 2), np.uint8)))
    assert rec.dropped_rows == 2
    assert sum(c.num_rows for c in read_rrd(tmp_path / "m.rrd").chunks if c.entity_path == "/x") == 1
    rr.set_global_data_recording(None)


def test_close_is_bounded_and_counts_what_it_could_not_write():
    rec = rr.RecordingStream("slow", batcher_config=rr.BatcherConfig(flush_num_rows=1),
                             send_properties=False)  # the gate holds only the 5 rows it counts
    sink = GateSink()
    rec._set_sinks([sink])
    for i in range(5):
        rec.set_time("i", sequence=i)
        rec.log("e", rr.Image(np.zeros((2, 2), np.uint8)))
    with pytest.warns(rr.PixelrunWarning, match=r"flush .* gave up after 0\.2 s with 5 row\(s\) still "
                                                r"queued \(still writing to gate sink\)"):
        rec.flush(timeout_sec=0.2)  # bounded too: nothing is dropped by it
    assert rec.dropped_rows == 0
    with pytest.warns(rr.DataLossWarning, match=r"5 row\(s\).*not written within the close timeout.*"
                                                 r"\(still writing to gate sink\)"):
        rec.close(timeout=0.3)
    assert rec.dropped_rows == 5
    sink.gate.set()  # let the stuck thread go


def test_a_dead_writer_thread_is_replaced_by_the_caller():
    rec = rr.RecordingStream("dead", batcher_config=rr.BatcherConfig(flush_num_rows=1))
    mem = rec.memory_recording()

    class Boom(BaseException):
        pass

    real, calls = rec._batcher._emit_fn, []

    def emit(chunk):
        calls.append(chunk.num_rows)
        if len(calls) == 1:
            raise Boom("writer killed")
        real(chunk)

    rec._batcher._emit_fn = emit
    rec.set_time("i", sequence=0)
    rec.log("e", rr.Image(np.full((2, 2), 0, np.uint8)))
    with pytest.warns(rr.PixelrunWarning, match=r"background writer .* stopped \(Boom: writer killed\)"):
        rec.flush(timeout_sec=30)  # returns at once although the thread died in the middle of it
        assert not rec._batcher.thread_alive()
        for i in range(1, 10):  # back-pressure and flushes do not wait on the dead thread
            rec.set_time("i", sequence=i)
            rec.log("e", rr.Image(np.full((2, 2), i, np.uint8)))
    data = mem.rrd_bytes()
    got = sorted(int(c.timelines["i"].values[r]) for c in read_rrd(data).chunks
                 if ch.IMAGE_BUFFER in c.components for r in range(c.num_rows))
    assert got == list(range(1, 10))
    assert rec.dropped_rows == 1  # the row whose write killed the thread, counted
    with pytest.warns(rr.DataLossWarning, match=r"1 row\(s\) in 1 chunk\(s\)"):
        rec.close()


def test_a_clean_close_says_nothing():
    rec = rr.RecordingStream("clean")
    rec.memory_recording()
    rec.log("e", rr.Image(np.zeros((2, 2), np.uint8)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.close()
    assert rec.dropped_rows == 0 and rec.dropped_chunks == 0 and rec.losses() == {}


def test_closing_without_any_sink_counts_what_was_buffered():
    rec = rr.RecordingStream("nowhere")
    for i in range(3):
        rec.set_time("i", sequence=i)
        rec.log("e", rr.Image(np.zeros((2, 2), np.uint8)))
    with pytest.warns(rr.DataLossWarning, match=r"3 row\(s\).*no sink set"):
        rec.close()
    assert rec.dropped_rows == 3

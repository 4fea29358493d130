"""The recording stream: time, row ids, batching, back-pressure, threads, sinks."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sdk_helpers import PROPERTIES, GateSink

import pixelrun as rr
from pixelrun.batcher import BatcherConfig
from pixelrun.engine import chunk as ch
from pixelrun.engine.rrd import read_rrd
from pixelrun.kernels.formats import ImageFormat

ROOT = Path(__file__).resolve().parents[2]
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"


def _stream(**cfg):
    config = BatcherConfig.from_env(**cfg) if cfg else None
    rec = rr.RecordingStream("test", recording_id="rec", batcher_config=config)
    return rec, rec.memory_recording()


def _img(v: int, n: int = 4) -> rr.Image:
    return rr.Image(np.full((1, n), v % 256, dtype=np.uint8))


def _temporal(mem, entity):
    return [c for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path == entity and not c.is_static]


# ------------------------------------------------------------------------ time


def test_set_time_kinds_and_values():
    rec, mem = _stream()
    rec.set_time("seq", sequence=7)
    rec.set_time("dur", duration=1.5)
    rec.set_time("ts", timestamp=np.datetime64(1_700_000_000_250_000_001, "ns"))
    rec.set_time("ts_secs", timestamp=1_700_000_000)
    rec.set_time_sequence("old_seq", 3)
    rec.set_time_seconds("old_secs", 2.0)  # small: a duration
    rec.set_time_seconds("old_date", 1_700_000_000.0)  # large: a timestamp
    rec.set_time_nanos("old_ns", 5)
    before = time.time_ns()
    rec.log("e", _img(1))
    after = time.time_ns()
    (c,) = _temporal(mem, "/e")
    got = {k: (v.kind, int(v.values[0])) for k, v in c.timelines.items()}
    log_time = got.pop("log_time")
    assert log_time[0] == "timestamp" and before <= log_time[1] <= after
    assert got == {
        "seq": ("sequence", 7),
        "dur": ("duration", 1_500_000_000),
        "ts": ("timestamp", 1_700_000_000_250_000_001),
        "ts_secs": ("timestamp", 1_700_000_000_000_000_000),
        "old_seq": ("sequence", 3),
        "old_secs": ("duration", 2_000_000_000),
        "old_date": ("timestamp", 1_700_000_000_000_000_000),
        "old_ns": ("duration", 5),
    }


def test_set_time_needs_exactly_one_kind():
    rec, _ = _stream()
    with pytest.raises(ValueError, match="exactly one of sequence=, duration=, timestamp="):
        rec.set_time("x", sequence=1, duration=2)
    with pytest.raises(ValueError, match="exactly one"):
        rec.set_time("x")


def test_time_is_thread_local_and_reset():
    rec, mem = _stream()
    rec.set_time("frame", sequence=1)

    def other():
        rec.set_time("frame", sequence=99)
        rec.log("t2", _img(2))

    th = threading.Thread(target=other)
    th.start()
    th.join()
    rec.log("t1", _img(1))
    rec.reset_time()
    rec.log("t3", _img(3))
    assert _temporal(mem, "/t1")[0].timelines["frame"].values.tolist() == [1]
    assert _temporal(mem, "/t2")[0].timelines["frame"].values.tolist() == [99]
    assert set(_temporal(mem, "/t3")[0].timelines) == {"log_time"}


def test_static_rows_have_no_time_and_row_ids_increase():
    rec, mem = _stream()
    rec.set_time("step", sequence=0)
    for i in range(5):
        rec.log("e", _img(i))
    rec.log("e", rr.components.ImageFormat(4, 1, color_model="L", channel_datatype="U8"), static=True)
    chunks = [c for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path == "/e"]
    static = [c for c in chunks if c.is_static]
    assert len(static) == 1 and static[0].timelines == {}
    ids = [tuple(r) for c in chunks for r in c.row_ids.tolist()]
    assert len(set(ids)) == 6
    temporal_ids = [tuple(r) for c in chunks if not c.is_static for r in c.row_ids.tolist()]
    assert temporal_ids == sorted(temporal_ids)
    assert max(temporal_ids) < tuple(static[0].row_ids[0].tolist())  # logged later


# --------------------------------------------------------------------- batching


def test_flush_by_rows_from_environment(monkeypatch):
    monkeypatch.setenv("PIXELRUN_FLUSH_NUM_ROWS", "3")
    monkeypatch.setenv("PIXELRUN_FLUSH_TICK_SECS", "1000")
    rec, mem = _stream()
    assert rec.config.flush_num_rows == 3 and rec.config.flush_tick == 1000
    for i in range(7):
        rec.log("e", _img(i))
    sizes = [c.num_rows for c in _temporal(mem, "/e")]
    assert sizes == [3, 3, 1]


def test_flush_by_bytes(monkeypatch):
    monkeypatch.setenv("PIXELRUN_FLUSH_NUM_BYTES", "1000")
    monkeypatch.setenv("PIXELRUN_FLUSH_TICK_SECS", "1000")
    rec, mem = _stream()
    for i in range(5):
        rec.log("e", rr.Image(np.full((1, 400), i, np.uint8)))  # 400 B + 64 B row overhead
    sizes = [c.num_rows for c in _temporal(mem, "/e")]
    assert sizes == [3, 2]  # flushed once a group reaches 1000 B: 3 * 464 = 1392
    vals = [bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], i))[0]
            for c in _temporal(mem, "/e") for i in range(c.num_rows)]
    assert vals == [0, 1, 2, 3, 4]


def test_flush_by_tick_without_explicit_flush():
    rec, mem = _stream(flush_tick=0.05)
    rec.log("e", _img(1))
    deadline = time.monotonic() + 10
    while mem.num_msgs() < 3 and time.monotonic() < deadline:  # header, store info, chunk
        time.sleep(0.01)
    assert mem.num_msgs() >= 3


def test_separate_chunks_per_entity_and_timeline_set():
    rec, mem = _stream(flush_tick=1000)
    rec.set_time("a", sequence=1)
    rec.log("x", _img(1))
    rec.log("y", _img(2))
    rec.set_time("b", sequence=2)
    rec.log("x", _img(3))
    chunks = [c for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path in ("/x", "/y")]
    sig = sorted((c.entity_path, tuple(sorted(c.timelines)), c.num_rows) for c in chunks)
    assert sig == [("/x", ("a", "b", "log_time"), 1), ("/x", ("a", "log_time"), 1), ("/y", ("a", "log_time"), 1)]


def test_back_pressure_bounds_in_flight_memory():
    rec = rr.RecordingStream("bp", batcher_config=BatcherConfig(
        flush_tick=0.001, flush_num_bytes=1, max_in_flight_bytes=3000),
        send_properties=False)  # in flight: only the rows this test logs
    sink = GateSink()
    rec._set_sinks([sink])
    rec.log("e", rr.Image(np.zeros((1, 2000), np.uint8)))  # admitted (nothing in flight)
    done = threading.Event()

    def producer():
        rec.log("e", rr.Image(np.zeros((1, 2000), np.uint8)))  # must wait: 2064 + 2064 > 3000
        done.set()

    th = threading.Thread(target=producer, daemon=True)
    th.start()
    assert not done.wait(0.3)  # still waiting while the sink is stuck
    assert rec._batcher.in_flight_bytes <= 3000
    sink.gate.set()
    assert done.wait(30)
    rec.flush()
    assert sink.rows == 2 and rec._batcher.in_flight_bytes == 0
    rec.close()


def test_one_item_larger_than_the_budget_still_passes():
    rec = rr.RecordingStream("big", batcher_config=BatcherConfig(max_in_flight_bytes=10))
    mem = rec.memory_recording()
    rec.log("e", rr.Image(np.zeros((10, 10), np.uint8)))
    assert len(_temporal(mem, "/e")) == 1


# ---------------------------------------------------------------------- threads


def test_eight_threads_every_row_exactly_once():
    rec, mem = _stream(flush_tick=0.01, flush_num_rows=7)
    per_thread = 200

    def work(t):
        rec.set_time("i", sequence=0)
        for i in range(per_thread):
            rec.set_time("i", sequence=i)
            rec.log(f"thread{t % 2}", rr.Image(np.array([[t, i % 256, i // 256]], dtype=np.uint8)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rec.flush()
    seen = []
    for c in read_rrd(mem.rrd_bytes()).chunks:
        if ch.IMAGE_BUFFER not in c.components:
            continue
        ids = c.row_ids.tolist()
        assert ids == sorted(ids)  # ids in a chunk are sorted
        for r in range(c.num_rows):
            b = bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], r))
            t, i = b[0], b[1] + 256 * b[2]
            assert c.timelines["i"].values[r] == i
            assert c.entity_path == f"/thread{t % 2}"
            seen.append((t, i))
    assert sorted(seen) == [(t, i) for t in range(8) for i in range(per_thread)]


# ------------------------------------------------------------------ send_columns


def test_image_columns_split_by_bytes_not_truncated():
    rec, mem = _stream()
    frames = np.arange(3 * 2 * 2, dtype=np.uint16).reshape(3, 2, 2)  # 3-D, non-uint8
    fmt = rr.components.ImageFormat(2, 2, color_model="L", channel_datatype="U16")
    rec.send_columns("v", indexes=[rr.TimeColumn("t", sequence=[10, 11, 12])],
                     columns=rr.Image.columns(buffer=frames, format=fmt, opacity=0.5, draw_order=[1, 2, 3]))
    chunks = _temporal(mem, "/v")
    rows = []
    for c in chunks:
        for r in range(c.num_rows):
            rows.append((int(c.timelines["t"].values[r]),
                         bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], r)),
                         ch.formats_from_column(c.components[ch.IMAGE_FORMAT])[r],
                         c.components[ch.IMAGE_OPACITY][r].as_py(),
                         c.components[ch.IMAGE_DRAW_ORDER][r].as_py()))
    assert rows == [
        (10 + k, frames[k].astype("<u2").tobytes(), ImageFormat(2, 2, color_model="L", channel_datatype="U16"),
         [0.5], [float(k + 1)]) for k in range(3)
    ]
    assert all("log_time" not in c.timelines for c in chunks)  # like Rerun


def test_send_columns_both_generations_give_the_same_rows():
    frames = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6)
    rec1, mem1 = _stream()
    rec1.send_columns("v", times=[rr.TimeSequenceColumn("step", [0, 1, 2, 3])],
                      components=[rr.components.ImageBufferBatch(frames)])
    rec2, mem2 = _stream()
    rec2.send_columns("v", indexes=[rr.TimeColumn("step", sequence=[0, 1, 2, 3])],
                      columns=rr.Image.columns(buffer=frames))

    def rows(mem):
        return [(int(c.timelines["step"].values[r]), bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], r)))
                for c in _temporal(mem, "/v") for r in range(c.num_rows)]

    assert rows(mem1) == rows(mem2) == [(k, frames[k].tobytes()) for k in range(4)]


def test_send_columns_caller_mutation_does_not_leak():
    rec, mem = _stream()
    frames = np.zeros((2, 4), np.uint8)
    rec.send_columns("v", indexes=[rr.TimeColumn("t", sequence=[0, 1])], columns=rr.Image.columns(buffer=frames))
    frames[:] = 7
    assert [bytes(ch.buffer_row(c.components[ch.IMAGE_BUFFER], r)) for c in _temporal(mem, "/v")
            for r in range(c.num_rows)] == [bytes(4), bytes(4)]


def test_send_columns_large_batches_are_split_into_chunks():
    rec, mem = _stream(flush_num_bytes=1000)
    frames = np.arange(10 * 300, dtype=np.uint32).reshape(10, 300).astype(np.uint8)
    rec.send_columns("v", indexes=[rr.TimeColumn("t", duration=np.arange(10))], columns=rr.Image.columns(buffer=frames))
    chunks = _temporal(mem, "/v")
    assert [c.num_rows for c in chunks] == [2, 2, 2, 2, 2]  # 1000 // (300 + 64)
    assert np.concatenate([c.timelines["t"].values for c in chunks]).tolist() == [k * 10**9 for k in range(10)]
    assert chunks[0].timelines["t"].kind == "duration"


def test_static_send_columns_without_index():
    rec, mem = _stream()
    fmt = rr.components.ImageFormat(1, 1, color_model="L", channel_datatype="U8")
    rec.send_columns("s", columns=rr.Image.columns(format=fmt))
    (c,) = [c for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path == "/s"]
    assert c.is_static


# ------------------------------------------------------------------------ sinks


def test_two_recordings_in_one_process_keep_their_data_apart(tmp_path):
    a = rr.RecordingStream("app", recording_id="A")
    b = rr.RecordingStream("app", recording_id="B")
    a.save(tmp_path / "a.rrd")
    b.save(tmp_path / "b.rrd")
    a.log("only_a", _img(1))
    b.log("only_b", _img(2))
    a.close()
    b.close()
    ra, rb = read_rrd(tmp_path / "a.rrd"), read_rrd(tmp_path / "b.rrd")
    assert ra.problems == [] and rb.problems == []
    assert [s.recording_id for s in ra.store_infos] == ["A"]
    assert {c.entity_path for c in ra.chunks} == {PROPERTIES, "/only_a"}  # each its own properties too
    assert {c.entity_path for c in rb.chunks} == {PROPERTIES, "/only_b"}


def test_data_logged_before_save_is_kept(tmp_path):
    rec = rr.RecordingStream("app")
    rec.log("early", _img(1))
    rec.save(tmp_path / "x.rrd")
    rec.log("late", _img(2))
    rec.close()
    assert {c.entity_path for c in read_rrd(tmp_path / "x.rrd").chunks} == {PROPERTIES, "/early", "/late"}


def test_disconnect_finishes_the_file_and_buffers_later_data(tmp_path):
    rec = rr.RecordingStream("app")
    rec.save(tmp_path / "x.rrd")
    rec.log("a", _img(1))
    rec.disconnect()
    first = read_rrd(tmp_path / "x.rrd")
    assert first.has_footer and first.problems == []
    rec.log("b", _img(2))
    mem = rec.memory_recording()
    assert {c.entity_path for c in read_rrd(mem.rrd_bytes()).chunks} == {"/b"}
    rec.close()


def test_memory_recording_is_a_complete_stream_at_any_time():
    rec, mem = _stream()
    rec.log("a", _img(1))
    r1 = read_rrd(mem.rrd_bytes())
    rec.log("b", _img(2))
    r2 = read_rrd(mem.rrd_bytes())
    assert r1.problems == [] and r1.has_footer
    assert [c.entity_path for c in r2.chunks] == [PROPERTIES, "/a", "/b"]


@pytest.mark.skipif(not RERUN_BIN.exists(), reason="real rerun 0.41 not installed in .venv-rerun")
def test_rerun_verifies_a_recording_written_by_the_sdk(tmp_path):
    rec = rr.RecordingStream("app")
    rec.save(tmp_path / "x.rrd")
    rec.log("fmt", rr.components.ImageFormat(2, 2, color_model="L", channel_datatype="U8"), static=True)
    rec.set_time("step", sequence=1)
    rec.log("img", rr.Image(np.zeros((2, 2, 3), np.uint8), opacity=0.5))
    rec.send_columns("fmt", indexes=[rr.TimeColumn("step", sequence=[0, 1])],
                     columns=rr.Image.columns(buffer=np.zeros((2, 4), np.uint8)))
    rec.close()
    r = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(tmp_path / "x.rrd")], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, XDG_RUNTIME_DIR="/tmp"))
    assert r.returncode == 0, r.stderr


def test_module_level_api_uses_the_global_recording():
    rec = rr.init("global_test", recording_id="g")
    mem = rr.memory_recording()
    rr.set_time("step", sequence=4)
    rr.log("x", _img(1))
    assert rr.get_global_data_recording() is rec
    (c,) = [c for c in read_rrd(mem.rrd_bytes()).chunks if c.entity_path == "/x"]
    assert c.timelines["step"].values.tolist() == [4]
    rr.set_global_data_recording(None)
    rec.close()


def test_entity_path_normalisation():
    assert rr.entity_path("a//b/") == "/a/b"
    assert rr.entity_path("/cam/left") == "/cam/left"
    assert rr.entity_path(["a b", "c"]) == "/a\\ b/c"


def test_per_call_and_init_strict():
    rec, mem = _stream()
    with pytest.raises(ValueError, match="/a: unsupported pixel dtype bool"):
        rec.log("a", rr.Image(np.zeros((1, 1), bool)), strict=True)
    with pytest.warns(rr.PixelrunWarning):
        rec.log("a", rr.Image(np.zeros((1, 1), bool)))  # the override did not stick
    g = rr.init("strict_app", strict=True)
    try:
        # process-wide strict: rr.Image raises at construction, as Rerun's does
        with pytest.raises(ValueError, match="rr.Image: unsupported pixel dtype bool"):
            rr.log("b", rr.Image(np.zeros((1, 1), bool)))
    finally:
        rr.set_strict_mode(None)
        rr.set_global_data_recording(None)
        g.close()


def test_pixelrun_save_captures_several_recordings_in_one_file(tmp_path, monkeypatch):
    path = tmp_path / "all.rrd"
    monkeypatch.setenv("PIXELRUN_SAVE", str(path))
    a = rr.RecordingStream("app", recording_id="A", spawn=True)  # never spawns under PIXELRUN_SAVE
    b = rr.RecordingStream("app", recording_id="B")
    with pytest.warns(rr.PixelrunWarning, match=r"captures this run; rr\.save\(.*ignored\.rrd'\) is ignored"):
        a.save(tmp_path / "ignored.rrd")
    a.log("x", _img(1))
    b.log("y", _img(2))
    a.close()
    assert not (tmp_path / "ignored.rrd").exists()
    b.close()
    got = read_rrd(path)
    assert got.problems == [] and got.has_footer
    assert sorted(s.recording_id for s in got.store_infos) == ["A", "B"]
    assert [c.entity_path for c in got.chunks_of("A")] == [PROPERTIES, "/x"]
    assert [c.entity_path for c in got.chunks_of("B")] == [PROPERTIES, "/y"]
    if RERUN_BIN.exists():
        r = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(path)], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, XDG_RUNTIME_DIR="/tmp"))
        assert r.returncode == 0, r.stderr


def test_lz4_compression_option(tmp_path, monkeypatch):
    from pixelrun.engine import rrd

    monkeypatch.setenv("PIXELRUN_COMPRESSION", "lz4")
    rec = rr.RecordingStream("lz4")
    rec.save(tmp_path / "c.rrd")
    rec.log("z", rr.Image(np.zeros((256, 256), np.uint8)))
    rec.close()
    data = (tmp_path / "c.rrd").read_bytes()
    assert data[8] == 1  # stream header: LZ4
    msgs = list(rrd.iter_messages(data))
    (cm,) = [m for m in msgs if isinstance(m, rrd.ChunkMsg) and m.chunk.entity_path == "/z"]
    assert cm.compressed
    assert bytes(ch.buffer_row(cm.chunk.components[ch.IMAGE_BUFFER], 0)) == bytes(256 * 256)
    assert len(data) < 256 * 256 // 2  # zeros compress


@pytest.mark.parametrize("make", [
    lambda k: rr.DepthImage(np.full((30, 40), k, np.uint16), meter=1000.0),  # 2400 bytes
    lambda k: rr.SegmentationImage(np.full((40, 60), k % 7, np.uint8)),  # 2400 bytes
    lambda k: rr.EncodedImage(contents=bytes([k % 256]) * 2400, media_type="image/png"),
], ids=["depth", "segmentation", "encoded"])
def test_every_image_archetype_counts_its_bytes_toward_the_chunk_size(make):
    # 2400 + 64 bytes a row against a 4900-byte threshold: two rows a chunk, whichever
    # archetype carries the pixels (the batcher once counted Image:buffer alone, and a
    # depth stream then went into one chunk per flush tick, hundreds of MB, unbounded)
    rec, mem = _stream(flush_num_bytes=4900, flush_tick=3600.0)
    for k in range(6):
        rec.set_time("t", sequence=k)
        rec.log("cam", make(k))
    rec.flush()
    assert [c.num_rows for c in _temporal(mem, "/cam")] == [2, 2, 2]



def test_a_gpu_image_still_being_copied_counts_its_bytes():
    # a GPU image's row holds a DeferredBytes until the batcher resolves it; its size is
    # known at once and must count like a host buffer's (a stand-in copy handle here: the
    # CUDA path itself is tested in test_gpu_input_async.py where CuPy is installed)
    from pixelrun.image_input import DeferredBytes
    from pixelrun.recording import ROW_OVERHEAD_BYTES, _row_bytes

    class Done:
        def result(self):
            return np.zeros((30, 40), np.uint16)

    deferred = DeferredBytes(Done(), 2400)
    assert _row_bytes({"DepthImage:buffer": deferred, "DepthImage:meter": 1000.0}) == 2400 + ROW_OVERHEAD_BYTES
    assert deferred.resolve().nbytes == 2400
